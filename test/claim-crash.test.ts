/**
 * Claim crash safety: the worker process killed with SIGKILL (fail points) (a) after the transfer
 * was created and before accept, (b) after accept and before the pool row is removed, (c) during
 * plain creation, (d) after the rename that ends the hand-off, (e) after the API answered 201
 * and before the workflow removed the pool row, (f) after the hand-off settled but before its
 * result was recorded; restarted, each claim completes with exactly one volume in the tenant, no
 * pending transfer, no reserved row, no orphan. Also an API server restarted mid-claim.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { Client } from '@temporalio/client';
import { type Db } from '../lib/pool-state/db';
import { PoolRepository } from '../lib/pool-state/repository';
import { buildApi } from '../api/server';
import { claimVolumeWorkflow, fillPoolWorkflow } from '../workflows';
import { claimWorkflowId, type ClaimInput } from '../contracts/claim';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import { admin, tenant, unique, waitFor } from './support/env';
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
const { config, env } = testConfig(poolEnv({ more: 'Debian8 64bit', numsMore: 3 }));

before(async () => ({ client, db } = await openStack(5)));
after(() => closeStack({ client, db }));

async function withWorker<T>(
  failpoints: string | null,
  fn: (child: ReturnType<typeof spawnWorker>) => Promise<T>,
): Promise<T> {
  const child = spawnWorker({ ...env, ...(failpoints ? { WARMPOOL_FAILPOINTS: failpoints } : {}) });
  const gone = exited(child);
  try {
    return await fn(child);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await gone;
  }
}

function claimInput(): ClaimInput {
  return {
    requestId: unique('crash'),
    projectId: TENANT_PROJECTS.alpha,
    userId: TENANT_USER,
    name: unique('vm-crash'),
    os: 'Debian8 64bit',
    volumeType: 'sas',
    sizeGb: null,
    systemDisk: true,
    // What the API sets for a claim naming no zone: the default one, where the fill stocks.
    zone: config.pool.defaultZone,
  };
}

async function stock(): Promise<void> {
  await wipePool(db);
  await withWorker(null, () =>
    client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: unique('fill'),
      args: [{}],
    }),
  );
}

async function assertClean(input: ClaimInput, volumeId: string): Promise<void> {
  const named = await tenant('alpha').listVolumes({ name: input.name });
  assert.deepEqual(
    named.map((v) => v.id),
    [volumeId],
    'exactly one volume of that name in the tenant',
  );
  assert.equal(named[0]?.status, 'available');
  const rows = await new PoolRepository(db).listAll();
  assert.deepEqual(
    rows.filter((r) => r.status === 'reserved'),
    [],
    'no reserved row left',
  );
  assert.ok(!rows.some((r) => r.volumeId === volumeId), 'the handed-out volume has no pool row');
  const pool = await taggedVolumes();
  assert.deepEqual(
    pool.map((v) => v.id).sort(),
    rows.map((r) => r.volumeId).sort(),
    'pool volumes and rows agree',
  );
  for (const v of pool) assert.equal(v.status, 'available', `pool volume ${v.id} left ${v.status}`);
  const transfers = await admin.listTransfers({ allTenants: true });
  assert.ok(
    !transfers.some((t) => t.volumeId === volumeId || pool.some((v) => v.id === t.volumeId)),
    'a transfer is pending',
  );
}

async function crashClaim(
  failpoint: string,
  expectOutcome: 'pool' | 'created' | 'existing',
  check: (input: ClaimInput) => Promise<void>,
) {
  const input = claimInput();
  const handle = await withWorker(failpoint, async (child) => {
    const h = await client.workflow.start(claimVolumeWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: claimWorkflowId(input.requestId),
      args: [input],
    });
    assert.equal(await exited(child), 'SIGKILL', child.output());
    assert.match(
      child.output(),
      new RegExp(`failpoint ${failpoint.split('=')[0]!.replace('.', '\\.')} hit 1`),
    );
    return h;
  });
  await check(input); // the state the crash left behind
  const result = await withWorker(null, () => handle.result());
  assert.equal(result.outcome, expectOutcome);
  await assertClean(input, result.volumeId);
}

describe('claim crash safety (worker SIGKILL at exact steps)', () => {
  test('(a) after the transfer was created, before accept', async () => {
    await stock();
    await crashClaim('claim.after-transfer-create=1', 'pool', async () => {
      const transfers = await admin.listTransfers();
      const rows = await new PoolRepository(db).listAll();
      const reserved = rows.filter((r) => r.status === 'reserved');
      assert.equal(reserved.length, 1);
      assert.ok(
        transfers.some((t) => t.volumeId === reserved[0]!.volumeId),
        'the dead attempt left a pending transfer',
      );
    });
  });

  test('(b) after accept, before the pool row is removed', async () => {
    await stock();
    await crashClaim('claim.after-accept=1', 'pool', async () => {
      const reserved = (await new PoolRepository(db).listAll()).filter(
        (r) => r.status === 'reserved',
      );
      assert.equal(reserved.length, 1);
      const v = await admin.getVolume(reserved[0]!.volumeId as string);
      assert.equal(v.projectId, TENANT_PROJECTS.alpha, 'the volume already moved');
    });
  });

  test('(d) after the combined rename, before the pool row is removed', async () => {
    await stock();
    await crashClaim('claim.after-rename=1', 'pool', async (input) => {
      const reserved = (await new PoolRepository(db).listAll()).filter(
        (r) => r.status === 'reserved',
      );
      assert.equal(reserved.length, 1);
      const named = await tenant('alpha').listVolumes({ name: input.name });
      assert.deepEqual(
        named.map((v) => v.id),
        [reserved[0]!.volumeId],
        "the reserved volume is already the tenant's, under its new name",
      );
    });
  });

  test('(e) renamed, before the hand-off settles the row: the waiting API request still gets its 201', async () => {
    await stock();
    // Long enough for the dead attempt's heartbeat timeout and a second worker's start.
    const patient = { ...config, api: { ...config.api, claimWaitMs: 120_000 } };
    const api = buildApi({ config: patient, db, temporal: client });
    const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };
    const body = {
      requestId: unique('settle'),
      projectId: TENANT_PROJECTS.alpha,
      name: unique('vm-settle'),
      os: 'Debian8 64bit',
      volumeType: 'sas',
    };
    try {
      const { reply } = await withWorker('claim.before-settle=1', async (child) => {
        const reply = api.inject({ method: 'POST', url: '/v1/claims', headers, payload: body });
        assert.equal(await exited(child), 'SIGKILL', child.output());
        assert.match(child.output(), /failpoint claim\.before-settle hit 1/);
        return { reply };
      });
      // The tenant already has its volume under its name; the row is still reserved.
      const reserved = (await new PoolRepository(db).listAll()).filter(
        (r) => r.status === 'reserved',
      );
      assert.equal(reserved.length, 1);
      const named = await tenant('alpha').listVolumes({ name: body.name });
      assert.deepEqual(
        named.map((v) => v.id),
        [reserved[0]!.volumeId],
      );
      // Another worker retries the hand-off: it finds the volume delivered, settles, answers.
      const res = await withWorker(null, () => reply);
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().outcome, 'pool');
      assert.equal(res.json().volumeId, reserved[0]!.volumeId);
      await assertClean({ ...claimInput(), name: body.name }, res.json().volumeId);
    } finally {
      await api.close();
    }
  });

  test('(f) after the hand-off settled, before its result was recorded: the re-run finds the volume, never a second one', async () => {
    // The hand-off is a local activity: its result is recorded with the claim's workflow task,
    // so a crash here re-runs the whole task. The row is gone and the name lock released, so the
    // re-run reserves another row, finds the name taken by the delivered volume and answers it
    // (`existing`), giving that row back.
    await stock();
    const before = (await new PoolRepository(db).listAll()).length;
    await crashClaim('claim.after-settle=1', 'existing', async (input) => {
      const rows = await new PoolRepository(db).listAll();
      assert.equal(rows.length, before - 1, 'the delivered row was dropped');
      assert.deepEqual(
        rows.filter((r) => r.status === 'reserved'),
        [],
      );
      const named = await tenant('alpha').listVolumes({ name: input.name });
      assert.equal(named.length, 1, "the volume is the tenant's, under its name");
    });
  });

  test('(c) during plain creation', async () => {
    await wipePool(db);
    setCreateDelay(2);
    try {
      await crashClaim('claim.after-plain-create=1', 'created', async (input) => {
        assert.equal((await tenant('alpha').listVolumes({ name: input.name })).length, 1);
      });
    } finally {
      setCreateDelay(0);
    }
  });

  test('an API server restarted mid-claim: the claim completes and GET returns it', async () => {
    await wipePool(db);
    setCreateDelay(3);
    try {
      await withWorker(null, async () => {
        const waitless = { ...config, api: { ...config.api, claimWaitMs: 0 } };
        const first = buildApi({ config: waitless, db, temporal: client });
        const body = {
          requestId: unique('restart'),
          projectId: TENANT_PROJECTS.beta,
          name: unique('vm'),
          os: 'Debian8 64bit',
          volumeType: 'sas',
        };
        const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };
        const res = await first.inject({
          method: 'POST',
          url: '/v1/claims',
          headers,
          payload: body,
        });
        assert.equal(res.statusCode, 202, res.body);
        assert.equal(res.headers.location, `/v1/claims/${body.requestId}`);
        await first.close(); // the API goes away while the claim runs
        const second = buildApi({ config, db, temporal: client });
        const running = await second.inject({ url: res.headers.location as string, headers });
        assert.equal(running.json().status, 'running', running.body);
        assert.match(
          running.json().step ?? 'null',
          /^(started|lock|lookup|reserve|create|wait-available|null)$/,
        );
        const done = await waitFor(
          'claim completed',
          async () =>
            (await second.inject({ url: res.headers.location as string, headers })).json(),
          (b) => b.status === 'completed',
          60_000,
          500,
        );
        assert.equal(done.outcome, 'created');
        assert.ok(done.timingsMs.total >= 3000);
        assert.equal((await tenant('beta').getVolume(done.volumeId)).status, 'available');
        await second.close();
      });
    } finally {
      setCreateDelay(0);
    }
  });

  test('the Temporal server restarted mid-claim: the claim completes and GET returns it', async () => {
    await wipePool(db);
    setCreateDelay(8);
    try {
      await withWorker(null, async () => {
        const api = buildApi({
          config: { ...config, api: { ...config.api, claimWaitMs: 0 } },
          db,
          temporal: client,
        });
        const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };
        const body = {
          requestId: unique('tsrv'),
          projectId: TENANT_PROJECTS.alpha,
          name: unique('vm'),
          os: 'Debian8 64bit',
          volumeType: 'sas',
        };
        const res = await api.inject({ method: 'POST', url: '/v1/claims', headers, payload: body });
        assert.equal(res.statusCode, 202, res.body);
        const url = res.headers.location as string;
        await waitFor(
          'claim waiting for Cinder',
          async () => (await api.inject({ url, headers })).json(),
          (b) => b.step === 'wait-available',
          30_000,
          300,
        );
        const restart = await new Promise<number | null>((resolve) => {
          const p = spawn('bash', ['scripts/stack.sh', 'restart-temporal'], { stdio: 'ignore' });
          p.on('exit', resolve);
        });
        assert.equal(restart, 0, 'restart-temporal failed');
        const done = await waitFor(
          'claim completed after the restart',
          async () => (await api.inject({ url, headers })).json(),
          (b) => b.status === 'completed',
          120_000,
          1000,
        );
        assert.equal(done.outcome, 'created');
        assert.equal((await tenant('alpha').getVolume(done.volumeId)).status, 'available');
        await api.close();
      });
    } finally {
      setCreateDelay(0);
    }
  });
});
