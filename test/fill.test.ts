/**
 * The fill against the real stack: Temporal dev server, PostgreSQL and Cinder. Covers the seed's
 * acceptance tests 1–4 and 10, idle-stock health, stale-image draining, leak reconciliation and
 * quota. (Schedules, overlap and crashes: fill-schedules.test.ts and fill-crash.test.ts.)
 */
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { type Db } from '../lib/pool-state/db';
import { OsImageRepository, PoolRepository } from '../lib/pool-state/repository';
import { poolTags, TAGS } from '../lib/pool-state/naming';
import { checkPoolStateWorkflow, fillPoolWorkflow, reconcileWorkflow } from '../workflows';
import type { FillProgress } from '../contracts/fill';
import { ADMIN_QUOTA } from '../scripts/stack/cloud';
import { admin, config as stackConfig, unique, waitFor } from './support/env';
import { osSnapshot, waitVolumeStatus } from './support/cinder';
import { releaseHeld } from './support/handoff';
import {
  assertFillLimits,
  poolEnv,
  setCreateDelay,
  startWorker,
  taggedVolumes,
  testConfig,
  wipePool,
  type RunningWorker,
  openStack,
  closeStack,
} from './support/pool';
import type { AppConfig } from '../lib/config/load';

let client: Client;
let db: Db;
let repo: PoolRepository;
let worker: RunningWorker | undefined;

before(async () => {
  ({ client, db } = await openStack(5));
  repo = new PoolRepository(db);
});
after(() => closeStack({ client, db }));
beforeEach(async () => {
  setCreateDelay(0);
  await wipePool(db);
});
afterEach(async () => {
  await worker?.stop();
  worker = undefined;
});

async function withWorker(overrides: Record<string, string | number>): Promise<AppConfig> {
  const { config } = testConfig(overrides);
  await worker?.stop();
  worker = await startWorker(config, db, { temporal: client });
  return config;
}

function fill(config: AppConfig): Promise<FillProgress> {
  return client.workflow.execute(fillPoolWorkflow, {
    taskQueue: config.temporal.taskQueue,
    workflowId: unique('test-fill'),
    args: [{ reason: 'test' }],
  });
}

/** The zone the test's fill serves ('' when it names none): its rows, images and snapshots. */
const zoneOf = (config: AppConfig) => config.pool.zones[0] ?? '';
/** The pool of (sas, os) the test's fill keeps. */
const sasPool = (config: AppConfig, os: string) => ({ type: 'sas', os, zone: zoneOf(config) });

async function rows(os?: string) {
  return (await repo.listAll()).filter((r) => !os || r.os === os);
}

