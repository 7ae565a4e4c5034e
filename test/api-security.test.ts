/**
 * The API's edges, against real PostgreSQL and Temporal: no /v1 route answers without a key,
 * however its URL is spelled (the router decodes %-escapes, so the check belongs to the route);
 * text Cinder would choke on is refused up front; readiness never echoes internal errors; a 202
 * leaves no long poll behind.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { Client, Connection } from '@temporalio/client';
import { buildApi } from '../api/server';
import { claimWorkflowId } from '../contracts/claim';
import { createDb, type Db } from '../lib/pool-state/db';
import { connectClient } from '../lib/temporal/connect';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import { config, unique } from './support/env';
import { testConfig } from './support/pool';

let app: FastifyInstance;
let db: Db;
let temporal: Client;
const key = config.api.apiKeys[0] as string;
const started: string[] = [];

before(async () => {
  db = createDb(config.databaseUrl, 2);
  temporal = await connectClient(config);
  // Records every workflow start: an unauthenticated request must start none.
  const start = temporal.workflow.start.bind(temporal.workflow);
  temporal.workflow.start = (async (...args: Parameters<typeof start>) => {
    started.push(args[1].workflowId);
    return start(...args);
  }) as typeof start;
  app = buildApi({ config, db, temporal });
});
after(async () => {
  await app.close();
  await temporal.connection.close();
  await db.end();
});

const body = () => ({
  requestId: unique('sec'),
  projectId: TENANT_PROJECTS.alpha,
  name: unique('vm'),
  os: 'Debian8 64bit',
  volumeType: 'sas',
});

describe('API security', () => {
  test('no /v1 route is reachable without a key, however the URL is spelled', async () => {
    const spellings = (path: string) => [
      path,
      path.replace('/v1/', '/%761/'),
      path.replace('/v1/', '/%76%31/'),
      path.replace('/v1/', '/v%31/'),
      path.replace('/v1/', '//v1/'),
      path.replace('/v1/', '/v1//'),
      path.replace('/v1/', '/V1/'),
      path.replace('/v1/', '/./v1/'),
      path.replace('/v1/', '/x/../v1/'),
      path.replace('/v1/', '/v1/./'),
      path.replace('/v1/', '/%2e/v1/'),
      `${path}?x=1`,
      `${path}/`,
    ];
    const routes: [string, string][] = [
      ['POST', '/v1/claims'],
      ['GET', '/v1/claims/some-id'],
      ['GET', '/v1/pool'],
    ];
    for (const [method, path] of routes) {
      for (const url of spellings(path)) {
        const res = await app.inject({
          method: method as 'GET' | 'POST',
          url,
          payload: method === 'POST' ? body() : undefined,
        });
        assert.ok(
          res.statusCode === 401 || res.statusCode === 404,
          `${method} ${url} answered ${res.statusCode} without a key: ${res.body}`,
        );
      }
    }
    // The encoded spelling reaches the real route, which now asks for the key.
    const encoded = await app.inject({ method: 'POST', url: '/%761/claims', payload: body() });
    assert.equal(encoded.statusCode, 401, encoded.body);
    const pool = await app.inject({ url: '/%761/pool' });
    assert.equal(pool.statusCode, 401, pool.body);
    assert.deepEqual(started, [], 'no claim was started');
    // And with the key, the encoded spelling is just the route.
    const ok = await app.inject({ url: '/%761/pool', headers: { authorization: `Bearer ${key}` } });
    assert.equal(ok.statusCode, 200);
  });

  test('a userId that breaks the noauth token, and names Cinder cannot store, are 400 and start nothing', async () => {
    const auth = { authorization: `Bearer ${key}` };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...body(), userId: 'evil:9f1c2b7e4d5a4e0b8c3d6f7a1b2c3d4e' }, /userId/],
      [{ ...body(), userId: 'a b' }, /userId/],
      [{ ...body(), name: 'vm\u0000x' }, /name must not contain control characters/],
      [{ ...body(), name: 'vm\nx' }, /name must not contain control characters/],
      [{ ...body(), name: 'vm\ud800x' }, /name is not well-formed Unicode/],
      [{ ...body(), os: 'Debian8\ud800' }, /os is not well-formed Unicode/],
    ];
    for (const [payload, error] of cases) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/claims',
        headers: { ...auth, 'content-type': 'application/json' },
        // Serialised by hand: JSON.stringify keeps a lone surrogate as the escape \ud800.
        payload: JSON.stringify(payload),
      });
      assert.equal(res.statusCode, 400, `${JSON.stringify(payload)}: ${res.body}`);
      assert.match(res.json().error, error);
    }
    assert.deepEqual(started, []);
  });

  test('readyz says what is down, never the internal error text', async () => {
    const deadDb = createDb('postgres://postgres:sekret@127.0.0.1:1/none', 1);
    const deadTemporal = new Client({
      connection: Connection.lazy({ address: '127.0.0.1:1', connectTimeout: 1000 }),
    });
    const broken = buildApi({ config, db: deadDb, temporal: deadTemporal });
    try {
      const res = await broken.inject({ url: '/readyz' });
      assert.equal(res.statusCode, 503);
      assert.deepEqual(res.json(), {
        ready: false,
        checks: { postgres: 'unavailable', temporal: 'unavailable' },
      });
      assert.doesNotMatch(res.body, /ECONNREFUSED|127\.0\.0\.1|sekret/);
    } finally {
      await broken.close();
      await deadDb.end();
    }
  });

  test('a 202 leaves no long poll behind; Temporal failing under the wait is a 503', async () => {
    // A task queue no worker polls: the claim runs until terminated, so the API answers 202.
    const { config: quick } = testConfig({ POOL__API__CLAIM_WAIT_SECOND: '0.3' });
    const svc = temporal.workflowService;
    // The calls a claim waits on: update-with-start, the update's poll, a result's long poll.
    const waits = [
      'executeMultiOperation',
      'pollWorkflowExecutionUpdate',
      'getWorkflowExecutionHistory',
    ] as const;
    const originals = waits.map((m) => [m, svc[m]] as const);
    let polls = 0;
    let fail = false;
    for (const [m, original] of originals) {
      const bound = (original as (req: unknown) => Promise<unknown>).bind(svc);
      (svc as unknown as Record<string, unknown>)[m] = async (req: unknown) => {
        if (fail) throw Object.assign(new Error('14 UNAVAILABLE: connection reset'), { code: 14 });
        polls++;
        try {
          return await bound(req);
        } finally {
          polls--;
        }
      };
    }
    const quickApp = buildApi({ config: quick, db, temporal });
    const auth = { authorization: `Bearer ${key}` };
    const ids: string[] = [];
    try {
      const b = body();
      ids.push(b.requestId);
      const res = await quickApp.inject({
        method: 'POST',
        url: '/v1/claims',
        headers: auth,
        payload: b,
      });
      assert.equal(res.statusCode, 202, res.body);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(polls, 0, 'the waiting call was cancelled with the 202');

      fail = true;
      const b2 = body();
      ids.push(b2.requestId);
      const down = await quickApp.inject({
        method: 'POST',
        url: '/v1/claims',
        headers: auth,
        payload: b2,
      });
      assert.equal(down.statusCode, 503, down.body);
      assert.match(down.json().error, /Temporal unreachable/);
    } finally {
      for (const [m, original] of originals)
        (svc as unknown as Record<string, unknown>)[m] = original;
      await quickApp.close();
      for (const id of ids)
        await temporal.workflow
          .getHandle(claimWorkflowId(id))
          .terminate('test')
          .catch(() => undefined);
    }
  });
});
