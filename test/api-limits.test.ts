/**
 * The API's bounded cost, against real PostgreSQL and Temporal: a storm of /metrics scrapes
 * makes one read of PostgreSQL per cache period (counted on the Db the API is given); /metrics
 * asks for its key when one is set; /v1 limits requests per API key (429 + Retry-After), other
 * keys unaffected, and the limit resets after its window.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import type { Client } from '@temporalio/client';
import { buildApi } from '../api/server';
import { keyId } from '../api/rate-limit';
import { createDb, type Db } from '../lib/pool-state/db';
import { connectClient } from '../lib/temporal/connect';
import { config as stackConfig, sleep } from './support/env';
import { testConfig } from './support/pool';

let db: Db;
let temporal: Client;
const apps: FastifyInstance[] = [];

before(async () => {
  db = createDb(stackConfig.databaseUrl, 4);
  temporal = await connectClient(stackConfig);
});
after(async () => {
  for (const app of apps) await app.close();
  await temporal.connection.close();
  await db.end();
});

/** The Db the API gets, counting every query and client checkout it makes. */
function countingDb(real: Db): { db: Db; used: () => number } {
  let n = 0;
  const db = new Proxy(real, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      if (prop === 'query' || prop === 'connect')
        return (...args: unknown[]) => {
          n++;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      return (v as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return { db, used: () => n };
}

function api(overrides: Record<string, string>, dbOf: Db = db): FastifyInstance {
  const { config } = testConfig(overrides);
  const app = buildApi({ config, db: dbOf, temporal });
  apps.push(app);
  return app;
}

const POOL_GAUGE =
  /warmpool_pool_volumes\{volume_type="[^"]+",os="[^"]+",zone="[^"]*",state="target"\} \d+/;

describe('/metrics: bounded cost, optional key', () => {
  test('100 concurrent scrapes cost one read of PostgreSQL; within the period, none; after it, one', async (t) => {
    // Demand-aware targets on, as in production: each read also reads recent demand.
    const period = {
      POOL__API__METRICS_CACHE_SECOND: '2',
      POOL__VOLUMES_BACKUP__DEMAND_TARGETS: 'true',
    };
    // What one scrape reads: a fresh API, one scrape.
    const single = countingDb(db);
    const one = await api(period, single.db).inject({ url: '/metrics' });
    assert.equal(one.statusCode, 200);
    assert.match(one.body, POOL_GAUGE);
    const perRead = single.used();
    assert.ok(perRead >= 2, `one scrape made ${perRead} queries`);

    const storm = countingDb(db);
    const app = api(period, storm.db);
    await app.ready();
    const t0 = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => app.inject({ url: '/metrics' })),
    );
    for (const a of answers) {
      assert.equal(a.statusCode, 200);
      assert.match(a.body, POOL_GAUGE);
    }
    assert.equal(storm.used(), perRead, '100 concurrent scrapes share one read');
    t.diagnostic(`one read: ${perRead} queries; 100 concurrent scrapes: ${storm.used()}`);
    // Within the period: answered from the cache.
    for (let i = 0; i < 20; i++) await app.inject({ url: '/metrics' });
    if (Date.now() - t0 < 1900) assert.equal(storm.used(), perRead, 'no read within the period');
    // After it: one new read, shared again.
    await sleep(Math.max(0, 2300 - (Date.now() - t0)));
    await Promise.all(Array.from({ length: 10 }, () => app.inject({ url: '/metrics' })));
    assert.equal(storm.used(), 2 * perRead, 'one read per period');
  });

  test('a failed read is not kept: the next scrape reads again', async () => {
    const dead = createDb('postgres://postgres@127.0.0.1:1/none', 1);
    const counted = countingDb(dead);
    const app = api({ POOL__API__METRICS_CACHE_SECOND: '60' }, counted.db);
    assert.equal((await app.inject({ url: '/metrics' })).statusCode, 500);
    const perRead = counted.used();
    assert.ok(perRead > 0);
    assert.equal((await app.inject({ url: '/metrics' })).statusCode, 500);
    assert.equal(counted.used(), 2 * perRead, 'the second scrape read again');
    await dead.end();
  });

  test('with [api] metrics_key, /metrics needs that bearer key (and no API key will do)', async () => {
    const app = api({ POOL__API__METRICS_KEY: 'scrape-secret' });
    const none = await app.inject({ url: '/metrics' });
    assert.equal(none.statusCode, 401);
    assert.match(none.json().error, /missing bearer metrics key/);
    const wrong = await app.inject({
      url: '/metrics',
      headers: { authorization: 'Bearer nope' },
    });
    assert.equal(wrong.statusCode, 401);
    assert.match(wrong.json().error, /unknown metrics key/);
    const apiKey = await app.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${stackConfig.api.apiKeys[0]}` },
    });
    assert.equal(apiKey.statusCode, 401);
    const ok = await app.inject({
      url: '/metrics',
      headers: { authorization: 'Bearer scrape-secret' },
    });
    assert.equal(ok.statusCode, 200);
    assert.match(ok.body, POOL_GAUGE);
  });
});

describe('/v1: a request limit per API key', () => {
  test('past the limit: 429 with Retry-After and a JSON error; another key unaffected; reset after the window', async () => {
    const app = api({
      API_KEYS: 'key-one,key-two',
      POOL__API__RATE_LIMIT_MAX: '5',
      POOL__API__RATE_LIMIT_WINDOW_SECOND: '2',
    });
    const get = (key: string) =>
      app.inject({ url: '/v1/pool', headers: { authorization: `Bearer ${key}` } });
    await app.ready();
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) assert.equal((await get('key-one')).statusCode, 200);
    const over = await get('key-one');
    const overAt = Date.now();
    assert.equal(over.statusCode, 429, over.body);
    const retryAfter = Number(over.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 2, `Retry-After ${over.headers['retry-after']}`);
    assert.match(over.headers['content-type'] as string, /application\/json/);
    assert.match(
      over.json().error,
      /^request limit exceeded: at most 5 requests per 2 s per API key; retry in /,
    );
    // The limit is the key's, across routes.
    const claimOver = await app.inject({
      url: '/v1/claims/some-id',
      headers: { authorization: 'Bearer key-one' },
    });
    assert.equal(claimOver.statusCode, 429);
    // Another key has its own budget; an unknown key is refused for what it is.
    assert.ok(Date.now() - t0 < 1800, 'still within the window');
    assert.equal((await get('key-two')).statusCode, 200);
    assert.equal((await get('not-a-key')).statusCode, 401);
    // As Retry-After said: the key is served again.
    await sleep(overAt + retryAfter * 1000 + 100 - Date.now());
    assert.equal((await get('key-one')).statusCode, 200);
  });

  test('the limit is kept per key hash, never the raw key', () => {
    const id = keyId('key-one');
    assert.match(id, /^[0-9a-f]{16}$/);
    assert.doesNotMatch(id, /key-one/);
    assert.notEqual(id, keyId('key-two'));
  });

  test('rate_limit_max = 0: no limit', async () => {
    const app = api({ POOL__API__RATE_LIMIT_MAX: '0', POOL__API__RATE_LIMIT_WINDOW_SECOND: '60' });
    const key = stackConfig.api.apiKeys[0] as string;
    for (let i = 0; i < 30; i++) {
      const res = await app.inject({
        url: '/v1/pool',
        headers: { authorization: `Bearer ${key}` },
      });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['x-ratelimit-limit'], undefined);
    }
  });
});
