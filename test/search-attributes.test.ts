/**
 * A Temporal server nobody prepared (as in a compose deployment): a fresh dev server without the
 * pool's search attributes. The real worker process registers them at start, so a claim, which
 * upserts them, completes instead of failing its workflow task forever.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { claimVolumeWorkflow } from '../workflows';
import { claimWorkflowId, type ClaimInput } from '../contracts/claim';
import { POOL_SEARCH_ATTRIBUTES, ensureSearchAttributes } from '../lib/temporal/search-attributes';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import { admin, unique, waitFor } from './support/env';
import { exited, spawnWorker, STACK_DIR, testConfig } from './support/pool';

/** The Temporal CLI the stack uses: on PATH, else the stack's venv. */
function temporalBinary(): string {
  const onPath = spawnSync('sh', ['-c', 'command -v temporal']).stdout.toString().trim();
  const bin = onPath || resolve(STACK_DIR, 'venv/bin/temporal');
  assert.ok(existsSync(bin), `no temporal binary (${bin}): run npm run stack:up`);
  return bin;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

let server: ChildProcess;
let address: string;
let client: Client;

before(async () => {
  const port = await freePort();
  address = `127.0.0.1:${port}`;
  // In memory, headless, no search attributes: what a bare deployment gives the worker.
  server = spawn(
    temporalBinary(),
    [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--headless',
      '--log-level',
      'error',
    ],
    { stdio: 'ignore' },
  );
  client = await waitFor(
    'a fresh Temporal dev server',
    () =>
      Connection.connect({ address, connectTimeout: 1000 }).then(
        (connection) => new Client({ connection }),
        () => null,
      ),
    (c) => c !== null,
    60_000,
    500,
  ).then((c) => c as Client);
});
after(async () => {
  await client?.connection.close();
  server.kill('SIGTERM');
  await exited(server);
});

test('the worker registers the search attributes on a bare server; a claim then completes', async () => {
  const have = await client.connection.operatorService.listSearchAttributes({
    namespace: 'default',
  });
  for (const a of POOL_SEARCH_ATTRIBUTES) assert.ok(!(a in (have.customAttributes ?? {})));

  const { env, config } = testConfig({
    TEMPORAL_ADDRESS: address,
    POOL__TEMPORAL__ADDRESS: address,
  });
  const worker = spawnWorker(env);
  const gone = exited(worker);
  try {
    await waitFor(
      'search attributes registered by the worker',
      () =>
        client.connection.operatorService
          .listSearchAttributes({ namespace: 'default' })
          .then((r) => Object.keys(r.customAttributes ?? {})),
      (names) => POOL_SEARCH_ATTRIBUTES.every((a) => names.includes(a)),
      60_000,
      500,
    );
    const input: ClaimInput = {
      requestId: unique('bare'),
      projectId: TENANT_PROJECTS.alpha,
      userId: TENANT_USER,
      name: unique('vm-bare'),
      os: null,
      volumeType: 'sas',
      sizeGb: 1,
      systemDisk: false,
    };
    const result = await client.workflow.execute(claimVolumeWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: claimWorkflowId(input.requestId),
      args: [input],
      workflowExecutionTimeout: '2 minutes',
    });
    assert.equal(result.outcome, 'created');
    await admin.deleteVolume(result.volumeId);
    // Idempotent: a second worker (or a restart) finds nothing to add.
    assert.deepEqual(await ensureSearchAttributes(client, 'default'), []);
  } finally {
    worker.kill('SIGTERM');
    await gone;
  }
});
