/**
 * Keystone v3 password auth. There is no Keystone on this machine, so a small local HTTP server
 * plays its token endpoint (unit test); the Cinder it points at is the real one of the stack.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CinderClient, CinderUnauthorized, KeystonePasswordAuth } from '../lib/cinder';
import { config } from './support/env';

interface Issued {
  body: {
    auth: { identity: { password: { user: { name: string; password: string } } }; scope: unknown };
  };
}

let server: Server;
let url: string;
const issued: Issued[] = [];
let lifetimeMs = 3600_000;
const cinderBase = config.auth.cinderUrl as string; // http://127.0.0.1:8776/v3

before(async () => {
  server = createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      const body = JSON.parse(data) as Issued['body'];
      const pw = body.auth.identity.password.user;
      if (req.url !== '/v3/auth/tokens' || pw.password !== 's3cret') {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: { code: 401, message: 'The request you have made requires authentication.' },
          }),
        );
        return;
      }
      issued.push({ body });
      const scope = body.auth.scope as { project: { id?: string; name?: string } };
      const projectId = scope.project.id ?? (config.auth.projectId as string);
      // noauth Cinder takes "user:project" as its token: hand out exactly that, so that the real
      // Cinder accepts what our fake Keystone issued.
      res.writeHead(201, {
        'content-type': 'application/json',
        'x-subject-token': `admin:${projectId}`,
      });
      res.end(
        JSON.stringify({
          token: {
            expires_at: new Date(Date.now() + lifetimeMs).toISOString(),
            project: { id: projectId },
            user: { id: 'admin-user-id' },
            catalog: [
              { type: 'identity', endpoints: [{ interface: 'public', url: 'http://x' }] },
              {
                type: 'volumev3',
                endpoints: [
                  { interface: 'internal', region: 'r1', url: 'http://127.0.0.1:1/v3/nope' },
                  { interface: 'public', region: 'r1', url: `${cinderBase}/${projectId}` },
                ],
              },
            ],
          },
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v3`;
});

after(() => server.close());

const opts = () => ({
  authUrl: url,
  username: 'admin',
  password: 's3cret',
  userDomain: 'Default',
  project: { name: 'admin', domain: 'Default' },
});

describe('Keystone v3 password auth', () => {
  test('gets a project-scoped token, finds the public volumev3 endpoint, and Cinder answers', async () => {
    issued.length = 0;
    lifetimeMs = 3600_000;
    const cinder = new CinderClient(new KeystonePasswordAuth(opts()));
    const services = await cinder.listServices();
    assert.ok(services.some((s) => s.binary === 'cinder-volume'));
    const s = await cinder.auth.session();
    assert.equal(s.endpoint, `${cinderBase}/${config.auth.projectId}`);
    assert.deepEqual(issued[0]?.body.auth.scope, {
      project: { name: 'admin', domain: { name: 'Default' } },
    });
  });

  test('caches the token and shares one request among concurrent callers', async () => {
    issued.length = 0;
    lifetimeMs = 3600_000;
    const auth = new KeystonePasswordAuth(opts());
    await Promise.all(Array.from({ length: 10 }, () => auth.session()));
    await auth.session();
    assert.equal(issued.length, 1);
  });

  test('renews in the last quarter of a token’s life (at most 5 min before expiry)', async () => {
    issued.length = 0;
    lifetimeMs = 60_000;
    let now = Date.now();
    const auth = new KeystonePasswordAuth({ ...opts(), now: () => now });
    await auth.session();
    now += 40_000; // 20 s of 60 left: still good
    await auth.session();
    assert.equal(issued.length, 1);
    now += 6_000; // 14 s left: renewed
    await auth.session();
    assert.equal(issued.length, 2);
  });

  test('forProject scopes a token to the tenant by id', async () => {
    issued.length = 0;
    lifetimeMs = 3600_000;
    const tenantId = '1e5f0c9a7b3d4f2e8a6c5b4d3e2f1a0b';
    const s = await new KeystonePasswordAuth(opts()).forProject(tenantId).session();
    assert.equal(s.projectId, tenantId);
    assert.deepEqual(issued[0]?.body.auth.scope, { project: { id: tenantId } });
  });

  test('a wrong password is CinderUnauthorized with Keystone’s message, and no password in it', async () => {
    const auth = new KeystonePasswordAuth({ ...opts(), password: 'wrong-pass' });
    await assert.rejects(auth.session(), (err: unknown) => {
      assert.ok(err instanceof CinderUnauthorized);
      assert.match(err.message, /requires authentication/);
      assert.doesNotMatch(err.message + JSON.stringify(err), /wrong-pass/);
      return true;
    });
  });

  test('a region with no endpoint is a clear error', async () => {
    const auth = new KeystonePasswordAuth({ ...opts(), region: 'elsewhere' });
    await assert.rejects(
      auth.session(),
      /no public volumev3\/block-storage endpoint .* region elsewhere/,
    );
  });
});
