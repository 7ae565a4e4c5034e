/**
 * The claim queue's backlog (lib/temporal/backlog.ts), without a server: the Retry-After
 * estimate, the stats read from a DescribeTaskQueue answer, the probe's cache and single flight
 * against a stubbed describe, and the `[api] max_claim_backlog` key.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { temporal } from '@temporalio/proto';
import {
  UNKNOWN_RETRY_SECONDS,
  backlogProbe,
  retryAfterSeconds,
  statsOf,
  type DescribeTaskQueue,
} from '../../lib/temporal/backlog';
import { ConfigError, loadConfig } from '../../lib/config/load';

describe('retryAfterSeconds', () => {
  test('backlog / dispatch rate, rounded up', () => {
    assert.equal(retryAfterSeconds(100, 10), 10);
    assert.equal(retryAfterSeconds(101, 10), 11);
    assert.equal(retryAfterSeconds(30, 4), 8);
  });

  test('grows with the backlog, shrinks with the dispatch rate', () => {
    const at = (tasks: number, rate: number) => retryAfterSeconds(tasks, rate);
    for (let n = 10; n < 200; n += 10) assert.ok(at(n + 10, 5) >= at(n, 5), `${n}`);
    assert.ok(at(100, 5) > at(20, 5));
    assert.ok(at(100, 20) < at(100, 5));
  });

  test('bounded: at least 1 s (no backlog, a fast queue), at most 60 s', () => {
    assert.equal(retryAfterSeconds(0, 10), 1);
    assert.equal(retryAfterSeconds(0, 0), 1);
    assert.equal(retryAfterSeconds(1, 1000), 1);
    assert.equal(retryAfterSeconds(1000, 4.8), 60);
    assert.equal(retryAfterSeconds(1e9, 1e-9), 60);
  });

  test('tasks wait but nothing is dispatched, or the rate is unknown: the small default', () => {
    assert.equal(UNKNOWN_RETRY_SECONDS, 5);
    for (const rate of [0, -1, NaN, Infinity])
      assert.equal(retryAfterSeconds(50, rate), UNKNOWN_RETRY_SECONDS, String(rate));
    assert.equal(retryAfterSeconds(50, 0, { unknownSeconds: 90 }), 60, 'still bounded');
  });

  test('other bounds', () => {
    assert.equal(retryAfterSeconds(0, 0, { minSeconds: 2 }), 2);
    assert.equal(retryAfterSeconds(500, 1, { maxSeconds: 30 }), 30);
    assert.equal(retryAfterSeconds(500, 1, { minSeconds: 10, maxSeconds: 5 }), 10, 'min wins');
  });
});

const Response = temporal.api.workflowservice.v1.DescribeTaskQueueResponse;
/** A DescribeTaskQueue answer as the client decodes it off the wire (Longs, Durations). */
const wire = (r: Record<string, unknown>) =>
  Response.decode(Response.encode(Response.fromObject(r)).finish());

describe('statsOf', () => {
  test('reads count (a Long), age (a Duration) and the rates', () => {
    const r = wire({
      stats: {
        approximateBacklogCount: 812,
        approximateBacklogAge: { seconds: 42, nanos: 500_000_000 },
        tasksAddRate: 3.5,
        tasksDispatchRate: 4.75,
      },
    });
    assert.equal(typeof r.stats?.approximateBacklogCount, 'object', 'a Long');
    assert.deepEqual(statsOf(r), {
      count: 812,
      ageMs: 42_500,
      dispatchPerSecond: 4.75, // float32 on the wire
      addPerSecond: 3.5,
    });
  });

  test('an empty queue: no stats, or stats with nothing set, are zeros', () => {
    const zero = { count: 0, ageMs: 0, dispatchPerSecond: 0, addPerSecond: 0 };
    assert.deepEqual(statsOf(wire({})), zero);
    assert.deepEqual(statsOf(wire({ stats: {} })), zero);
  });
});

/** A describeTaskQueue that answers `count` after `delayMs`, counting its calls. */
function stubService(opts: { delayMs?: number; fail?: () => boolean } = {}) {
  let calls = 0;
  let count = 0;
  const service: DescribeTaskQueue = {
    describeTaskQueue: (async (req: { reportStats?: boolean | null; taskQueue?: unknown }) => {
      calls++;
      assert.equal(req.reportStats, true);
      assert.deepEqual((req.taskQueue as { name: string }).name, 'tq');
      const n = ++count;
      await new Promise((r) => setTimeout(r, opts.delayMs ?? 5));
      if (opts.fail?.()) throw new Error('unavailable');
      return wire({ stats: { approximateBacklogCount: n, tasksDispatchRate: 2 } });
    }) as unknown as DescribeTaskQueue['describeTaskQueue'],
  };
  return { service, calls: () => calls };
}

