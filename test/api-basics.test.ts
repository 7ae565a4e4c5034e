/** The API server's health, readiness, auth and pool levels, against real PostgreSQL and Temporal. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../api/server';
import { createDb, type Db } from '../lib/pool-state/db';
import { connectClient } from '../lib/temporal/connect';
import type { Client } from '@temporalio/client';
import { config } from './support/env';

let app: FastifyInstance;
let db: Db;
let temporal: Client;
const key = config.api.apiKeys[0] as string;

before(async () => {
  db = createDb(config.databaseUrl, 2);
  temporal = await connectClient(config);
  app = buildApi({ config, db, temporal });
});
after(async () => {
  await app.close();
  await temporal.connection.close();
  await db.end();
});

describe('API basics', () => {
  test('healthz and readyz answer; readyz checked PostgreSQL and Temporal', async () => {
    assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
    const ready = await app.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 200, ready.body);
    assert.deepEqual(ready.json(), { ready: true, checks: { postgres: 'ok', temporal: 'ok' } });
  });

  test('readyz is 503 when PostgreSQL is unreachable', async () => {
    const deadDb = createDb('postgres://postgres@127.0.0.1:1/none', 1);
    const broken = buildApi({ config, db: deadDb, temporal });
    const res = await broken.inject({ url: '/readyz' });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().checks.temporal, 'ok');
    assert.notEqual(res.json().checks.postgres, 'ok');
    await broken.close();
    await deadDb.end();
  });

  test('/v1 needs a known bearer key', async () => {
    const none = await app.inject({ url: '/v1/pool' });
    assert.equal(none.statusCode, 401);
    assert.match(none.json().error, /missing bearer/);
    const wrong = await app.inject({ url: '/v1/pool', headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.statusCode, 401);
    assert.match(wrong.json().error, /unknown API key/);
  });

  test('GET /v1/pool lists a level for every configured type × OS × zone', async () => {
    const res = await app.inject({ url: '/v1/pool', headers: { authorization: `Bearer ${key}` } });
    assert.equal(res.statusCode, 200);
    const levels = res.json().levels as {
      volumeType: string;
      os: string;
      zone: string;
      target: number;
    }[];
    for (const t of config.pool.targets) {
      const l = levels.find(
        (x) => x.volumeType === t.volumeType && x.os === t.os && x.zone === t.zone,
      );
      assert.equal(l?.target, t.target, `${t.volumeType}/${t.os}@${t.zone}`);
    }
  });

  test('GET /metrics exposes pool levels per type × OS × zone in Prometheus format', async () => {
    const res = await app.inject({ url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /text\/plain/);
    const t = config.pool.targets[0]!;
    assert.match(
      res.body,
      new RegExp(
        `warmpool_pool_volumes\\{volume_type="${t.volumeType}",os="${t.os}",zone="${t.zone}",state="target"\\} ${t.target}`,
      ),
    );
    assert.match(res.body, /# TYPE warmpool_claims_total counter/);
  });

  test('unknown routes are a JSON 404', async () => {
    const res = await app.inject({
      url: '/v1/nothing',
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(res.statusCode, 404);
    assert.match(res.json().error, /no route GET \/v1\/nothing/);
  });
});
