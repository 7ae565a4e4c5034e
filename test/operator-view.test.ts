/**
 * The operator's view when the worker is not there: `pool status`, the dashboard's data and the
 * commands that need a worker answer within seconds and say plainly that no worker polls (a
 * query to a fill would wait for a worker); `fill-now --wait` waits for the run it started, not
 * for one that was running before it. Real stack, the CLI as a real process.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { FastifyInstance } from 'fastify';
import type { Client } from '@temporalio/client';
import { buildApi } from '../api/server';
import { POLL_FRESH_MS, describeQueueWorkers, served } from '../lib/temporal/pollers';
import { connectClient } from '../lib/temporal/connect';
import { ensureSchedules, runsInFlight, type ScheduledRun } from '../lib/temporal/schedules';
import { scheduleIds } from '../contracts/fill';
import { createDb, type Db } from '../lib/pool-state/db';
import { config as stackConfig, sleep, waitFor } from './support/env';
import {
  exited,
  poolEnv,
  setCreateDelay,
  spawnWorker,
  startWorker,
  testConfig,
  wipePool,
  type RunningWorker,
} from './support/pool';

let client: Client;
let db: Db;
let worker: RunningWorker | undefined;
let api: FastifyInstance;
const { config, env } = testConfig(
  poolEnv({ more: 'Debian8 64bit', less: 'Centos7.3 64bit', numsMore: 2, numsLess: 1 }),
);
const ids = scheduleIds(config.temporal.schedulePrefix);
const headers = { authorization: `Bearer ${config.api.apiKeys[0] as string}` };

/** The CLI as a real process; resolves with its output and how long it took. */
function pool(...args: string[]): Promise<{ code: number | null; out: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/pool.ts', ...args], {
      env,
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - t0 });
    });
  });
}

const creatingRows = async () =>
  Number(
    (await db.query(`SELECT count(*) AS n FROM pool_volumes WHERE status = 'creating'`)).rows[0]?.n,
  );

/** Starts a fill by the schedule and returns its run once it creates volumes. */
async function fillInFlight(): Promise<ScheduledRun> {
  const handle = client.schedule.getHandle(ids.fill);
  await handle.trigger();
  const [run] = await waitFor(
    'a scheduled fill running',
    async () => runsInFlight(client, await handle.describe()),
    (x) => x.length > 0,
    20_000,
    200,
  );
  await waitFor('the fill creating volumes', creatingRows, (n) => n > 0, 60_000, 200);
  assert.ok(run);
  return run;
}

before(async () => {
  client = await connectClient(stackConfig);
  db = createDb(stackConfig.databaseUrl, 5);
  await wipePool(db);
  worker = await startWorker(config, db);
  await ensureSchedules(client, config);
  api = buildApi({ config, db, temporal: client });
});
after(async () => {
  setCreateDelay(0);
  await api.close();
  await worker?.stop();
  for (const id of Object.values(ids))
    await client.schedule
      .getHandle(id)
      .delete()
      .catch(() => undefined);
  await wipePool(db);
  await client.connection.close();
  await db.end();
});

