/**
 * Graceful shutdown, as an orchestrator stops a process (SIGTERM, then SIGKILL after its grace
 * period): (1) a worker stopped mid-burst lets its in-flight hand-offs and creations finish, so
 * that no claim's step runs a second time (no workflow task failed or timed out, no activity
 * retried) and the worker exits by itself within its grace time; (2) an API server stopped with
 * claims waiting on it answers each of them at once (202 and where to look, the claims go on in
 * Temporal) instead of holding them for the rest of their wait, and exits by itself.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { type Db } from '../lib/pool-state/db';
import { claimVolumeWorkflow, fillPoolWorkflow } from '../workflows';
import { claimWorkflowId, type ClaimInput, type ClaimResult } from '../contracts/claim';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import { unique, waitFor, sleep } from './support/env';
import {
  closeStack,
  exited,
  openStack,
  poolEnv,
  setCreateDelay,
  spawnWorker,
  testConfig,
  wipePool,
} from './support/pool';

const EventType = temporal.api.enums.v1.EventType;
const TimeoutType = temporal.api.enums.v1.TimeoutType;

let client: Client;
let db: Db;
const STOCK = 8;
const { config, env } = testConfig(poolEnv({ more: 'Debian8 64bit', numsMore: STOCK }));

before(async () => ({ client, db } = await openStack(5)));
after(() => closeStack({ client, db }));

function claimInput(systemDisk = true): ClaimInput {
  return {
    requestId: unique('term'),
    projectId: TENANT_PROJECTS.alpha,
    userId: TENANT_USER,
    name: unique('vm-term'),
    os: 'Debian8 64bit',
    volumeType: 'sas',
    sizeGb: systemDisk ? null : 1,
    systemDisk,
    // What the API sets for a claim naming no zone: the default one, where the fill stocks.
    zone: config.pool.defaultZone,
  };
}

async function stock(): Promise<void> {
  await wipePool(db);
  const child = spawnWorker(env);
  try {
    await client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: unique('fill'),
      args: [{}],
    });
  } finally {
    child.kill('SIGTERM');
    await exited(child);
  }
}

/** What in a claim's history means one of its steps ran again: a lost task or a retry. */
async function reruns(workflowId: string): Promise<string[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const found: string[] = [];
  for (const e of history.events ?? []) {
    if (e.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
      found.push('workflow task failed');
    const timedOut = e.workflowTaskTimedOutEventAttributes;
    // A sticky task's schedule-to-start timeout only moves it to the normal queue: nothing re-runs.
    if (timedOut && timedOut.timeoutType === TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)
      found.push('workflow task timed out while running');
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT)
      found.push('activity timed out');
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED) found.push('activity failed');
    const started = e.activityTaskStartedEventAttributes;
    if (started && (started.attempt ?? 1) > 1) found.push(`activity attempt ${started.attempt}`);
  }
  return found;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

function spawnApi(extra: NodeJS.ProcessEnv): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
    env: { ...env, LOG_LEVEL: 'warn', ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return Object.assign(child, { output: () => out });
}

