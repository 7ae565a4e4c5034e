/**
 * The stack's real Nova (STACK_NOVA=1) as the pool's consumer: a tenant boots a server from a
 * Cinder volume it received by transfer, as the pool hands volumes over. Everything goes
 * through Keystone's catalog (compute, volumev3): the server becomes ACTIVE in zone az-1 on
 * the fake virt driver, Cinder shows the volume `in-use` with an attachment to that server, and
 * after the server is deleted the volume is `available` again, still in the tenant's project.
 * With `[cinder] cross_az_attach = False` Nova refuses a volume of another zone.
 *
 * STACK_NOVA=1 in this test's environment requires Nova; otherwise the tests are skipped when
 * nova-api does not answer (Nova is opt-in in scripts/stack.sh).
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import axios, { type AxiosResponse } from 'axios';
import { CinderClient, KeystonePasswordAuth } from '../lib/cinder';
import { NOVA_FLAVOR, NOVA_ZONES } from '../scripts/stack/cloud';
import { unique, waitFor } from './support/env';

const AUTH_URL = `http://127.0.0.1:${process.env.KEYSTONE_PORT ?? 5000}/v3`;
const NOVA_ROOT = `http://127.0.0.1:${process.env.NOVA_API_PORT ?? 8774}/`;
const PASSWORD = process.env.KEYSTONE_USERS_PASSWORD ?? 'stack-user-secret';
const STACK = resolve(__dirname, '../.stack');
const COMPUTE_VERSION = 'compute 2.37'; // the first with `networks: "none"`
const ATTACHMENTS_VERSION = 'volume 3.27'; // Cinder's attachments API
const TENANT = { user: 'tenant-alpha-user', project: 'tenant-alpha' } as const;

const http = axios.create({ timeout: 30_000, validateStatus: () => true });

interface TenantVolume {
  status: string;
  availability_zone: string;
  bootable: string;
  attachments: { server_id: string; attachment_id: string }[];
}

async function novaAnswers(): Promise<boolean> {
  return http.get(NOVA_ROOT, { timeout: 3_000 }).then(
    (r) => r.status === 200,
    () => false,
  );
}

/** Why these tests cannot run, or false. */
async function nothingToTest(): Promise<string | false> {
  if (process.env.STACK_NOVA !== '1' && !(await novaAnswers()))
    return 'Nova is not part of this stack: STACK_NOVA=1 bash scripts/stack.sh up brings it up';
  return false;
}

function ok<T>(res: AxiosResponse<T>, what: string, status = [200]): T {
  assert.ok(status.includes(res.status), `${what}: HTTP ${res.status} ${JSON.stringify(res.data)}`);
  return res.data;
}

/** What scripts/stack/nova.sh rendered: True unless Cinder offers Nova's zones. */
function crossAzAttach(): boolean {
  const conf = readFileSync(resolve(STACK, 'nova/nova.conf'), 'utf8');
  const value = /^cross_az_attach = (True|False)$/m.exec(conf)?.[1];
  assert.ok(value, 'no [cinder] cross_az_attach in .stack/nova/nova.conf');
  return value === 'True';
}

/** A tenant's token and the catalog's public compute and volumev3 endpoints. */
async function tenantLogin() {
  const res = await http.post(`${AUTH_URL}/auth/tokens`, {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: TENANT.user, domain: { name: 'Default' }, password: PASSWORD } },
      },
      scope: { project: { name: TENANT.project, domain: { name: 'Default' } } },
    },
  });
  assert.equal(res.status, 201, `Keystone refused ${TENANT.user}: ${JSON.stringify(res.data)}`);
  const catalog = res.data.token.catalog as {
    type: string;
    endpoints: { interface: string; url: string }[];
  }[];
  const endpoint = (type: string) => {
    const url = catalog
      .find((c) => c.type === type)
      ?.endpoints.find((e) => e.interface === 'public')?.url;
    assert.ok(url, `no public ${type} endpoint in the catalog`);
    return url.replace(/\/+$/, '');
  };
  const token = res.headers['x-subject-token'] as string;
  return {
    projectId: res.data.token.project.id as string,
    compute: endpoint('compute'),
    volume: endpoint('volumev3'),
    nova: { 'X-Auth-Token': token, 'OpenStack-API-Version': COMPUTE_VERSION },
    cinder: { 'X-Auth-Token': token, 'OpenStack-API-Version': ATTACHMENTS_VERSION },
  };
}
type Tenant = Awaited<ReturnType<typeof tenantLogin>>;

