/**
 * The claim workflow with mocked activities, in seconds: a local Temporal test server (the
 * installed `temporal` binary: nothing is downloaded here), one worker, the workflow's decisions
 * checked through the calls its activities received.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundle } from '@temporalio/worker';
import { ApplicationFailure, WithStartWorkflowOperation } from '@temporalio/client';
import type { Activities } from '../../activities';
import { claimVolumeWorkflow } from '../../workflows';
import {
  claimDeliveredUpdate,
  claimWorkflowId,
  type ClaimInput,
  type ClaimResult,
} from '../../contracts/claim';
import { ensureSearchAttributes } from '../../lib/temporal/search-attributes';
import { localTemporal, mockActivities, workflowBundle, type Calls } from './workflow-harness';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundle;

before(async () => {
  env = await localTemporal();
  await ensureSearchAttributes(env.client, 'default');
  bundle = await workflowBundle();
});
after(async () => {
  await env?.teardown();
});

/** The claim's activities answering as a test wants; any other call fails the claim. */
const CLAIM_ACTIVITIES: (keyof Activities)[] = [
  'reserveForClaim',
  'reservePoolVolume',
  'deliverPoolVolume',
  'returnToPool',
  'createTenantVolume',
  'awaitTenantVolume',
  'releaseClaimName',
  'extendTenantVolume',
  'resolveImages',
];
const mocks = (answers: Parameters<typeof mockActivities>[1], calls: Calls) =>
  mockActivities(CLAIM_ACTIVITIES, answers, calls);

const IMAGE = { snapshotId: 'snap-1', volumeType: 'sas', sizeGb: 1 };
const RESERVED = { rowId: 7, volumeId: 'vol-pool', sizeGb: 1, snapshotId: 'snap-1' };
let seq = 0;

