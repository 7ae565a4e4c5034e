/**
 * Keystone tokens cached per (user, project) for the whole client family: a local HTTP server
 * plays Keystone's token endpoint (on the test's clock) and a Cinder that refuses the tokens it
 * is told to. Tokens are reused across derived identities until shortly before they expire,
 * concurrent callers share one authentication, a 401 costs one re-authentication however many
 * calls saw it, and the cache holds at most its bound. (test/keystone-token-cache.test.ts counts
 * the same against the stack's real Keystone during pool hits.)
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CinderClient,
  CinderUnauthorized,
  KeystonePasswordAuth,
  TokenCache,
  type KeystoneOptions,
} from '../../lib/cinder';

const MIN = 60_000;
let server: http.Server;
let base = '';
let now = Date.now();
let lifetimeMs = 60 * MIN;
let issueDelayMs = 0;
/** Keystone answers 503. */
let keystoneDown = false;
/** The scope of every token request, in order. */
let requests: string[] = [];
let issued = 0;
/** Tokens Cinder answers 401 to; `true`: every token. */
let refused: Set<string> | true = new Set();
/** The token of every Cinder request, in order. */
let cinderTokens: string[] = [];

function keystone(body: string, res: http.ServerResponse): void {
  const scope = (JSON.parse(body) as { auth: { scope: { project: { id?: string } } } }).auth.scope
    .project;
  const projectId = scope.id ?? 'pool-project';
  requests.push(projectId);
  if (keystoneDown) {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 503, message: 'Service Unavailable' } }));
    return;
  }
  const token = `tok-${++issued}-${projectId}`;
  setTimeout(() => {
    res.writeHead(201, { 'content-type': 'application/json', 'x-subject-token': token });
    res.end(
      JSON.stringify({
        token: {
          issued_at: new Date(now).toISOString(),
          expires_at: new Date(now + lifetimeMs).toISOString(),
          project: { id: projectId },
          user: { id: 'pool-user-id' },
        },
      }),
    );
  }, issueDelayMs);
}

function cinder(req: http.IncomingMessage, res: http.ServerResponse): void {
  const token = req.headers['x-auth-token'] as string;
  cinderTokens.push(token);
  const no = refused === true || refused.has(token);
  res.writeHead(no ? 401 : 200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify(
      no
        ? { error: { code: 401, message: 'The request you have made requires authentication.' } }
        : { volumes: [] },
    ),
  );
}

before(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => (req.url === '/v3/auth/tokens' ? keystone(body, res) : cinder(req, res)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

beforeEach(() => {
  now = Date.now();
  lifetimeMs = 60 * MIN;
  issueDelayMs = 0;
  keystoneDown = false;
  requests = [];
  refused = new Set();
  cinderTokens = [];
});

const opts = (): KeystoneOptions => ({
  authUrl: `${base}/v3`,
  username: 'warmpool',
  password: 'pool-secret',
  userDomain: 'Default',
  project: { name: 'warmpool', domain: 'Default' },
  cinderUrl: `${base}/cinder/v3`,
  now: () => now,
});

describe('Keystone tokens cached per (user, project)', () => {
  test('a tenant token is reused by every derived identity until 5 min before it expires', async () => {
    const root = new KeystonePasswordAuth(opts());
    const first = await root.forProject('alpha').session();
    assert.equal((await root.forProject('alpha').session()).token, first.token);
    await new CinderClient(root).asProject('alpha').listVolumes();
    assert.deepEqual(requests, ['alpha'], 'one token request for alpha');
    assert.deepEqual(cinderTokens, [first.token]);

    now += 55 * MIN - 1000; // 5 min and 1 s left: still used
    assert.equal((await root.forProject('alpha').session()).token, first.token);
    now += 2000; // less than 5 min left: renewed
    const renewed = await root.forProject('alpha').session();
    assert.notEqual(renewed.token, first.token);
    assert.deepEqual(requests, ['alpha', 'alpha']);
  });

  test('a short-lived token is renewed in the last quarter of its life; the admin token has its own entry', async () => {
    lifetimeMs = 60_000;
    const root = new KeystonePasswordAuth(opts());
    await root.session();
    await root.forProject('alpha').session();
    now += 44_000; // 16 s of 60 left: both still used
    await root.session();
    await root.forProject('alpha').session();
    assert.deepEqual(requests, ['pool-project', 'alpha']);
    now += 2_000; // 14 s left: both renewed
    await root.session();
    await root.forProject('alpha').session();
    assert.deepEqual(requests, ['pool-project', 'alpha', 'pool-project', 'alpha']);
  });

  test('concurrent callers for one project share one authentication; other projects get theirs', async () => {
    issueDelayMs = 50;
    const root = new KeystonePasswordAuth(opts());
    const sessions = await Promise.all(
      Array.from({ length: 20 }, (_, i) => root.forProject(i % 2 ? 'alpha' : 'beta').session()),
    );
    assert.deepEqual([...requests].sort(), ['alpha', 'beta']);
    assert.equal(new Set(sessions.map((s) => s.token)).size, 2);
  });

  test('a 401 from Cinder: one re-authentication for all the calls refused, each retried once', async () => {
    const events: unknown[] = [];
    const client = new CinderClient(new KeystonePasswordAuth(opts()), {
      log: (e) => events.push(e),
    });
    const stale = (await client.asProject('alpha').auth.session()).token;
    refused = new Set([stale]); // revoked underneath
    cinderTokens = [];
    await Promise.all(Array.from({ length: 5 }, () => client.asProject('alpha').listVolumes()));
    assert.deepEqual(requests, ['alpha', 'alpha'], 'exactly one re-authentication');
    const fresh = (await client.asProject('alpha').auth.session()).token;
    assert.notEqual(fresh, stale);
    assert.deepEqual(
      [...cinderTokens].sort(),
      [...Array(5).fill(stale), ...Array(5).fill(fresh)].sort(),
      'each call sent once with the refused token, once with the new one',
    );

    // Refused again with the new token: an error, after one more authentication only.
    refused = true;
    await assert.rejects(client.asProject('alpha').listVolumes(), CinderUnauthorized);
    assert.equal(requests.length, 3);
    for (const token of [stale, fresh])
      assert.ok(!JSON.stringify(events).includes(token), 'no token in the call log');
  });

  test('at most maxEntries tokens are held; the least recently used leaves first', async () => {
    const cache = new TokenCache({ maxEntries: 3, now: () => now });
    const root = new KeystonePasswordAuth(opts(), cache);
    for (const p of ['p1', 'p2', 'p3', 'p4']) await root.forProject(p).session();
    assert.equal(cache.size, 3);
    for (const p of ['p4', 'p3', 'p2']) await root.forProject(p).session();
    assert.deepEqual(requests, ['p1', 'p2', 'p3', 'p4'], 'the three most recent still held');
    await root.forProject('p1').session();
    assert.deepEqual(requests, ['p1', 'p2', 'p3', 'p4', 'p1'], 'p1 was evicted');
    assert.equal(cache.size, 3);
  });

  test('a failed authentication is not kept: the next call asks Keystone again', async () => {
    const root = new KeystonePasswordAuth(opts());
    keystoneDown = true;
    await assert.rejects(root.forProject('alpha').session(), /Keystone refused warmpool/);
    keystoneDown = false;
    assert.match((await root.forProject('alpha').session()).token, /^tok-/);
    assert.deepEqual(requests, ['alpha', 'alpha']);
  });
});