const keystone = (username: string, project: { name: string; domain: string } | { id: string }) =>
  new KeystonePasswordAuth({
    authUrl: AUTH_URL,
    username,
    password: PASSWORD,
    userDomain: 'Default',
    project,
  });

const cleanup: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
});

let pool: CinderClient;
let tenant: Tenant;
let tenantCinder: CinderClient;
let flavorId: string;
before(async () => {
  if (await nothingToTest()) return;
  assert.ok(await novaAnswers(), `STACK_NOVA=1 but nova-api does not answer at ${NOVA_ROOT}`);
  pool = new CinderClient(keystone('warmpool', { name: 'warmpool', domain: 'Default' }));
  tenant = await tenantLogin();
  tenantCinder = new CinderClient(keystone(TENANT.user, { id: tenant.projectId }));
  const flavors = ok(
    await http.get(`${tenant.compute}/flavors`, { headers: tenant.nova }),
    'flavors',
  ).flavors as { id: string; name: string }[];
  const flavor = flavors.find((f) => f.name === NOVA_FLAVOR);
  assert.ok(flavor, `flavor ${NOVA_FLAVOR} missing (scripts/stack/nova.sh makes it)`);
  flavorId = flavor.id;
});

/**
 * The pool's hand-over: a volume from an OS image snapshot in the pool's project (in `zone`, or
 * Cinder's default zone), marked bootable, transferred to the tenant, who accepts it.
 */
async function handedOverVolume(zone?: string): Promise<string> {
  const snapshot = (await pool.listSnapshots()).find(
    (s) => s.name.startsWith('os-image ') && s.status === 'available',
  );
  assert.ok(snapshot, 'no available OS image snapshot in the pool project (stack bootstrap)');
  const { id } = await pool.createVolume({
    name: unique('nova-boot'),
    size: snapshot.size,
    snapshotId: snapshot.id,
    availabilityZone: zone,
  });
  cleanup.push(() => pool.deleteVolume(id));
  await waitFor(
    'the pool volume',
    () => pool.getVolume(id),
    (v) => v.status === 'available',
  );
  const session = await pool.auth.session();
  ok(
    await http.post(
      `${session.endpoint}/volumes/${id}/action`,
      { 'os-set_bootable': { bootable: true } },
      { headers: { 'X-Auth-Token': session.token } },
    ),
    'os-set_bootable',
  );
  const transfer = await pool.createTransfer(id, 'nova-boot test');
  await tenantCinder.acceptTransfer(transfer.id, transfer.authKey);
  cleanup.push(() => tenantCinder.deleteVolume(id));
  return id;
}

const tenantVolume = async (id: string) =>
  ok(await http.get(`${tenant.volume}/volumes/${id}`, { headers: tenant.cinder }), 'volume')
    .volume as TenantVolume;

function bootFromVolume(volumeId: string, zone: string) {
  return http.post(
    `${tenant.compute}/servers`,
    {
      server: {
        name: unique('nova-boot'),
        flavorRef: flavorId,
        networks: 'none',
        availability_zone: zone,
        block_device_mapping_v2: [
          {
            source_type: 'volume',
            destination_type: 'volume',
            boot_index: 0,
            uuid: volumeId,
            delete_on_termination: false,
          },
        ],
      },
    },
    { headers: tenant.nova },
  );
}