describe('graceful shutdown (SIGTERM)', () => {
  test('a worker stopped mid-burst finishes its hand-offs and creations: no claim step runs twice', async () => {
    await stock();
    setCreateDelay(3); // the plain creations below are in flight at SIGTERM
    // Each hand-off waits 2 s between its transfer and the accept: SIGTERM lands inside them.
    const slow = { ...env, WARMPOOL_DELAYS: 'claim.before-accept=2000' };
    const first = spawnWorker(slow);
    const firstExit = exited(first);
    let second: ReturnType<typeof spawnWorker> | undefined;
    try {
      const inputs = [
        ...Array.from({ length: STOCK - 2 }, () => claimInput(true)),
        ...Array.from({ length: 3 }, () => claimInput(false)),
      ];
      const handles = await Promise.all(
        inputs.map((input) =>
          client.workflow.start(claimVolumeWorkflow, {
            taskQueue: config.temporal.taskQueue,
            workflowId: claimWorkflowId(input.requestId),
            args: [input],
          }),
        ),
      );
      // Mid-burst: hand-offs hold transfers (rows `transferring`) when the worker is told to stop.
      await waitFor(
        'hand-offs in flight',
        async () =>
          (
            await db.query<{ n: string }>(
              `SELECT count(*) AS n FROM pool_volumes WHERE handoff_state = 'transferring'`,
            )
          ).rows[0]?.n,
        (n) => Number(n) >= 2,
        60_000,
        100,
      );
      const stopAt = Date.now();
      first.kill('SIGTERM');
      second = spawnWorker(env); // the replacement an orchestrator starts
      const code = await firstExit;
      const tookMs = Date.now() - stopAt;
      assert.equal(code, 0, `the worker exits by itself, cleanly:\n${first.output()}`);
      assert.ok(tookMs < 20_000 + 5_000, `stopped in ${tookMs} ms (grace 20 s)`);

      const results: ClaimResult[] = await Promise.all(handles.map((h) => h.result()));
      assert.deepEqual(
        results.map((r) => r.outcome),
        inputs.map((i) => (i.systemDisk ? 'pool' : 'created')),
      );
      const again: string[] = [];
      for (const h of handles)
        for (const r of await reruns(h.workflowId)) again.push(`${h.workflowId}: ${r}`);
      assert.deepEqual(again, [], 'no claim step ran twice because of the shutdown');
    } finally {
      setCreateDelay(0);
      for (const w of [first, second])
        if (w && w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
      await firstExit;
      if (second) await exited(second);
    }
  });

  test('an API stopped with claims waiting answers each at once (202) and exits by itself', async () => {
    await stock();
    const port = await freePort();
    const key = 'graceful-shutdown-test-key';
    // Hand-offs take 8 s: the requests below wait on them (claim_wait_second 20) at SIGTERM.
    const worker = spawnWorker({ ...env, WARMPOOL_DELAYS: 'claim.before-accept=8000' });
    const api = spawnApi({ API_KEYS: key, POOL__API__PORT: String(port) });
    const apiExit = exited(api);
    try {
      const base = `http://127.0.0.1:${port}`;
      await waitFor(
        'the API listening',
        () =>
          fetch(`${base}/healthz`).then(
            (r) => r.status,
            () => 0,
          ),
        (s) => s === 200,
        30_000,
        200,
      );
      const bodies = Array.from({ length: 3 }, () => {
        const { userId: _u, systemDisk: _s, sizeGb: _g, zone: _z, ...body } = claimInput(true);
        return body;
      });
      const sent = bodies.map((body) =>
        fetch(`${base}/v1/claims`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        }).then(async (r) => ({ status: r.status, location: r.headers.get('location') })),
      );
      await waitFor(
        'the claims started',
        () =>
          Promise.all(
            bodies.map((b) =>
              client.workflow
                .getHandle(claimWorkflowId(b.requestId))
                .describe()
                .then(
                  () => true,
                  () => false,
                ),
            ),
          ),
        (started) => started.every(Boolean),
        30_000,
        200,
      );
      await sleep(500);
      const stopAt = Date.now();
      api.kill('SIGTERM');
      const answers = await Promise.all(sent);
      const answeredMs = Date.now() - stopAt;
      assert.deepEqual(
        answers,
        bodies.map((b) => ({ status: 202, location: `/v1/claims/${b.requestId}` })),
      );
      assert.ok(answeredMs < 3000, `answered ${answeredMs} ms after SIGTERM (hand-offs take 8 s)`);
      assert.equal(await apiExit, 0, api.output());
      // The claims went on without the API.
      for (const b of bodies) {
        const r = await client.workflow.getHandle(claimWorkflowId(b.requestId)).result();
        assert.equal(r.outcome, 'pool');
      }
    } finally {
      if (api.exitCode === null && api.signalCode === null) api.kill('SIGKILL');
      await apiExit;
      worker.kill('SIGTERM');
      await exited(worker);
    }
  });
});
