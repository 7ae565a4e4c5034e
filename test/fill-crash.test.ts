/**
 * Crash safety of the fill: a worker process killed with SIGKILL in the middle of a fill of 10
 * volumes (once exactly between Cinder's create and the table write, once at a random moment),
 * then restarted: the pool reaches its target with exactly target volumes, no orphan, no double.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { type Db } from '../lib/pool-state/db';
import { PoolRepository } from '../lib/pool-state/repository';
import { fillPoolWorkflow } from '../workflows';
import { unique, waitFor } from './support/env';
import {
  poolEnv,
  setCreateDelay,
  exited,
  spawnWorker,
  taggedVolumes,
  testConfig,
  wipePool,
  openStack,
  closeStack,
} from './support/pool';

let client: Client;
let db: Db;
const TARGET = 10;

before(async () => ({ client, db } = await openStack(5)));
after(() => closeStack({ client, db }));

async function assertExactPool(): Promise<void> {
  const rows = await new PoolRepository(db).listAll();
  const volumes = await taggedVolumes();
  assert.equal(rows.length, TARGET, `rows: ${rows.map((r) => r.status).join(',')}`);
  assert.ok(rows.every((r) => r.status === 'available'));
  assert.equal(volumes.length, TARGET, `Cinder has ${volumes.length} pool volumes`);
  assert.deepEqual(
    volumes.map((v) => v.id).sort(),
    rows.map((r) => r.volumeId).sort(),
    'orphan or missing volume',
  );
  assert.equal(new Set(volumes.map((v) => v.name)).size, TARGET, 'two volumes for one name');
}

async function crashAndRecover(failpoints: string | null): Promise<void> {
  await wipePool(db);
  setCreateDelay(1);
  const { config, env } = testConfig(
    poolEnv({ more: 'Debian8 64bit', numsMore: TARGET, concurrency: 3, intervalSeconds: 0.2 }),
  );
  const first = spawnWorker({ ...env, ...(failpoints ? { WARMPOOL_FAILPOINTS: failpoints } : {}) });
  const firstExit = exited(first);
  const workflowId = unique('crash-fill');
  const handle = await client.workflow.start(fillPoolWorkflow, {
    taskQueue: config.temporal.taskQueue,
    workflowId,
    args: [{ reason: 'crash test' }],
  });
  if (failpoints) {
    assert.equal(await firstExit, 'SIGKILL', first.output());
    assert.match(first.output(), /failpoint fill\.after-cinder-create hit 4: SIGKILL/);
  } else {
    // Kill at a random moment once a few volumes are under way.
    await waitFor(
      'some creates under way',
      () => new PoolRepository(db).listAll(),
      (r) => r.filter((x) => x.volumeId).length >= 4,
      60_000,
      100,
    );
    first.kill('SIGKILL');
    assert.equal(await firstExit, 'SIGKILL');
  }
  const during = await new PoolRepository(db).listAll();
  assert.ok(
    during.length < TARGET || during.some((r) => r.status !== 'available'),
    'the crash came too late to matter',
  );

  const second = spawnWorker(env);
  try {
    const result = await handle.result();
    assert.equal(result.available, TARGET, JSON.stringify(result));
    assert.equal(result.failed, 0);
    await assertExactPool();
  } finally {
    second.kill('SIGTERM');
    await exited(second);
  }
}

describe('fill crash safety (worker process killed with SIGKILL)', () => {
  test('killed between the Cinder create and the table write: the retry finds the volume, no double', async () => {
    await crashAndRecover('fill.after-cinder-create=4');
  });

  test('killed at a random moment mid-fill: the restarted worker completes the fill exactly', async () => {
    await crashAndRecover(null);
  });
});
