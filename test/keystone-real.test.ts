/**
 * The Cinder client against the stack's real Keystone (Debian's keystone, fernet tokens) and the
 * keystone-checked cinder-api (keystonemiddleware's auth_token): password auth, the volumev3
 * endpoint from the catalog, the claim's accept as the pool's user scoped to a tenant project
 * (allowed where the pool holds a role, refused where it does not), a revoked token replaced
 * once, a wrong password named without the password.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import axios from 'axios';
import {
  CinderClient,
  CinderError,
  CinderUnauthorized,
  KeystonePasswordAuth,
  type KeystoneOptions,
} from '../lib/cinder';
import { unique } from './support/env';

const AUTH_URL = `http://127.0.0.1:${process.env.KEYSTONE_PORT ?? 5000}/v3`;
const PASSWORD = process.env.KEYSTONE_USERS_PASSWORD ?? 'stack-user-secret';
const ADMIN_PASSWORD = process.env.KEYSTONE_ADMIN_PASSWORD ?? 'stack-admin-secret';
const CINDER_KS = `http://127.0.0.1:${process.env.CINDER_KS_PORT ?? 8777}/v3`;

interface Cloud {
  poolProjectId: string;
  tenants: Record<'tenant-alpha' | 'tenant-beta' | 'tenant-closed', { projectId: string }>;
}
// The stack leaves Keystone out only when told to (STACK_KEYSTONE=0); then so do these tests.
const skip =
  process.env.STACK_KEYSTONE === '0' ? 'STACK_KEYSTONE=0: no Keystone in this stack' : false;
const cloud = (
  skip ? {} : JSON.parse(readFileSync(resolve(__dirname, '../.stack/keystone/cloud.json'), 'utf8'))
) as Cloud;

const poolAuth = (over: Partial<KeystoneOptions> = {}) =>
  new KeystonePasswordAuth({
    authUrl: AUTH_URL,
    username: 'warmpool',
    password: PASSWORD,
    userDomain: 'Default',
    project: { name: 'warmpool', domain: 'Default' },
    ...over,
  });

const pool = new CinderClient(poolAuth());
const made: string[] = [];

after(async () => {
  for (const id of made) {
    const v = await pool.findVolume(id).catch(() => null);
    if (v && v.status !== 'deleting') await pool.deleteVolume(id).catch(() => undefined);
  }
});

async function poolVolume(): Promise<string> {
  const v = await pool.createVolume({ name: unique('ks-vol'), size: 1, volumeType: 'sas' });
  made.push(v.id);
  for (let i = 0; i < 100 && (await pool.getVolume(v.id)).status !== 'available'; i++)
    await new Promise((r) => setTimeout(r, 200));
  return v.id;
}

/** An admin token (for revoking another token underneath the client). */
async function adminToken(): Promise<string> {
  const res = await axios.post(`${AUTH_URL}/auth/tokens`, {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: 'admin', domain: { id: 'default' }, password: ADMIN_PASSWORD } },
      },
      scope: { project: { name: 'admin', domain: { id: 'default' } } },
    },
  });
  return res.headers['x-subject-token'] as string;
}

describe('Cinder client and the real Keystone', { skip }, () => {
  before(async () => {
    // The stack made these; a clear message beats a confusing failure below.
    assert.ok(
      cloud.poolProjectId,
      'no pool project in .stack/keystone/cloud.json: npm run stack:up',
    );
  });

  test('password auth scopes to the pool project; the volumev3 endpoint comes from the catalog', async () => {
    const s = await poolAuth().session();
    assert.equal(s.projectId, cloud.poolProjectId);
    assert.equal(s.endpoint, `${CINDER_KS}/${cloud.poolProjectId}`);
    assert.match(s.token, /^gAAAAA/, 'a fernet token');
    // keystonemiddleware accepted it: the keystone-checked API answers.
    assert.ok(Array.isArray(await pool.listVolumes({ name: 'nothing-by-this-name' })));
  });

  test('the accept as the pool user scoped to a tenant project it serves moves the volume', async () => {
    const id = await poolVolume();
    const tr = await pool.createTransfer(id, 'ks-test');
    const alpha = pool.asProject(cloud.tenants['tenant-alpha'].projectId);
    await alpha.acceptTransfer(tr.id, tr.authKey);
    const v = await alpha.getVolume(id);
    assert.equal(v.projectId, cloud.tenants['tenant-alpha'].projectId);
    await alpha.deleteVolume(id);
  });

  test('a tenant project the pool holds no role in refuses the token: clear error, transfer intact', async () => {
    const id = await poolVolume();
    const tr = await pool.createTransfer(id, 'ks-test');
    const closed = pool.asProject(cloud.tenants['tenant-closed'].projectId);
    await assert.rejects(closed.acceptTransfer(tr.id, tr.authKey), (err: unknown) => {
      assert.ok(err instanceof CinderError, String(err));
      assert.match(err.message, /warmpool|not authorized|authentication|role/i);
      assert.doesNotMatch(err.message, new RegExp(PASSWORD));
      return true;
    });
    assert.equal((await pool.getVolume(id)).status, 'awaiting-transfer');
    await pool.deleteTransfer(tr.id);
    assert.equal((await pool.getVolume(id)).projectId, cloud.poolProjectId);
  });

  test('a token revoked underneath: one re-authentication, then the call succeeds', async () => {
    const auth = poolAuth();
    const client = new CinderClient(auth);
    const first = await auth.session();
    await axios.delete(`${AUTH_URL}/auth/tokens`, {
      headers: { 'X-Auth-Token': await adminToken(), 'X-Subject-Token': first.token },
    });
    assert.ok(Array.isArray(await client.listVolumes({ name: 'nothing-by-this-name' })));
    const second = await auth.session();
    assert.notEqual(second.token, first.token, 'a new token was issued');
  });

  test('a wrong password names the user and Keystone’s reason, never the password', async () => {
    const wrong = 'not-the-password-42';
    await assert.rejects(poolAuth({ password: wrong }).session(), (err: unknown) => {
      assert.ok(err instanceof CinderUnauthorized, String(err));
      assert.match(err.message, /warmpool/);
      assert.match(err.message, /authentication/i);
      assert.doesNotMatch(err.message + JSON.stringify(err), new RegExp(wrong));
      return true;
    });
  });
});