describe('operator view', () => {
  test('fill-now --wait with a fill in flight waits for it, then for its own run to close', async (t) => {
    setCreateDelay(4);
    const ahead = await fillInFlight();
    const asked = new Date();
    const r = await pool('fill-now', '--wait');
    const returned = new Date();
    t.diagnostic(`fill-now --wait: ${r.ms} ms\n${r.out}`);
    assert.equal(r.code, 0, r.out);
    assert.match(
      r.out,
      new RegExp(
        `fill ${ahead.workflowId} is running since \\S+: the new fill starts when it ends`,
      ),
    );
    const m = /fill (\S+) \(run (\S+)\) started/.exec(r.out);
    assert.ok(m, `the run it started is named: ${r.out}`);
    const [, workflowId, runId] = m as unknown as [string, string, string];
    assert.notEqual(runId, ahead.runId);
    const mine = await client.workflow.getHandle(workflowId, runId).describe();
    const before = await client.workflow.getHandle(ahead.workflowId, ahead.runId).describe();
    assert.equal(mine.status.name, 'COMPLETED');
    assert.ok(
      mine.startTime >= asked,
      `its run started ${mine.startTime.toISOString()}, after ${asked.toISOString()}`,
    );
    assert.ok(mine.closeTime && mine.closeTime <= returned, 'it returned once its run closed');
    assert.ok(before.closeTime && before.closeTime <= mine.startTime, 'the fill ahead ended first');
    assert.match(r.out, /waiting for .* to end/, 'it said what it waited for');
    assert.match(r.out, /fill done: \d+\/\d+ available/);
  });

  test('worker stopped mid-fill: status, the dashboard and fill-now answer in seconds and say no worker polls', async (t) => {
    await wipePool(db);
    setCreateDelay(15);
    const fill = await fillInFlight();
    await worker?.stop();
    worker = undefined;
    const stopped = Date.now();

    const status = await pool('status');
    t.diagnostic(`pool status without a worker: ${status.ms} ms\n${status.out}`);
    assert.equal(status.code, 0, status.out);
    assert.ok(status.ms < 8_000, `pool status took ${status.ms} ms`);
    assert.match(
      status.out,
      new RegExp(`workers: NO WORKER .*polls task queue ${config.temporal.taskQueue}`),
    );
    assert.match(status.out, /last fill: \S+ RUNNING/);
    assert.match(status.out, new RegExp(`schedule ${ids.fill}: active, next \\S+, running 1`));
    assert.match(
      status.out,
      new RegExp(`  ${fill.workflowId}: running since .*; progress unknown: NO WORKER`),
    );

    const t0 = Date.now();
    const dash = await api.inject({ url: '/v1/dashboard', headers });
    const dashMs = Date.now() - t0;
    t.diagnostic(`GET /v1/dashboard without a worker: ${dashMs} ms`);
    assert.equal(dash.statusCode, 200, dash.body);
    assert.ok(dashMs < 2_000, `the dashboard's data took ${dashMs} ms`);
    const workers = dash.json().workers as { polling: boolean | null; text: string };
    assert.equal(workers.polling, false);
    assert.match(workers.text, /^no worker polling: NO WORKER/);
    assert.ok(
      (dash.json().fills as { finishedAt: string | null }[]).some((f) => f.finishedAt === null),
      'the fill in flight shows, from its record',
    );

    // fill-now --wait refuses at once instead of waiting without end; so do sync-os, reconcile.
    const fillNow = await pool('fill-now', '--wait');
    t.diagnostic(`fill-now --wait without a worker: ${fillNow.ms} ms: ${fillNow.out}`);
    assert.equal(fillNow.code, 1, fillNow.out);
    assert.ok(fillNow.ms < 8_000, `fill-now --wait took ${fillNow.ms} ms`);
    assert.match(fillNow.out, /NO WORKER .*: a fill would wait for one, so nothing was triggered/);
    for (const cmd of ['sync-os', 'reconcile']) {
      const r = await pool(cmd);
      assert.equal(r.code, 1, r.out);
      assert.ok(r.ms < 8_000, `${cmd} took ${r.ms} ms`);
      assert.match(r.out, new RegExp(`NO WORKER .*: ${cmd} would wait for one`));
    }

    // The worker back (later than its stop's slack): it polls again, and the fill goes on.
    await sleep(Math.max(0, stopped + 6_000 - Date.now()));
    setCreateDelay(0);
    worker = await startWorker(config, db);
    const back = await pool('status');
    assert.equal(back.code, 0, back.out);
    assert.match(back.out, /workers: 1 worker\(s\) of build \S+ poll task queue/);
    await client.workflow.getHandle(fill.workflowId, fill.runId).result();
  });

  test('a worker killed outright counts as gone once it has not polled for a while', async (t) => {
    await worker?.stop(); // a clean stop: gone at once; only the process below polls
    worker = undefined;
    const { namespace, taskQueue } = config.temporal;
    const polled = () => describeQueueWorkers(client, namespace, taskQueue);
    const child = spawnWorker({ ...env, POOL__TEMPORAL__SET_CURRENT_ON_START: 'false' });
    try {
      await waitFor('the worker process polling', polled, served, 60_000, 500);
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\n${child.output()}`);
    }
    child.kill('SIGKILL');
    await exited(child);
    const killed = Date.now();
    assert.equal(served(await polled()), true, 'no clean stop: its last poll still counts');
    await waitFor(
      'the killed worker counted as gone',
      polled,
      (q) => !served(q),
      POLL_FRESH_MS + 20_000,
      1000,
    );
    const after = Date.now() - killed;
    t.diagnostic(`a SIGKILLed worker counted as gone after ${after} ms`);
    assert.ok(after >= POLL_FRESH_MS / 2, `gone after ${after} ms: only once its last poll aged`);
    const status = await pool('status');
    assert.match(status.out, /workers: NO WORKER .*polls task queue .*\(last seen \d+ s ago\)/);
  });
});