test('a tenant boots a server in az-1 from a transferred Cinder volume, and gets it back', async (t: TestContext) => {
  const skip = await nothingToTest();
  if (skip) return t.skip(skip);
  const zone = NOVA_ZONES[0];
  // cross_az_attach = False: the volume must be in the server's zone (nova.sh renders False
  // only when Cinder has Nova's zones).
  const volumeId = await handedOverVolume(crossAzAttach() ? undefined : zone);
  const before = await tenantVolume(volumeId);
  assert.deepEqual([before.status, before.bootable], ['available', 'true']);

  const started = Date.now();
  const created = ok(await bootFromVolume(volumeId, zone), 'create server', [202]);
  const serverUrl = `${tenant.compute}/servers/${created.server.id}`;
  cleanup.push(() => http.delete(serverUrl, { headers: tenant.nova }));
  const server = await waitFor(
    'the server to leave BUILD',
    async () => ok(await http.get(serverUrl, { headers: tenant.nova }), 'server').server,
    (s) => s.status !== 'BUILD',
    180_000,
    500,
  );
  const bootMs = Date.now() - started;
  assert.equal(server.status, 'ACTIVE', `server ${server.id}: ${JSON.stringify(server.fault)}`);
  t.diagnostic(
    `server ACTIVE ${bootMs} ms after the create request (volume zone ${before.availability_zone}, server zone ${zone})`,
  );
  assert.equal(server['OS-EXT-AZ:availability_zone'], zone);
  assert.deepEqual(
    server['os-extended-volumes:volumes_attached'].map((v: { id: string }) => v.id),
    [volumeId],
  );

  const inUse = await tenantVolume(volumeId);
  assert.equal(inUse.status, 'in-use');
  assert.deepEqual(
    inUse.attachments.map((a) => a.server_id),
    [server.id],
  );
  const attachments = async () =>
    ok(
      await http.get(`${tenant.volume}/attachments/detail`, {
        headers: tenant.cinder,
        params: { volume_id: volumeId },
      }),
      'attachments',
    ).attachments as { instance: string; status: string; volume_id: string }[];
  assert.deepEqual(
    (await attachments()).map((a) => [a.volume_id, a.instance, a.status]),
    [[volumeId, server.id, 'attached']],
  );

  ok(await http.delete(serverUrl, { headers: tenant.nova }), 'delete server', [204]);
  await waitFor(
    'the server to be gone',
    async () => (await http.get(serverUrl, { headers: tenant.nova })).status,
    (status) => status === 404,
    120_000,
    500,
  );
  const back = await waitFor(
    'the volume back',
    () => tenantVolume(volumeId),
    (v) => v.status === 'available',
  );
  assert.deepEqual(back.attachments, []);
  assert.deepEqual(await attachments(), []);
  // Still the tenant's (the project is visible to an admin: the pool's user is admin).
  assert.equal((await pool.getVolume(volumeId)).projectId, tenant.projectId);
});

test('cross_az_attach = False: Nova refuses a volume of another zone', async (t: TestContext) => {
  const skip = await nothingToTest();
  if (skip) return t.skip(skip);
  if (crossAzAttach())
    return t.skip("cross_az_attach = True: Cinder's volume zones are not Nova's zones yet");
  const volumeId = await handedOverVolume();
  const volumeZone = (await tenantVolume(volumeId)).availability_zone;
  const otherZone = NOVA_ZONES.find((z) => z !== volumeZone);
  assert.ok(otherZone);
  const res = await bootFromVolume(volumeId, otherZone);
  if (res.status === 202)
    cleanup.push(() =>
      http.delete(`${tenant.compute}/servers/${res.data.server.id}`, { headers: tenant.nova }),
    );
  assert.equal(res.status, 400, JSON.stringify(res.data));
  assert.match(
    res.data.badRequest.message,
    new RegExp(`Server is in: ${otherZone}\\. Volumes are in: ${volumeZone}`),
  );
  assert.equal((await tenantVolume(volumeId)).status, 'available');
});