async function claim(
  activities: ReturnType<typeof mocks>,
  over: Partial<ClaimInput> = {},
): Promise<{ answer: ClaimResult; result: ClaimResult }> {
  const input: ClaimInput = {
    requestId: `unit-${process.pid}-${++seq}`,
    projectId: '1e5f0c9a7b3d4f2e8a6c5b4d3e2f1a0b',
    userId: 'tenant-user',
    name: `vm-${seq}`,
    os: 'Debian8 64bit',
    volumeType: 'sas',
    sizeGb: null,
    systemDisk: true,
    ...over,
  };
  const taskQueue = `unit-${seq}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: bundle,
    activities,
  });
  return worker.runUntil(async () => {
    const start = new WithStartWorkflowOperation(claimVolumeWorkflow, {
      taskQueue,
      workflowId: claimWorkflowId(input.requestId),
      args: [input],
      workflowIdConflictPolicy: 'FAIL',
    });
    const answer = await env.client.workflow.executeUpdateWithStart(claimDeliveredUpdate, {
      args: [{}],
      startWorkflowOperation: start,
    });
    const result = await (await start.workflowHandle()).result();
    return { answer, result };
  });
}

describe('claim workflow (mocked activities, local test server)', () => {
  test('a pool hit: the hand-off delivers (row, refill, name lock); the claim ends with its answer', async () => {
    const calls: Calls = [];
    const { answer, result } = await claim(
      mocks(
        {
          reserveForClaim: () => ({ image: IMAGE, reserved: RESERVED }),
          deliverPoolVolume: () => ({
            existing: false,
            volumeId: 'vol-pool',
            sizeGb: 1,
            nameReleased: true,
          }),
        },
        calls,
      ),
    );
    assert.equal(answer.outcome, 'pool');
    assert.equal(answer.volumeId, 'vol-pool');
    assert.deepEqual(result.volumeId, answer.volumeId);
    // Reserve, deliver: no step after the hand-off.
    assert.deepEqual(
      calls.map((c) => c.name),
      ['reserveForClaim', 'deliverPoolVolume'],
    );
  });

  test('a delivered volume that must grow: extended, then the claim releases the name', async () => {
    const calls: Calls = [];
    const { answer } = await claim(
      mocks(
        {
          reserveForClaim: () => ({ image: IMAGE, reserved: RESERVED }),
          deliverPoolVolume: () => ({
            existing: false,
            volumeId: 'vol-pool',
            sizeGb: 1,
            nameReleased: false,
          }),
          extendTenantVolume: () => ({ sizeGb: 3, extendError: null }),
          releaseClaimName: () => undefined,
        },
        calls,
      ),
      { sizeGb: 3 },
    );
    assert.equal(answer.outcome, 'pool');
    assert.deepEqual(
      calls.map((c) => c.name),
      ['reserveForClaim', 'deliverPoolVolume', 'extendTenantVolume', 'releaseClaimName'],
    );
  });

  test('a failed hand-off whose accept took effect after all: the compensation says accepted, the hand-off resumes', async () => {
    const calls: Calls = [];
    let deliveries = 0;
    const { answer } = await claim(
      mocks(
        {
          reserveForClaim: () => ({ image: IMAGE, reserved: RESERVED }),
          deliverPoolVolume: () => {
            if (++deliveries === 1)
              throw ApplicationFailure.nonRetryable('rename refused', 'CinderBadRequest');
            return { existing: false, volumeId: 'vol-pool', sizeGb: 1, nameReleased: true };
          },
          returnToPool: () => 'accepted',
        },
        calls,
      ),
    );
    assert.equal(answer.outcome, 'pool');
    assert.equal(answer.fallbackReason, null);
    assert.deepEqual(
      calls.map((c) => c.name),
      ['reserveForClaim', 'deliverPoolVolume', 'returnToPool', 'deliverPoolVolume'],
    );
  });

  test('a failed hand-off gives the volume back, then creates; the lookup rides on the create', async () => {
    const calls: Calls = [];
    const { result } = await claim(
      mocks(
        {
          reserveForClaim: () => ({ image: IMAGE, reserved: RESERVED }),
          deliverPoolVolume: () => {
            throw ApplicationFailure.nonRetryable('transfer refused', 'CinderBadRequest');
          },
          returnToPool: () => 'released',
          createTenantVolume: () => ({ volumeId: 'vol-new' }),
          awaitTenantVolume: () => undefined,
          releaseClaimName: () => undefined,
        },
        calls,
      ),
    );
    assert.equal(result.outcome, 'created');
    assert.equal(result.volumeId, 'vol-new');
    assert.match(result.fallbackReason ?? '', /hand-off failed: .*transfer refused/);
    const create = calls.find((c) => c.name === 'createTenantVolume')?.input as {
      image: typeof IMAGE;
    };
    assert.deepEqual(create.image, IMAGE);
  });

  test('pool empty and the name already taken: existing, nothing created', async () => {
    const calls: Calls = [];
    const { answer } = await claim(
      mocks(
        {
          reserveForClaim: () => ({ image: IMAGE, reserved: null }),
          createTenantVolume: () => ({ volumeId: 'vol-there', existing: true }),
          releaseClaimName: () => undefined,
        },
        calls,
      ),
    );
    assert.equal(answer.outcome, 'existing');
    assert.equal(answer.volumeId, 'vol-there');
    assert.ok(!calls.some((c) => c.name === 'awaitTenantVolume'));
  });

  test('a data disk never touches the pool', async () => {
    const calls: Calls = [];
    const { result } = await claim(
      mocks(
        {
          createTenantVolume: () => ({ volumeId: 'vol-data' }),
          awaitTenantVolume: () => undefined,
        },
        calls,
      ),
      { systemDisk: false, os: null, sizeGb: 5 },
    );
    assert.equal(result.outcome, 'created');
    assert.deepEqual(
      calls.map((c) => c.name),
      ['createTenantVolume', 'awaitTenantVolume'],
    );
  });
});
