/**
 * The fill workflow with mocked activities, in seconds: a local Temporal test server, one worker,
 * the workflow's decisions checked through the calls its activities received.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { ApplicationFailure } from '@temporalio/client';
import type { Activities } from '../../activities';
import * as workflows from '../../workflows';
import { fillPoolWorkflow } from '../../workflows';
import {
  FILL_WORKFLOWS,
  type CreateOrder,
  type CreatePoolVolumeInput,
  type FillPlan,
  type FillProgress,
} from '../../contracts/fill';
import { CINDER_FAILURES } from '../../contracts/cinder';
import { localTemporal, mockActivities, workflowBundle, type Calls } from './workflow-harness';

let env: TestWorkflowEnvironment;

before(async () => {
  env = await localTemporal();
  await workflowBundle();
});
after(async () => {
  await env?.teardown();
});

/** Every activity the fill may call; any call a test did not answer fails the run. */
const FILL_ACTIVITIES: (keyof Activities)[] = [
  'recordRun',
  'reconcile',
  'resolveImages',
  'planFill',
  'createPoolVolume',
  'awaitPoolVolume',
  'drainPoolVolume',
  'checkPoolState',
  'listDrainable',
];

const RECONCILED = {
  pass: 1,
  tagged: 0,
  unknownSeenOnce: 0,
  adopted: [],
  deletedLeaks: [],
  rowsWithoutVolume: 0,
};

const order = (type: string, os: string, missing: number): CreateOrder => ({
  os,
  type,
  snapshotId: `snap-${type}`,
  volumeType: type,
  sizeGb: 1,
  missing,
});

function plan(over: Partial<FillPlan> = {}): FillPlan {
  return {
    orders: [],
    drain: [],
    staleTotal: 0,
    settings: { concurrency: 4, createIntervalSeconds: 0, drainPerRun: 10, namePrefix: 'wp' },
    ...over,
  };
}

/** The steps every fill takes before it creates: reconcile, resolve, plan, and its records. */
const planning = (p: FillPlan) => ({
  recordRun: () => undefined,
  reconcile: () => RECONCILED,
  resolveImages: () => ({ images: [], skipped: [], changed: [] }),
  planFill: () => p,
});

let seq = 0;