const queue = { temporal: { namespace: 'default', taskQueue: 'tq' } };

describe('backlogProbe: cached, single flight', () => {
  test('1,000 concurrent callers share one describe', async () => {
    const stub = stubService({ delayMs: 20 });
    const probe = backlogProbe({ workflowService: stub.service }, queue);
    const all = await Promise.all(Array.from({ length: 1000 }, () => probe.get()));
    assert.equal(stub.calls(), 1);
    for (const s of all) assert.deepEqual(s, all[0]);
    assert.equal(all[0]?.count, 1);
    assert.equal(all[0]?.dispatchPerSecond, 2);
  });

  test('within the period: no call; after it, the stale answer at once and one refresh', async () => {
    let t = 0;
    const stub = stubService();
    const probe = backlogProbe({ workflowService: stub.service }, queue, {
      ttlMs: 1000,
      maxStaleMs: 5000,
      now: () => t,
    });
    assert.equal((await probe.get()).count, 1);
    t = 999;
    for (let i = 0; i < 50; i++) assert.equal((await probe.get()).count, 1);
    assert.equal(stub.calls(), 1, 'no call within the period');
    t = 1500;
    // Past the period: served stale at once, while one read refreshes (however many ask).
    const stale = await Promise.all(Array.from({ length: 100 }, () => probe.get()));
    for (const s of stale) assert.equal(s.count, 1);
    assert.equal(stub.calls(), 2, 'one refresh');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal((await probe.get()).count, 2, 'the refreshed answer');
    assert.equal(stub.calls(), 2);
  });

  test('too stale to serve (an idle API): the caller waits for the new read', async () => {
    let t = 0;
    const stub = stubService();
    const probe = backlogProbe({ workflowService: stub.service }, queue, {
      ttlMs: 1000,
      maxStaleMs: 5000,
      now: () => t,
    });
    assert.equal((await probe.get()).count, 1);
    t = 60_000;
    const [a, b] = await Promise.all([probe.get(), probe.get()]);
    assert.equal(a.count, 2);
    assert.equal(b.count, 2);
    assert.equal(stub.calls(), 2);
  });

  test('a failure is kept for the period (one call per period in an outage), then retried', async () => {
    let t = 0;
    let failing = true;
    const stub = stubService({ fail: () => failing });
    const probe = backlogProbe({ workflowService: stub.service }, queue, {
      ttlMs: 1000,
      now: () => t,
    });
    const first = await Promise.allSettled(Array.from({ length: 20 }, () => probe.get()));
    assert.ok(first.every((r) => r.status === 'rejected'));
    await assert.rejects(probe.get(), /unavailable/);
    assert.equal(stub.calls(), 1);
    t = 1000;
    failing = false;
    assert.equal((await probe.get()).count, 2, 'a failed read is never served stale');
    assert.equal(stub.calls(), 2);
  });

  test('a describe that hangs fails after the timeout', async () => {
    const service = {
      describeTaskQueue: () => new Promise(() => undefined),
    } as unknown as DescribeTaskQueue;
    const probe = backlogProbe({ workflowService: service }, queue, { timeoutMs: 30 });
    const t0 = Date.now();
    await assert.rejects(probe.get(), /did not answer within 30 ms/);
    assert.ok(Date.now() - t0 < 1000);
  });
});

describe('[api] max_claim_backlog', () => {
  const ini =
    '[auth_args]\ncinder_url = http://127.0.0.1:8776/v3\nauth_project_id = 9f1c2b7e4d5a4e0b8c3d6f7a1b2c3d4e\n';

  test('defaults to 500; 0 turns it off; the environment overrides it', () => {
    assert.equal(loadConfig({ iniText: ini, env: {} }).api.maxClaimBacklog, 500);
    assert.equal(
      loadConfig({ iniText: `${ini}[api]\nmax_claim_backlog = 0\n`, env: {} }).api.maxClaimBacklog,
      0,
    );
    assert.equal(
      loadConfig({ iniText: ini, env: { POOL__API__MAX_CLAIM_BACKLOG: '40' } }).api.maxClaimBacklog,
      40,
    );
  });

  test('a negative, fractional or non-numeric bound stops the start, naming the key', () => {
    for (const bad of ['-1', '2.5', 'many', ''])
      assert.throws(
        () => loadConfig({ iniText: `${ini}[api]\nmax_claim_backlog = ${bad}\n`, env: {} }),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, String(err));
          assert.match(err.message, /\[api\] max_claim_backlog = /);
          return true;
        },
        bad,
      );
  });
});
