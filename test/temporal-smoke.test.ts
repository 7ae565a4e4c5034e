/** A real worker on the real Temporal dev server runs a workflow whose activity calls the real Cinder. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import { connectClient } from '../lib/temporal/connect';
import { createActivities } from '../activities';
import { createDb, type Db } from '../lib/pool-state/db';
import { createLogger } from '../lib/log';
import { admin, config, unique } from './support/env';
import { cinderSmokeWorkflow } from '../workflows';

let client: Client;
let connection: NativeConnection;
let db: Db;

before(async () => {
  client = await connectClient(config);
  connection = await NativeConnection.connect({ address: config.temporal.address });
  db = createDb(config.databaseUrl, 2);
});

after(async () => {
  await connection.close();
  await client.connection.close();
  await db.end();
});

describe('Temporal smoke (real dev server + real Cinder)', () => {
  test('a worker runs a workflow whose activity calls Cinder', async () => {
    const taskQueue = unique('smoke');
    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue,
      workflowsPath: require.resolve('../workflows'),
      activities: createActivities({
        config,
        cinder: admin,
        db,
        log: createLogger('test', 'silent'),
      }),
    });
    const workflowId = unique('smoke-wf');
    const result = await worker.runUntil(
      client.workflow.execute(cinderSmokeWorkflow, { taskQueue, workflowId, args: [] }),
    );
    assert.match(result.maxMicroversion ?? '', /^3\.\d+$/);
    assert.ok(
      result.services.some((s) => /^cinder-volume@.*: up$/.test(s)),
      result.services.join(', '),
    );
    // The history is on the server: the activity ran there, not in this process's imagination.
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const kinds = (history.events ?? []).map((e) => e.eventType);
    assert.ok(kinds.length >= 5);
    const desc = await client.workflow.getHandle(workflowId).describe();
    assert.equal(desc.status.name, 'COMPLETED');
  });
});