async function fill(
  answers: Partial<Record<keyof Activities, (input: never) => unknown>>,
  calls: Calls,
): Promise<FillProgress> {
  const taskQueue = `unit-fill-${++seq}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: mockActivities(FILL_ACTIVITIES, answers, calls),
  });
  return worker.runUntil(
    env.client.workflow.execute(fillPoolWorkflow, {
      taskQueue,
      workflowId: `unit-fill-${process.pid}-${seq}`,
      args: [{ reason: 'unit' }],
    }),
  );
}

const named = (calls: Calls, name: keyof Activities) => calls.filter((c) => c.name === name);

describe('fill workflow (mocked activities, local test server)', () => {
  test('the workflow type names of the contract are workflows the worker registers', () => {
    for (const name of Object.values(FILL_WORKFLOWS))
      assert.equal(typeof (workflows as Record<string, unknown>)[name], 'function', name);
  });

  test('a first fill creates the planned volumes round-robin, at most `concurrency` in flight', async () => {
    const calls: Calls = [];
    let inFlight = 0;
    let most = 0;
    let ids = 0;
    const p = await fill(
      {
        ...planning(
          plan({
            orders: [order('sas', 'Debian8 64bit', 3), order('ssd', 'Debian8 64bit', 1)],
            settings: {
              concurrency: 2,
              createIntervalSeconds: 0,
              drainPerRun: 10,
              namePrefix: 'wp',
            },
          }),
        ),
        createPoolVolume: () => {
          most = Math.max(most, ++inFlight);
          return { rowId: ++ids, volumeId: `vol-${ids}` };
        },
        awaitPoolVolume: async () => {
          await new Promise((r) => setTimeout(r, 50));
          inFlight--;
          return 'available';
        },
      },
      calls,
    );
    assert.deepEqual(
      [p.phase, p.planned, p.requested, p.available, p.failed, p.stoppedBy],
      ['done', 4, 4, 4, 0, null],
    );
    assert.deepEqual(p.perPool, {
      'sas/Debian8 64bit': { planned: 3, available: 3, failed: 0 },
      'ssd/Debian8 64bit': { planned: 1, available: 1, failed: 0 },
    });
    const creates = named(calls, 'createPoolVolume').map((c) => c.input as CreatePoolVolumeInput);
    // Round-robin, the emptiest pool first: every pool gets stock early.
    assert.deepEqual(
      creates.map((c) => c.type),
      ['sas', 'ssd', 'sas', 'sas'],
    );
    assert.ok(creates.every((c) => c.name.startsWith(`wp-${c.type}-debian8-64bit-`)));
    assert.equal(new Set(creates.map((c) => c.name)).size, 4, 'each create has its own name');
    assert.ok(most <= 2, `${most} creates in flight, concurrency 2`);
    // The run is recorded when it starts and when it ends.
    const runs = named(calls, 'recordRun').map((c) => c.input as { finished?: boolean });
    assert.deepEqual(
      runs.map((r) => r.finished ?? false),
      [false, true],
    );
  });

  test('over quota stops creating for this run and says why; a failed create or volume is counted', async () => {
    const calls: Calls = [];
    let creates = 0;
    const p = await fill(
      {
        ...planning(
          plan({
            orders: [order('sas', 'Debian8 64bit', 5)],
            settings: {
              concurrency: 1,
              createIntervalSeconds: 0,
              drainPerRun: 10,
              namePrefix: 'wp',
            },
          }),
        ),
        createPoolVolume: () => {
          creates++;
          if (creates === 2)
            throw ApplicationFailure.nonRetryable('no such snapshot', CINDER_FAILURES.badRequest);
          if (creates === 4)
            throw ApplicationFailure.nonRetryable(
              'VolumeLimitExceeded: quota of volumes exceeded',
              CINDER_FAILURES.overLimit,
            );
          return { rowId: creates, volumeId: `vol-${creates}` };
        },
        awaitPoolVolume: (input: { rowId: number }) => (input.rowId === 3 ? 'failed' : 'available'),
      },
      calls,
    );
    // Create 1 available, 2 refused, 3 went to error, 4 over quota: the fifth is never asked.
    assert.equal(named(calls, 'createPoolVolume').length, 4);
    assert.equal(named(calls, 'awaitPoolVolume').length, 2);
    assert.deepEqual([p.planned, p.requested, p.available, p.failed], [5, 2, 1, 2]);
    assert.match(p.stoppedBy ?? '', /^quota: .*quota of volumes exceeded/);
    assert.equal(p.errors.length, 2);
    assert.match(p.errors[0] ?? '', /no such snapshot/);
    assert.match(p.errors[1] ?? '', /: failed$/);
    const last = named(calls, 'recordRun').at(-1)?.input as { summary: FillProgress };
    assert.equal(last.summary.stoppedBy, p.stoppedBy, 'the run record says why it stopped');
  });

  test('stale stock is drained alongside the creates; a failed drain is recorded, not fatal', async () => {
    const calls: Calls = [];
    const p = await fill(
      {
        ...planning(plan({ orders: [order('sas', 'Debian8 64bit', 1)], drain: [11, 12, 13] })),
        createPoolVolume: () => ({ rowId: 1, volumeId: 'vol-1' }),
        awaitPoolVolume: () => 'available',
        drainPoolVolume: (rowId: number) => {
          if (rowId === 13)
            throw ApplicationFailure.nonRetryable('volume is in-use', CINDER_FAILURES.badRequest);
          return rowId === 11; // 12: a claim won it meanwhile
        },
      },
      calls,
    );
    assert.deepEqual(
      named(calls, 'drainPoolVolume')
        .map((c) => c.input as number)
        .sort(),
      [11, 12, 13],
    );
    assert.deepEqual([p.phase, p.drained, p.available], ['done', 1, 1]);
    assert.deepEqual(p.errors, ['drain of row 13: volume is in-use']);
  });

  test('nothing missing, nothing stale: no create, no drain', async () => {
    const calls: Calls = [];
    const p = await fill(planning(plan({ staleTotal: 0 })), calls);
    assert.deepEqual(
      calls.map((c) => c.name),
      ['recordRun', 'reconcile', 'resolveImages', 'planFill', 'recordRun'],
    );
    assert.deepEqual([p.phase, p.planned, p.drained], ['done', 0, 0]);
  });
});
