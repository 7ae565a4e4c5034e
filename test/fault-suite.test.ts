/**
 * The pool's peers failing under load, for real: cinder-api killed and restarted mid-burst,
 * PostgreSQL restarted mid-burst and mid-fill, RabbitMQ restarted while volumes are being
 * created, and two worker processes on one task queue with one SIGKILLed mid-fill. After each,
 * the invariants are checked from Cinder itself: every claim's volume in the right project with
 * the right name, none twice, nothing left reserved or awaiting transfer, pool rows = tagged
 * admin volumes, no duplicate pool names, and (two workers) the rate limit and concurrency held.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { exclusive } from '../activities/guard';
import { buildApi } from '../api/server';
import { type Db } from '../lib/pool-state/db';
import { PoolRepository } from '../lib/pool-state/repository';
import { checkPoolStateWorkflow, fillPoolWorkflow } from '../workflows';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import { admin, sleep, unique, waitFor } from './support/env';
import {
  assertFillLimits,
  exited,
  poolEnv,
  setCreateDelay,
  spawnWorker,
  taggedVolumes,
  testConfig,
  wipePool,
  openStack,
  closeStack,
} from './support/pool';

const ROOT = resolve(__dirname, '..');
let client: Client;
let db: Db;
let repo: PoolRepository;

before(async () => {
  ({ client, db } = await openStack(10, { wipe: true }));
  repo = new PoolRepository(db);
});
after(() => closeStack({ client, db }));

const stack = (...args: string[]) =>
  execFileSync('bash', [`${ROOT}/scripts/stack.sh`, ...args], { stdio: 'pipe' });

function restartPostgres(): void {
  const version = readdirSync('/etc/postgresql')[0] as string;
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart']);
}

function restartRabbit(): void {
  execFileSync('rabbitmqctl', ['stop_app'], { stdio: 'pipe' });
  execFileSync('rabbitmqctl', ['start_app'], { stdio: 'pipe' });
}

/**
 * Two worker processes on one task queue, stopped at the end. Unless the test kills one itself,
 * both must still be alive afterwards: a peer's fault never takes a worker down.
 */
async function withWorkers<T>(
  env: NodeJS.ProcessEnv,
  fn: (workers: ReturnType<typeof spawnWorker>[]) => Promise<T>,
  { mayDie = false } = {},
): Promise<T> {
  const workers = [spawnWorker(env), spawnWorker(env)];
  const gone = workers.map(exited);
  try {
    const result = await fn(workers);
    if (!mayDie)
      for (const w of workers)
        assert.ok(
          w.exitCode === null && w.signalCode === null,
          `a worker died (${w.signalCode ?? w.exitCode}):\n${w.output().slice(-2000)}`,
        );
    return result;
  } finally {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
    await Promise.all(gone);
  }
}

async function fill(taskQueue: string) {
  return client.workflow.execute(fillPoolWorkflow, {
    taskQueue,
    workflowId: unique('fault-fill'),
    args: [{ reason: 'test' }],
  });
}

/** Pool rows and tagged admin volumes agree, all settled, no pool name twice. */
async function assertPoolConsistent(): Promise<void> {
  const rows = await repo.listAll();
  assert.deepEqual(
    rows.filter((r) => r.status === 'reserved'),
    [],
    'nothing left reserved',
  );
  const tagged = await taggedVolumes();
  assert.deepEqual(
    tagged.map((v) => v.id).sort(),
    rows
      .map((r) => r.volumeId)
      .filter((x): x is string => !!x)
      .sort(),
    'pool rows = tagged admin volumes',
  );
  assert.equal(new Set(tagged.map((v) => v.name)).size, tagged.length, 'a pool name twice');
  for (const v of tagged) assert.equal(v.status, 'available', `${v.id} left ${v.status}`);
}

/** N concurrent claims through the API while `fault` runs; checks every invariant after. */
async function burstWithFault(n: number, fault: () => Promise<void>): Promise<void> {
  const { config, env } = testConfig({
    ...poolEnv({ more: 'Debian8 64bit', numsMore: Math.ceil((n * 2) / 3), concurrency: 4 }),
    POOL__API__CLAIM_WAIT_SECOND: '240',
  });
  await wipePool(db);
  await withWorkers(env, async () => {
    await fill(config.temporal.taskQueue);
    const app: FastifyInstance = buildApi({ config, db, temporal: client });
    try {
      const projects = [TENANT_PROJECTS.alpha, TENANT_PROJECTS.beta];
      const reqs = Array.from({ length: n }, (_, i) => ({
        requestId: unique('burst'),
        projectId: projects[i % 2] as string,
        name: unique('vm-burst'),
        os: 'Debian8 64bit',
        volumeType: 'sas',
      }));
      const replies = Promise.all(
        reqs.map((payload) =>
          app.inject({
            method: 'POST',
            url: '/v1/claims',
            headers: { authorization: `Bearer ${config.api.apiKeys[0]}` },
            payload,
          }),
        ),
      );
      await fault();
      const done = await replies;
      for (const r of done) assert.equal(r.statusCode, 201, r.body);
      const ids = done.map((r) => r.json().volumeId as string);
      assert.equal(new Set(ids).size, n, 'no volume handed out twice');
      const outcomes = done.map((r) => r.json().outcome as string);
      assert.ok(outcomes.includes('pool'), outcomes.join(','));
      const everyone = await admin.listVolumes({ allTenants: true });
      for (let i = 0; i < n; i++) {
        const req = reqs[i] as (typeof reqs)[number];
        const mine = everyone.filter((v) => v.name === req.name && v.status !== 'deleting');
        assert.deepEqual(
          mine.map((v) => v.id),
          [ids[i]],
          `claim ${i}: exactly its one volume under that name`,
        );
        assert.equal(mine[0]?.projectId, req.projectId, `claim ${i} in the wrong project`);
        assert.equal(mine[0]?.status, 'available');
      }
      const transfers = await admin.listTransfers({ allTenants: true });
      assert.ok(!transfers.some((t) => ids.includes(t.volumeId)), 'a transfer left pending');
      await assertPoolConsistent();
      for (const id of ids) await admin.deleteVolume(id);
    } finally {
      await app.close();
    }
  });
}

