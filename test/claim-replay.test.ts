/**
 * Replays that cannot break: a claim whose first local activity (the reservation) outlives the
 * workflow task timeout, so the SDK extends the task and the reservation's marker lands in a
 * later workflow task than the code that follows it ran in. Its worker is then killed while the
 * claim waits for its volume, and a fresh worker (no cache: it replays from history) finishes
 * it. The history, taken from the real server, also replays on the current code.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import type { Db } from '../lib/pool-state/db';
import { claimVolumeWorkflow } from '../workflows';
import { claimWorkflowId, type ClaimInput } from '../contracts/claim';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import { tenant, unique, waitFor } from './support/env';
import {
  closeStack,
  exited,
  openStack,
  poolEnv,
  setCreateDelay,
  spawnWorker,
  testConfig,
  workflowBundle,
} from './support/pool';

const EventType = temporal.api.enums.v1.EventType;
let client: Client;
let db: Db;
const { config, env } = testConfig(poolEnv({ more: 'Debian8 64bit', numsMore: 0 }));

before(async () => ({ client, db } = await openStack(5, { wipe: true })));
after(() => closeStack({ client, db }));

describe('claim replay under load (real stack)', () => {
  test('a reservation that outlives its workflow task, then a worker restart: the claim completes, its history replays', async () => {
    setCreateDelay(8);
    // The reservation takes 12 s: past the 10 s workflow task timeout, so the task is extended.
    const slow = spawnWorker({ ...env, WARMPOOL_DELAYS: 'claim.reserve=12000' });
    const slowGone = exited(slow);
    const input: ClaimInput = {
      requestId: unique('replay'),
      projectId: TENANT_PROJECTS.alpha,
      userId: TENANT_USER,
      name: unique('vm-replay'),
      os: 'Debian8 64bit',
      volumeType: 'sas',
      sizeGb: null,
      systemDisk: true,
    };
    const handle = await client.workflow.start(claimVolumeWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: claimWorkflowId(input.requestId),
      args: [input],
    });
    // The pool is empty: after the reservation the claim creates and waits for its volume.
    await waitFor(
      'the claim waiting for its volume',
      async () => (await handle.describe()).raw.pendingActivities ?? [],
      (pending) => pending.some((a) => a.activityType?.name === 'awaitTenantVolume'),
      90_000,
      500,
    );
    const { events } = await handle.fetchHistory();
    const types = (events ?? []).map((e) => e.eventType);
    const marker = types.indexOf(EventType.EVENT_TYPE_MARKER_RECORDED);
    const completedBefore = types
      .slice(0, marker)
      .filter((t) => t === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED).length;
    assert.ok(
      completedBefore >= 2,
      'the reservation outlived a workflow task: its marker is in a later task than its start',
    );
    slow.kill('SIGKILL');
    await slowGone;
    // A fresh worker replays the claim from its history, then finishes it.
    const fresh = spawnWorker({ ...env, POOL__TEMPORAL__MAX_CACHED_WORKFLOWS: '0' });
    const freshGone = exited(fresh);
    try {
      const result = await handle.result();
      assert.equal(result.outcome, 'created');
      const named = await tenant('alpha').listVolumes({ name: input.name });
      assert.deepEqual(
        named.map((v) => v.id),
        [result.volumeId],
      );
      // And the whole history replays on the current code.
      const history = await handle.fetchHistory();
      await Worker.runReplayHistory(
        { workflowBundle: await workflowBundle(), replayName: 'replay-under-load' },
        history,
        handle.workflowId,
      );
      await tenant('alpha').deleteVolume(result.volumeId);
    } finally {
      fresh.kill('SIGTERM');
      await freshGone;
      setCreateDelay(0);
    }
  });
});
