/**
 * Worker Versioning, pinned, on the real dev server: a claim that started on build v1 stays on
 * v1 while v2 is current (v2's worker polls the same task queue and never takes it), and ends on
 * v1 when a v1 worker is back; a claim started meanwhile runs on v2. Data-disk claims (plain
 * creation, in a project of the test's own): no pool stock, nothing of the pool's is touched.
 * The deployment and its task queue are the test's own.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { claimWorkflowId, type ClaimInput } from '../contracts/claim';
import { claimVolumeWorkflow } from '../workflows';
import { createDb, type Db } from '../lib/pool-state/db';
import { connectClient } from '../lib/temporal/connect';
import { admin, config as stackConfig, randomProjectId, unique, waitFor } from './support/env';
import { startWorker, testConfig, type RunningWorker } from './support/pool';

const { VersioningBehavior, PendingActivityState } = temporal.api.enums.v1;

let client: Client;
let db: Db;
const workers: RunningWorker[] = [];
const projectId = randomProjectId();
const made: string[] = [];

before(async () => {
  client = await connectClient(stackConfig);
  db = createDb(stackConfig.databaseUrl, 2);
});
after(async () => {
  for (const w of workers.splice(0)) await w.stop().catch(() => undefined);
  const tenant = admin.asProject(projectId, 'tenant-user');
  for (const id of made) await tenant.deleteVolume(id).catch(() => undefined);
  await client.connection.close();
  await db.end();
});

const taskQueue = unique('wv-tq');
const deploymentName = unique('wv');
/** The test's deployment at one build; `current`: the worker makes its build current. */
const build = (buildId: string, current = true) =>
  testConfig({
    POOL__TEMPORAL__TASK_QUEUE: taskQueue,
    POOL__TEMPORAL__DEPLOYMENT_NAME: deploymentName,
    POOL__TEMPORAL__BUILD_ID: buildId,
    POOL__TEMPORAL__SET_CURRENT_ON_START: String(current),
  }).config;

function dataDisk(): ClaimInput {
  return {
    requestId: unique('wv'),
    projectId,
    userId: 'tenant-user',
    name: unique('wv-data'),
    os: null,
    volumeType: 'sas',
    sizeGb: 1,
    systemDisk: false,
  };
}

function startClaim(input: ClaimInput): Promise<WorkflowHandle<typeof claimVolumeWorkflow>> {
  return client.workflow.start(claimVolumeWorkflow, {
    taskQueue,
    workflowId: claimWorkflowId(input.requestId),
    args: [input],
  });
}

/** The build the workflow is pinned to, and the build of every workflow task completed. */
async function builds(handle: WorkflowHandle) {
  const d = await handle.describe();
  const info = d.raw.workflowExecutionInfo?.versioningInfo;
  const history = await handle.fetchHistory();
  const tasks = (history.events ?? [])
    .map((e) => e.workflowTaskCompletedEventAttributes)
    .filter((a) => !!a)
    .map((a) => `${a.deploymentVersion?.deploymentName}.${a.deploymentVersion?.buildId}`);
  return {
    status: d.status.name,
    pinnedTo: `${info?.deploymentVersion?.deploymentName}.${info?.deploymentVersion?.buildId}`,
    behavior: info?.behavior,
    tasks,
  };
}

async function currentBuild(): Promise<string | null | undefined> {
  const d = await client.workflowService.describeWorkerDeployment({
    namespace: stackConfig.temporal.namespace,
    deploymentName,
  });
  return d.workerDeploymentInfo?.routingConfig?.currentDeploymentVersion?.buildId;
}

describe('Worker Versioning (pinned)', () => {
  test('a claim started on v1 ends on v1 while v2 is current; a new claim runs on v2', async () => {
    // v1: the claim's first step (createTenantVolume) is held until the worker stops.
    let entered!: () => void;
    const inFlight = new Promise<void>((r) => (entered = r));
    const v1 = await startWorker(build('v1'), db, {
      activities: (real) => ({
        ...real,
        async createTenantVolume() {
          entered();
          await Context.current().cancelled.catch(() => undefined);
          throw ApplicationFailure.retryable('the v1 worker stopped', 'WorkerStopped');
        },
      }),
    });
    workers.push(v1);
    assert.equal(await currentBuild(), 'v1');
    const old = await startClaim(dataDisk());
    await Promise.race([
      inFlight,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('v1 never ran the claim')), 30_000).unref(),
      ),
    ]);
    await v1.stop();
    workers.splice(workers.indexOf(v1), 1);

    // v2 is deployed and made current: a new claim runs there, start to end.
    workers.push(await startWorker(build('v2'), db));
    assert.equal(await currentBuild(), 'v2');
    const fresh = await startClaim(dataDisk());
    const freshResult = await fresh.result();
    made.push(freshResult.volumeId);
    assert.equal(freshResult.outcome, 'created');
    const f = await builds(fresh);
    assert.equal(f.pinnedTo, `${deploymentName}.v2`);
    assert.equal(f.behavior, VersioningBehavior.VERSIONING_BEHAVIOR_PINNED);
    assert.ok(f.tasks.length > 0);
    assert.deepEqual(new Set(f.tasks), new Set([`${deploymentName}.v2`]), f.tasks.join(', '));

    // The old claim waits for v1: its retry is scheduled, the v2 worker on its queue leaves it.
    const pending = await waitFor(
      'the old claim retry scheduled',
      async () => (await old.describe()).raw.pendingActivities?.[0],
      (a) => (a?.attempt ?? 0) >= 2,
      30_000,
      250,
    );
    assert.equal(pending?.activityType?.name, 'createTenantVolume');
    await new Promise((r) => setTimeout(r, 3000)); // past the retry's backoff (1 s)
    const waiting = await builds(old);
    assert.equal(waiting.status, 'RUNNING');
    assert.equal(waiting.pinnedTo, `${deploymentName}.v1`);
    assert.equal(waiting.behavior, VersioningBehavior.VERSIONING_BEHAVIOR_PINNED);
    assert.deepEqual(new Set(waiting.tasks), new Set([`${deploymentName}.v1`]));
    const stillScheduled = (await old.describe()).raw.pendingActivities?.[0];
    assert.equal(stillScheduled?.state, PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED);

    // A v1 worker comes back, not made current: the old claim ends there, v2 stays current.
    workers.push(await startWorker(build('v1', false), db));
    const oldResult = await old.result();
    made.push(oldResult.volumeId);
    assert.equal(oldResult.outcome, 'created');
    const o = await builds(old);
    assert.equal(o.status, 'COMPLETED');
    assert.deepEqual(new Set(o.tasks), new Set([`${deploymentName}.v1`]), o.tasks.join(', '));
    assert.equal(await currentBuild(), 'v2');
  });
});