describe('faults of the real peers', () => {
  test('cinder-api killed (SIGKILL) and restarted mid-burst of 12 claims', async () => {
    await burstWithFault(12, async () => {
      await sleep(300);
      stack('kill', 'cinder-api');
      await sleep(3000);
      stack('start', 'cinder-api');
    });
  });

  test('PostgreSQL restarted mid-burst of 12 claims', async () => {
    await burstWithFault(12, async () => {
      await sleep(300);
      restartPostgres();
    });
  });

  test('a step holding its lock session across a PostgreSQL restart: the process lives on', async () => {
    // The session is checked out and idle while the step makes its Cinder calls; the restart's
    // "terminating connection" used to reach it as an unhandled 'error' and kill the worker.
    const key = unique('pg-restart-lock');
    const during = await new MockActivityEnvironment().run(() =>
      exclusive(db, key, async () => {
        restartPostgres();
        await sleep(500);
        return 'finished';
      }),
    );
    assert.equal(during, 'finished');
    // The lost session released its lock with it: the next attempt takes it at once.
    const next = await waitFor(
      'PostgreSQL back',
      () =>
        new MockActivityEnvironment()
          .run(() => exclusive(db, key, async () => 'again'))
          .catch((err: Error) => err.message),
      (r) => r === 'again',
      30_000,
      500,
    );
    assert.equal(next, 'again');
  });

  test('PostgreSQL restarted mid-fill: the fill completes, nothing doubled', async () => {
    await wipePool(db);
    setCreateDelay(0.5);
    const { config, env } = testConfig(
      poolEnv({ more: 'Debian8 64bit', numsMore: 8, concurrency: 2 }),
    );
    await withWorkers(env, async () => {
      const run = fill(config.temporal.taskQueue);
      await waitFor(
        'the fill under way',
        () => repo.listAll(),
        (r) => r.length >= 2,
        30_000,
        100,
      );
      restartPostgres();
      const result = await run;
      assert.equal(result.phase, 'done');
      // Whatever a failed step left, the next fill completes the pool.
      await fill(config.temporal.taskQueue);
      assert.equal((await repo.listAll()).filter((r) => r.status === 'available').length, 8);
      await assertPoolConsistent();
    });
    setCreateDelay(0);
  });

  test('RabbitMQ restarted while pool volumes are being created', async () => {
    await wipePool(db);
    setCreateDelay(2);
    const { config, env } = testConfig({
      ...poolEnv({ more: 'Debian8 64bit', numsMore: 6, concurrency: 3 }),
      POOL__VOLUMES_BACKUP__CREATING_TIMEOUT_MINUTE: '0.75',
    });
    try {
      await withWorkers(env, async () => {
        const run = fill(config.temporal.taskQueue);
        await waitFor(
          'volumes creating',
          () => repo.listAll(),
          (r) => r.some((x) => x.volumeId),
          30_000,
          100,
        );
        restartRabbit();
        await run;
        // A create whose message was lost stays `creating` until its timeout: the check and the
        // next fills remove and replace it.
        await waitFor(
          'the pool whole again',
          async () => {
            await client.workflow.execute(checkPoolStateWorkflow, {
              taskQueue: config.temporal.taskQueue,
              workflowId: unique('fault-check'),
            });
            await fill(config.temporal.taskQueue);
            return (await repo.listAll()).filter((r) => r.status === 'available').length;
          },
          (n) => n === 6,
          180_000,
          2000,
        );
        await assertPoolConsistent();
      });
    } finally {
      setCreateDelay(0);
    }
  });

  test('two workers, one SIGKILLed mid-fill: the fill completes, rate limit and concurrency hold', async () => {
    await wipePool(db);
    setCreateDelay(1);
    const I = 1;
    const C = 2;
    const { config, env } = testConfig(
      poolEnv({ more: 'Debian8 64bit', numsMore: 8, concurrency: C, intervalSeconds: I }),
    );
    try {
      await withWorkers(
        env,
        async (workers) => {
          const run = fill(config.temporal.taskQueue);
          await waitFor(
            'the fill under way',
            () => repo.listAll(),
            (r) => r.length >= 3,
            60_000,
            100,
          );
          workers[0]?.kill('SIGKILL');
          const result = await run;
          assert.equal(result.phase, 'done');
          await fill(config.temporal.taskQueue); // replaces whatever the killed worker's steps lost
        },
        { mayDie: true },
      );
      const rows = await repo.listAll();
      assert.equal(rows.filter((r) => r.status === 'available').length, 8);
      // A volume adopted by a retry (its create's answer died with the worker) has no slot time.
      const timed = rows.filter((r) => r.requestedAt && r.readyAt).length;
      assert.ok(timed >= 6, `${timed} rows with their slot time`);
      assertFillLimits(rows, I, C);
      await assertPoolConsistent();
    } finally {
      setCreateDelay(0);
    }
  });
});