describe('fill (real Temporal, PostgreSQL, Cinder)', () => {
  test('seed 1+2: an empty pool fills to target; a full pool with no claims adds nothing', async () => {
    const config = await withWorker(
      poolEnv({ more: 'Debian8 64bit', less: 'Centos7.3 64bit', numsMore: 3, numsLess: 1 }),
    );
    const first = await fill(config);
    assert.equal(first.planned, 4);
    assert.equal(first.available, 4);
    assert.equal(first.failed, 0);

    const all = await rows();
    assert.equal(all.length, 4);
    assert.deepEqual(all.map((r) => `${r.os}:${r.status}`).sort(), [
      'Centos7.3 64bit:available',
      'Debian8 64bit:available',
      'Debian8 64bit:available',
      'Debian8 64bit:available',
    ]);
    const snap = await osSnapshot('Debian8 64bit', 'sas', zoneOf(config));
    const inCinder = await taggedVolumes();
    // <prefix>-<type>[-<zone>]-<os slug>-<id>: the zone's slug when the pool names zones.
    const zonePart = zoneOf(config) ? `${zoneOf(config)}-` : '';
    assert.deepEqual(inCinder.map((v) => v.id).sort(), all.map((r) => r.volumeId).sort());
    for (const v of inCinder) {
      assert.equal(v.status, 'available');
      assert.equal(v.volumeType, 'sas');
      assert.equal(v.metadata[TAGS.type], 'sas');
      assert.match(
        v.name,
        new RegExp(`^warmpool-sas-${zonePart}(debian8-64bit|centos7\\.3-64bit)-`),
      );
      if (v.metadata[TAGS.os] === 'Debian8 64bit') assert.equal(v.snapshotId, snap.id);
      assert.equal(all.find((r) => r.volumeId === v.id)?.name, v.name);
    }

    const second = await fill(config);
    assert.equal(second.planned, 0);
    assert.equal(second.requested, 0);
    assert.deepEqual((await rows()).map((r) => r.id).sort(), all.map((r) => r.id).sort());
  });

  test('an OS without snapshot is skipped with a clear warning; the others are filled', async () => {
    const config = await withWorker(poolEnv({ more: 'Debian8 64bit, Plan9 64bit', numsMore: 2 }));
    const r = await fill(config);
    assert.deepEqual(
      r.skipped.map((k) => `${k.type}/${k.os}`),
      ['sas/Plan9 64bit'],
    );
    assert.match(
      r.skipped[0]?.reason ?? '',
      /no available snapshot named like "os-image Plan9 64bit sas v<version>"/,
    );
    assert.equal(r.available, 2);
    assert.deepEqual(
      (await rows()).map((x) => x.os),
      ['Debian8 64bit', 'Debian8 64bit'],
    );
  });

  test('a volume stuck in creating past creating_timeout_minute is deleted and replaced', async () => {
    setCreateDelay(12);
    const config = await withWorker({
      ...poolEnv({ more: 'Debian9 64bit', numsMore: 1 }),
      POOL__VOLUMES_BACKUP__CREATING_TIMEOUT_MINUTE: '0.1',
    });
    const r = await fill(config);
    assert.equal(r.failed, 1);
    assert.match(r.errors[0] ?? '', /timeout/);
    assert.deepEqual(await rows(), []);
    await waitFor(
      'stuck volume deleted',
      () => taggedVolumes(),
      (l) => l.length === 0,
      30_000,
      500,
    );
    setCreateDelay(0);
    // Cinder serialises creates from one snapshot: the replacement waits for the stuck one's
    // driver call to end, so it runs with the default (30 min) timeout.
    const again = await fill(await withWorker(poolEnv({ more: 'Debian9 64bit', numsMore: 1 })));
    assert.equal(again.available, 1);
  });

  test('seed 3: after a claim took a volume, the next fill creates exactly one to replace it', async () => {
    const config = await withWorker(poolEnv({ more: 'Debian8 64bit', numsMore: 3 }));
    await fill(config);
    const taken = await repo.reserve(sasPool(config, 'Debian8 64bit'), 'claim-x');
    assert.ok(taken);
    await repo.delete(taken.id); // what a claim does once the volume is the tenant's
    const again = await fill(config);
    assert.equal(again.planned, 1);
    assert.equal(again.available, 1);
    assert.equal((await rows('Debian8 64bit')).filter((r) => r.status === 'available').length, 3);
  });

  test('seed 10: a changed target changes what the next fill does', async () => {
    let config = await withWorker(poolEnv({ less: 'Ubuntu16.04 64bit', numsLess: 1 }));
    await fill(config);
    assert.equal((await rows()).length, 1);
    config = await withWorker(poolEnv({ less: 'Ubuntu16.04 64bit', numsLess: 3 }));
    const r = await fill(config);
    assert.equal(r.planned, 2);
    assert.equal((await rows()).length, 3);
    config = await withWorker(
      poolEnv({ less: 'Ubuntu16.04 64bit', numsLess: 3, types: 'sas, ssd' }),
    );
    const both = await fill(config);
    assert.equal(both.planned, 3);
    assert.deepEqual((await rows()).map((x) => x.type).sort(), [
      'sas',
      'sas',
      'sas',
      'ssd',
      'ssd',
      'ssd',
    ]);
    // A lower target trims the stock above it: the oldest go, the newest stay.
    const newest = (await rows())
      .filter((x) => x.type === 'sas')
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || b.id - a.id)[0];
    config = await withWorker(
      poolEnv({ less: 'Ubuntu16.04 64bit', numsLess: 1, types: 'sas, ssd', drainPerRun: 10 }),
    );
    const lower = await fill(config);
    assert.equal(lower.planned, 0);
    assert.equal(lower.drained, 4);
    const left = await rows();
    assert.deepEqual(left.map((x) => x.type).sort(), ['sas', 'ssd']);
    assert.equal(left.find((x) => x.type === 'sas')?.id, newest?.id);
  });

  test('seed 4: the status check follows Cinder for creating rows and removes the rest', async () => {
    const config = await withWorker(poolEnv({ more: 'Debian8 64bit', numsMore: 5 }));
    const snap = await osSnapshot('Debian8 64bit', 'sas', zoneOf(config));
    const tags = poolTags('warmpool', 'Debian8 64bit', 'sas', snap.id);
    // B: a volume that went wrong in Cinder while its row says creating.
    const b = await admin.createVolume({
      name: unique('warmpool-b'),
      size: 1,
      snapshotId: snap.id,
      volumeType: 'sas',
      metadata: tags,
    });
    await waitVolumeStatus(admin, b.id, 'available');
    await admin.resetVolumeStatus(b.id, 'error');
    const rowB = await repo.upsert({
      name: b.name,
      type: 'sas',
      os: 'Debian8 64bit',
      snapshotId: snap.id,
      volumeId: b.id,
    });
    // A: still being created (slow flatten).
    setCreateDelay(4);
    const a = await admin.createVolume({
      name: unique('warmpool-a'),
      size: 1,
      snapshotId: snap.id,
      volumeType: 'sas',
      metadata: tags,
    });
    const rowA = await repo.upsert({
      name: a.name,
      type: 'sas',
      os: 'Debian8 64bit',
      snapshotId: snap.id,
      volumeId: a.id,
    });

    const run = () =>
      client.workflow.execute(checkPoolStateWorkflow, {
        taskQueue: config.temporal.taskQueue,
        workflowId: unique('check'),
      });
    const first = await run();
    assert.equal(first.stillCreating, 1);
    assert.equal(first.removedFailed, 1);
    assert.equal((await repo.get(rowA.id))?.status, 'creating');
    assert.equal(await repo.get(rowB.id), null);
    await waitFor(
      'B deleted in Cinder',
      () => admin.findVolume(b.id),
      (v) => v === null || v.status === 'deleting',
    );

    await waitVolumeStatus(admin, a.id, 'available', 30_000);
    const second = await run();
    assert.equal(second.madeAvailable, 1);
    assert.equal((await repo.get(rowA.id))?.status, 'available');
  });

  test('a reservation left by a claim that died is given back to the pool by the check', async () => {
    const config = await withWorker(poolEnv({ more: 'Debian8 64bit', numsMore: 2 }));
    await fill(config);
    const held = await repo.reserve(sasPool(config, 'Debian8 64bit'), 'claim-that-never-ran');
    assert.ok(held);
    const fresh = await repo.reserve(sasPool(config, 'Debian8 64bit'), 'claim-still-young');
    assert.ok(fresh);
    await db.query(
      `UPDATE pool_volumes SET reserved_at = now() - interval '1 hour' WHERE id = $1`,
      [held.id],
    );
    const check = await client.workflow.execute(checkPoolStateWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: unique('check'),
    });
    assert.equal(check.releasedOrphans, 1);
    assert.equal((await repo.get(held.id))?.status, 'available');
    assert.equal(
      (await repo.get(fresh.id))?.status,
      'reserved',
      'a young reservation is left alone',
    );
  });

  test('a pool volume forced to error is removed by the check and replaced by the next fill', async () => {
    const config = await withWorker(poolEnv({ more: 'Debian9 64bit', numsMore: 3 }));
    await fill(config);
    const victim = (await rows())[0];
    assert.ok(victim?.volumeId);
    await admin.resetVolumeStatus(victim.volumeId, 'error');
    const check = await client.workflow.execute(checkPoolStateWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: unique('check'),
    });
    assert.equal(check.removedFailed, 1);
    assert.equal(await repo.get(victim.id), null);
    const again = await fill(config);
    assert.equal(again.available, 1);
    const now = await rows();
    assert.equal(now.length, 3);
    assert.ok(!now.some((r) => r.volumeId === victim.volumeId));
    await waitFor(
      'error volume deleted',
      () => admin.findVolume(victim.volumeId as string),
      (v) => v === null,
    );
  });

  test('a newer snapshot: old stock is never reserved, is drained at the bounded rate and replaced', async () => {
    const os = 'Freebsd11.2 64bit';
    const config = await withWorker(poolEnv({ less: os, numsLess: 3, drainPerRun: 2 }));
    await fill(config);
    const old = await osSnapshot(os, 'sas', zoneOf(config));
    const source = await admin.getVolume(old.volumeId);
    const newer = await admin.createSnapshot({
      volumeId: source.id,
      name: stackConfig.pool.snapshotNameRule.format(os, 'sas', String(Date.now())),
    });
    try {
      await waitFor(
        'snapshot',
        () => admin.getSnapshot(newer.id),
        (s) => s.status === 'available',
      );
      const r1 = await fill(config);
      assert.equal(r1.drained, 2, 'drained at most stale_drain_per_run');
      assert.equal(r1.staleTotal, 3);
      assert.equal(r1.available, 3, 'replacements made from the new snapshot');
      assert.equal(
        (await new OsImageRepository(db).get(os, 'sas', zoneOf(config)))?.snapshotId,
        newer.id,
      );
      // The one stale volume left is never handed out: reservations take current stock only.
      const left = (await rows(os)).filter((r) => r.snapshotId === old.id);
      assert.equal(left.length, 1);
      for (let i = 0; i < 3; i++) {
        const got = await repo.reserve(sasPool(config, os), `claim-${i}`, newer.id);
        assert.equal(got?.snapshotId, newer.id);
      }
      assert.equal(await repo.reserve(sasPool(config, os), 'claim-3', newer.id), null);
      for (let i = 0; i < 3; i++) {
        const held = await repo.reserve(sasPool(config, os), `claim-${i}`);
        if (held) await releaseHeld(db, held.id, `claim-${i}`);
      }
      const r2 = await fill(config);
      assert.equal(r2.drained, 1);
      const final = await rows(os);
      assert.equal(final.length, 3);
      assert.ok(final.every((r) => r.snapshotId === newer.id));
      for (const v of await taggedVolumes()) assert.equal(v.snapshotId, newer.id);
    } finally {
      await wipePool(db);
      await admin.deleteSnapshot(newer.id);
    }
  });

  test('a leaked tagged volume is deleted only on the second pass; a row without volume is removed', async () => {
    const config = await withWorker(poolEnv({ more: 'Debian8 64bit', numsMore: 1 }));
    await fill(config);
    const snap = await osSnapshot('Debian8 64bit', 'sas', zoneOf(config));
    const leak = await admin.createVolume({
      name: unique('warmpool-leak'),
      size: 1,
      snapshotId: snap.id,
      volumeType: 'sas',
      metadata: poolTags('warmpool', 'Debian8 64bit', 'sas', snap.id),
    });
    await waitVolumeStatus(admin, leak.id, 'available');
    const ghost = await repo.upsert({
      name: unique('ghost'),
      type: 'sas',
      os: 'Debian8 64bit',
      snapshotId: snap.id,
      volumeId: crypto.randomUUID(),
      status: 'available',
    });
    const pass = () =>
      client.workflow.execute(reconcileWorkflow, {
        taskQueue: config.temporal.taskQueue,
        workflowId: unique('rec'),
      });
    const first = await pass();
    assert.equal(first.unknownSeenOnce, 1);
    assert.deepEqual(first.deletedLeaks, []);
    assert.equal(first.rowsWithoutVolume, 1);
    assert.equal(await repo.get(ghost.id), null);
    assert.equal(
      (await admin.getVolume(leak.id)).status,
      'available',
      'not touched on first sighting',
    );

    const second = await pass();
    assert.deepEqual(
      second.deletedLeaks,
      [leak.id],
      'pool is full: the leak is deleted, not adopted',
    );
    await waitFor(
      'leak deleted',
      () => admin.findVolume(leak.id),
      (v) => v === null,
    );
  });

  test('a leaked volume is adopted when it is current and the pool is short', async () => {
    const config = await withWorker(poolEnv({ more: 'Debian8 64bit', numsMore: 2 }));
    await fill(config);
    const snap = await osSnapshot('Debian8 64bit', 'sas', zoneOf(config));
    const victim = (await rows())[0];
    assert.ok(victim);
    await repo.delete(victim.id); // the table lost the row, Cinder still has the volume
    const pass = () =>
      client.workflow.execute(reconcileWorkflow, {
        taskQueue: config.temporal.taskQueue,
        workflowId: unique('rec'),
      });
    await pass();
    const second = await pass();
    assert.deepEqual(second.adopted, [victim.volumeId]);
    const adopted = await repo.findByVolumeId(victim.volumeId as string);
    assert.equal(adopted?.status, 'available');
    assert.equal(adopted?.snapshotId, snap.id);
    const r = await fill(config);
    assert.equal(r.planned, 0, 'the adopted volume counts: nothing to create');
  });

  test('quota: the fill stops at the quota with a clear record and resumes when it is raised', async () => {
    const config = await withWorker(
      poolEnv({ more: 'Debian8 64bit', numsMore: 6, concurrency: 1 }),
    );
    const project = config.auth.projectId as string;
    const usage = await admin.getQuotaUsage(project);
    const inUse = usage.volumes?.inUse ?? 0;
    await admin.updateQuota(project, { volumes: inUse + 3 });
    try {
      const r = await fill(config);
      assert.equal(r.available, 3);
      assert.match(r.stoppedBy ?? '', /^quota: .*VolumeLimitExceeded|^quota: .*quota/i);
      assert.equal(r.failed, 0);
      assert.equal((await rows()).length, 3, 'no row for a refused create');
      const rec = await db.query(
        `SELECT summary FROM pool_runs WHERE kind = 'fill' ORDER BY id DESC LIMIT 1`,
      );
      assert.match(rec.rows[0].summary.stoppedBy, /quota/i);
    } finally {
      await admin.updateQuota(project, { volumes: ADMIN_QUOTA.volumes });
    }
    const resumed = await fill(config);
    assert.equal(resumed.planned, 3);
    assert.equal(resumed.stoppedBy, null);
    assert.equal((await rows()).filter((r) => r.status === 'available').length, 6);
  });

  test('the rate limit holds: starts at least I apart, never more than C in flight', async () => {
    const I = 1;
    const C = 2;
    setCreateDelay(1.5);
    const config = await withWorker(
      poolEnv({ more: 'Debian8 64bit', numsMore: 6, concurrency: C, intervalSeconds: I }),
    );
    const r = await fill(config);
    assert.equal(r.available, 6);
    assertFillLimits(await rows(), I, C);
  });
});
