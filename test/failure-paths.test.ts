/**
 * Failure paths that a dead process never shows: slow or lying calls, deletes Cinder refuses,
 * twin attempts of one step, two claims for one name. Real Temporal, PostgreSQL and Cinder, with
 * a fault-injecting proxy (support/fault-proxy.ts) between the pool and Cinder. Each test
 * reproduces one defect of the failure-path review and checks the outcome from Cinder itself.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import type { Client, WorkflowStartOptions } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Workflow, WorkflowResultType } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { buildApi } from '../api/server';
import { createActivities } from '../activities';
import { reservedVolume } from '../activities/claim/reserve';
import { releaseHeld } from './support/handoff';
import { connectClient } from '../lib/temporal/connect';
import { createDb, type Db } from '../lib/pool-state/db';
import { PoolRepository } from '../lib/pool-state/repository';
import { poolLevels } from '../lib/pool-state/levels';
import { poolTags } from '../lib/pool-state/naming';
import { cinderFromConfig, type CinderClient } from '../lib/cinder';
import { createLogger } from '../lib/log';
import type { AppConfig } from '../lib/config/load';
import {
  checkPoolStateWorkflow,
  claimVolumeWorkflow,
  drainPoolWorkflow,
  fillPoolWorkflow,
  reconcileWorkflow,
} from '../workflows';
import {
  claimWorkflowId,
  type ClaimInput,
  type ClaimTarget,
  type ReservedVolume,
} from '../contracts/claim';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import {
  admin,
  config as stackConfig,
  randomProjectId,
  tenant,
  unique,
  waitFor,
} from './support/env';
import { attachVolume, osSnapshot, waitVolumeGone, waitVolumeStatus } from './support/cinder';
import { FaultProxy } from './support/fault-proxy';
import {
  poolEnv,
  setCreateDelay,
  startWorker,
  taggedVolumes,
  testConfig,
  wipePool,
  type RunningWorker,
} from './support/pool';

const ALPHA = TENANT_PROJECTS.alpha;
let proxy: FaultProxy;
let client: Client;
let db: Db;
let repo: PoolRepository;
let worker: RunningWorker;
let app: FastifyInstance;
let config: AppConfig;
let key: string;

before(async () => {
  proxy = await FaultProxy.start(new URL(stackConfig.auth.cinderUrl as string).origin);
  ({ config } = testConfig({
    ...poolEnv({
      more: 'Debian8 64bit',
      less: 'Ubuntu16.04 64bit, Centos6.8 64bit',
      numsMore: 3,
      numsLess: 2,
      drainPerRun: 2,
    }),
    POOL__AUTH_ARGS__CINDER_URL: proxy.cinderUrl,
    POOL__API__CLAIM_WAIT_SECOND: '120',
  }));
  key = config.api.apiKeys[0] as string;
  client = await connectClient(stackConfig);
  db = createDb(stackConfig.databaseUrl, 20);
  repo = new PoolRepository(db);
  await wipePool(db);
  worker = await startWorker(config, db, { temporal: client });
  app = buildApi({ config, db, temporal: client });
});
after(async () => {
  proxy.clear();
  await app.close();
  await worker.stop();
  await wipePool(db);
  await proxy.close();
  await client.connection.close();
  await db.end();
});
beforeEach(() => proxy.clear());

const taskQueue = () => config.temporal.taskQueue;
function run<W extends Workflow>(wf: W, ...args: Parameters<W>): Promise<WorkflowResultType<W>> {
  const options = { taskQueue: taskQueue(), workflowId: unique('fp'), args };
  return client.workflow.execute(wf, options as unknown as WorkflowStartOptions<W>);
}
const fill = () => run(fillPoolWorkflow, { reason: 'test' });
const rowsOf = async (os: string) => (await repo.listAll()).filter((r) => r.os === os);
/** The zone the worker's fill serves ('' when it names none): its stock, its snapshots. */
const zone = () => config.pool.zones[0] ?? '';
/** The pool of (sas, os) the fill keeps. */
const sasPool = (os: string) => ({ type: 'sas', os, zone: zone() });
const volumePath = (id: string) => new RegExp(`/volumes/${id}$`);

function claim(body: Record<string, unknown>) {
  return app.inject({
    method: 'POST',
    url: '/v1/claims',
    headers: { authorization: `Bearer ${key}` },
    payload: { requestId: unique('fp'), projectId: ALPHA, volumeType: 'sas', ...body },
  });
}

/** The activities as the worker builds them, run in a mocked activity context. */
function activities(over: Partial<AppConfig> = {}, cinder?: CinderClient) {
  const cfg = { ...config, ...over };
  return createActivities({
    config: cfg,
    cinder: cinder ?? cinderFromConfig(cfg),
    db,
    log: createLogger('test', 'silent'),
    temporal: client,
  });
}

async function newerSnapshot(os: string): Promise<() => Promise<void>> {
  const old = await osSnapshot(os, 'sas', zone());
  const newer = await admin.createSnapshot({
    volumeId: old.volumeId,
    name: stackConfig.pool.snapshotNameRule.format(os, 'sas', String(Date.now())),
  });
  await waitFor(
    'snapshot',
    () => admin.getSnapshot(newer.id),
    (s) => s.status === 'available',
  );
  return () => admin.deleteSnapshot(newer.id);
}

async function ageRow(id: number, minutes: number): Promise<void> {
  await db.query(
    `UPDATE pool_volumes SET updated_at = now() - make_interval(mins => $2) WHERE id = $1`,
    [id, minutes],
  );
}

describe('failure paths (real stack + fault proxy)', () => {
  test('a drain that keeps failing neither wedges the fill nor strands its row: the check retries it', async () => {
    const os = 'Ubuntu16.04 64bit';
    await fill();
    const stock = await rowsOf(os);
    assert.equal(stock.length, 2);
    const dropSnapshot = await newerSnapshot(os);
    try {
      // Cinder stops answering about one stale volume: its drain fails after every retry.
      const [stuck, other] = stock as [(typeof stock)[0], (typeof stock)[0]];
      proxy.add({
        method: 'GET',
        path: volumePath(stuck.volumeId as string),
        action: { kind: 'status', status: 503 },
      });
      const result = await Promise.race([
        fill(),
        new Promise<never>((_, r) =>
          setTimeout(() => r(new Error('the fill never ended')), 150_000),
        ),
      ]);
      assert.equal(result.phase, 'done');
      assert.equal(result.drained, 1, 'the other stale volume was drained');
      assert.ok(
        result.errors.some((e) => e.includes(`drain of row ${stuck.id}`)),
        JSON.stringify(result.errors),
      );
      assert.equal(result.available, 2, 'replacements were made meanwhile');
      assert.equal((await repo.get(stuck.id))?.status, 'deleting');
      assert.equal(await repo.get(other.id), null);
      // The next fill is not blocked either.
      assert.equal((await fill()).phase, 'done');

      // Cinder answers again. A fresh `deleting` row may still be a drain at work: left alone.
      proxy.clear();
      const early = await run(checkPoolStateWorkflow);
      assert.equal(early.retriedDeletes ?? 0, 0);
      assert.equal((await repo.get(stuck.id))?.status, 'deleting');
      // Once it has been untouched for a while, the check deletes it for good.
      await ageRow(stuck.id, 3);
      const check = await run(checkPoolStateWorkflow);
      assert.equal(check.retriedDeletes, 1);
      assert.equal(await repo.get(stuck.id), null);
      await waitVolumeGone(admin, stuck.volumeId as string);
    } finally {
      proxy.clear();
      await wipePool(db);
      await dropSnapshot();
    }
  });

  test('a volume Cinder refuses to delete is flagged, not retried forever; drains, fills and reconcile go on', async () => {
    const os = 'Centos6.8 64bit';
    await fill();
    const [attached, fine] = (await rowsOf(os)) as [
      Awaited<ReturnType<typeof rowsOf>>[0],
      Awaited<ReturnType<typeof rowsOf>>[0],
    ];
    // Someone attached a pool volume: Cinder refuses to delete it (400).
    const detach = await attachVolume(attached.volumeId as string);
    const drained = await run(drainPoolWorkflow, { os });
    assert.equal(drained.total, 2);
    assert.equal(drained.drained, 1);
    const flagged = await repo.get(attached.id);
    assert.equal(flagged?.status, 'flagged');
    assert.match(flagged?.lastError ?? '', /must not be .*attached/);
    assert.equal(await repo.get(fine.id), null);
    const level = poolLevels(config.pool.targets, await repo.countByTypeOsStatus()).find(
      (l) => l.os === os && l.volumeType === 'sas',
    );
    assert.equal(level?.flagged, 1);
    assert.equal(level?.missing, 2, 'a flagged volume is not stock');

    // A leak that cannot be deleted either: seen twice, refused, kept, and the fill carries on.
    const snap = await osSnapshot(os, 'sas', zone());
    const leak = await admin.createVolume({
      name: unique('leak'),
      size: 1,
      snapshotId: snap.id,
      volumeType: 'sas',
      metadata: poolTags(config.pool.volumeNamePrefix, os, 'sas', snap.id),
    });
    await waitVolumeStatus(admin, leak.id, 'available');
    const detachLeak = await attachVolume(leak.id);
    await run(reconcileWorkflow);
    const pass2 = await run(reconcileWorkflow);
    assert.deepEqual(pass2.undeletableLeaks, [leak.id]);
    const filled = await fill();
    assert.equal(filled.phase, 'done');
    assert.ok(filled.reconcile?.undeletableLeaks?.includes(leak.id));
    assert.equal((await rowsOf(os)).filter((r) => r.status === 'available').length, 2);
    // Stuck in error_deleting: reset first, then deleted on the next pass.
    await detachLeak();
    await admin.resetVolumeStatus(leak.id, 'error_deleting');
    const pass4 = await run(reconcileWorkflow);
    assert.deepEqual(pass4.deletedLeaks, [leak.id]);
    await waitVolumeGone(admin, leak.id);

    // The operator detaches the volume: the next check deletes it.
    await detach();
    const check = await run(checkPoolStateWorkflow);
    assert.equal(check.retriedDeletes, 1);
    assert.equal(await repo.get(attached.id), null);
    await waitVolumeGone(admin, attached.volumeId as string);
  });

  test('an accept that took effect but answered an error is a pool hit, never a second volume', async () => {
    await fill();
    const before = (await rowsOf('Debian8 64bit')).filter((r) => r.status === 'available');
    // Cinder moves the volume, then the caller is told 400.
    const lie = proxy.add({
      method: 'POST',
      path: /\/accept$/,
      action: { kind: 'replace-reply', status: 400, message: 'lost in transit' },
      times: 1,
    });
    const name = unique('vm-lied');
    const res = await claim({ name, os: 'Debian8 64bit' });
    assert.equal(lie.hits, 1);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().outcome, 'pool');
    const named = await tenant('alpha').listVolumes({ name });
    assert.deepEqual(
      named.map((v) => v.id),
      [res.json().volumeId],
      'exactly one volume of that name',
    );
    assert.ok(before.some((r) => r.volumeId === res.json().volumeId));
    assert.equal(await repo.findByVolumeId(res.json().volumeId), null);

    // And when the workflow gets there through returnToPool: `accepted`, the row kept for finish.
    const claimId = unique('claim-accepted-anyway');
    const row = await repo.reserve(sasPool('Debian8 64bit'), claimId);
    assert.ok(row?.volumeId);
    const t = await admin.createTransfer(row.volumeId, 'test');
    await tenant('alpha').acceptTransfer(t.id, t.authKey);
    const back = await new MockActivityEnvironment().run(activities().returnToPool, {
      target: {
        claimId,
        projectId: ALPHA,
        userId: TENANT_USER,
        name: unique('vm-accepted'),
        os: 'Debian8 64bit',
        volumeType: 'sas',
        sizeGb: null,
        zone: zone(),
      },
      reserved: reservedVolume(row) as ReservedVolume,
    });
    assert.equal(back, 'accepted');
    assert.equal((await repo.get(row.id))?.status, 'reserved');
    assert.equal((await repo.get(row.id))?.handoffState, 'accepted');
    await repo.delete(row.id);
    await tenant('alpha').deleteVolume(row.volumeId);
  });

  test('a first-attempt pool hit costs four Cinder calls: lookup, transfer, accept, one update; the name is free at the answer', async () => {
    await fill();
    const from = proxy.seen.length;
    const name = unique('vm-cheap');
    const res = await claim({ name, os: 'Debian8 64bit' });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().outcome, 'pool');
    // The version document is read once per worker process, not per claim.
    const calls = proxy.seen.slice(from).filter((c) => !/^GET \/v3\/?$/.test(c));
    const shape = calls.map((c) => c.replace(/[0-9a-f-]{32,36}/g, '<id>'));
    assert.deepEqual(shape, [
      'GET /v3/<id>/volumes/detail',
      'POST /v3/<id>/volume-transfers',
      'POST /v3/<id>/volume-transfers/<id>/accept',
      'PUT /v3/<id>/volumes/<id>',
    ]);
    const v = await admin.getVolume(res.json().volumeId);
    assert.equal(v.name, name);
    assert.deepEqual(v.metadata, {}, 'the pool tags are gone');
    // The hand-off released the name lock itself: nothing of the claim is left to run.
    const { rows } = await db.query('SELECT * FROM claim_names WHERE name = $1', [name]);
    assert.deepEqual(rows, []);
    // The hand-off is a local activity: the whole claim is one workflow task, no activity task.
    const { events } = await client.workflow
      .getHandle(claimWorkflowId(res.json().requestId))
      .fetchHistory();
    const types = (events ?? []).map((e) => temporal.api.enums.v1.EventType[e.eventType ?? 0]);
    assert.equal(types.filter((t) => t === 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED').length, 1);
    assert.ok(!types.some((t) => t?.startsWith('EVENT_TYPE_ACTIVITY_TASK')), types.join(' '));
  });

  test('the hand-off releases the name lock, unless the volume must still grow (then the claim does, after the extend)', async () => {
    await fill();
    const acts = activities();
    for (const sizeGb of [null, 3]) {
      const target: ClaimTarget = {
        claimId: unique('claim-lock'),
        projectId: ALPHA,
        userId: TENANT_USER,
        name: unique('vm-lock'),
        os: 'Debian8 64bit',
        volumeType: 'sas',
        sizeGb,
        // The claim's zone: the reservation takes stock of that zone only.
        zone: zone(),
      };
      const first = (await new MockActivityEnvironment().run(
        acts.reserveForClaim,
        target,
      )) as Awaited<ReturnType<typeof acts.reserveForClaim>>;
      assert.ok(first.reserved, 'a pool volume was reserved');
      const delivery = (await new MockActivityEnvironment().run(acts.deliverPoolVolume, {
        target,
        reserved: first.reserved,
      })) as Awaited<ReturnType<typeof acts.deliverPoolVolume>>;
      assert.equal(delivery.existing, false);
      const { rows } = await db.query('SELECT claim_id FROM claim_names WHERE name = $1', [
        target.name,
      ]);
      if (sizeGb) {
        assert.equal(delivery.nameReleased, false);
        assert.deepEqual(
          rows.map((r) => r.claim_id),
          [target.claimId],
          'still held: a second claim must not take the volume before it has grown',
        );
        await new MockActivityEnvironment().run(acts.releaseClaimName, target);
      } else {
        assert.equal(delivery.nameReleased, true);
        assert.deepEqual(rows, [], 'released with the hand-off');
      }
      assert.equal(await repo.get(first.reserved.rowId), null, 'the row is settled either way');
      await tenant('alpha').deleteVolume(delivery.volumeId);
    }
  });

  test('six claims waiting on creating volumes share one list of creating volumes per poll, not a GET each', async () => {
    setCreateDelay(3);
    const pollMs = 500;
    const acts = activities({ pool: { ...config.pool, pollIntervalSeconds: pollMs / 1000 } });
    const alpha = cinderFromConfig(config).asProject(ALPHA, TENANT_USER);
    const image = await osSnapshot('Debian8 64bit', 'sas');
    try {
      const made = await Promise.all(
        Array.from({ length: 6 }, () =>
          alpha.createVolume({
            name: unique('vm-wait'),
            size: 1,
            snapshotId: image.id,
            volumeType: 'sas',
          }),
        ),
      );
      const from = proxy.seen.length;
      const started = Date.now();
      await Promise.all(
        made.map((v) =>
          new MockActivityEnvironment().run(acts.awaitTenantVolume, {
            target: {
              claimId: unique('wait'),
              projectId: ALPHA,
              userId: TENANT_USER,
              name: v.name,
              os: null,
              volumeType: 'sas',
              sizeGb: null,
            },
            volumeId: v.id,
            deadlineAt: Date.now() + 60_000,
          }),
        ),
      );
      const polls = (Date.now() - started) / pollMs;
      const calls = proxy.seen.slice(from);
      const gets = calls.filter((c) => /^GET \/v3\/\w+\/volumes\/[0-9a-f-]{36}$/.test(c)).length;
      const lists = calls.filter((c) => /^GET \/v3\/\w+\/volumes\/detail$/.test(c)).length;
      // Each volume: its first look and the one after it left `creating`; the lists in between
      // are shared (at most one per half poll), where a GET each would cost 6 per poll.
      assert.ok(polls >= 4, `the wait lasted ${polls} polls (create delay 3 s)`);
      assert.ok(gets <= 14, `${gets} GETs of single volumes`);
      assert.ok(lists <= 2 * polls + 2, `${lists} lists in ${polls.toFixed(1)} polls`);
      assert.ok(
        gets + lists < 6 * polls * 0.6,
        `${gets + lists} calls for 6 waiters × ${polls} polls`,
      );
      for (const v of made) assert.equal((await alpha.getVolume(v.id)).status, 'available');
      for (const v of made) await alpha.deleteVolume(v.id);
    } finally {
      setCreateDelay(0);
    }
  });

  test('returnToPool judges ownership by the session project (Keystone may scope by name)', async () => {
    await fill();
    const claimId = unique('claim-by-name');
    const row = await repo.reserve(sasPool('Debian8 64bit'), claimId);
    assert.ok(row?.volumeId);
    const byName = { ...config, auth: { ...config.auth, projectId: undefined } };
    const back = await new MockActivityEnvironment().run(
      activities(byName, cinderFromConfig(config)).returnToPool,
      {
        target: {
          claimId,
          projectId: ALPHA,
          userId: TENANT_USER,
          name: unique('vm-by-name'),
          os: 'Debian8 64bit',
          volumeType: 'sas',
          sizeGb: null,
          zone: zone(),
        },
        reserved: reservedVolume(row) as ReservedVolume,
      },
    );
    assert.equal(back, 'released');
    assert.equal((await repo.get(row.id))?.status, 'available');
    assert.equal((await admin.getVolume(row.volumeId)).status, 'available');
  });

  test("a data-disk claim never adopts nor deletes the tenant's own volume of that name", async () => {
    const name = unique('data');
    const own = await tenant('alpha').createVolume({ name, size: 1, volumeType: 'sas' });
    await waitVolumeStatus(admin, own.id, 'available');
    await admin.resetVolumeStatus(own.id, 'error_extending');
    const res = await claim({ name, systemDisk: false, sizeGb: 1 });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().outcome, 'created');
    assert.notEqual(res.json().volumeId, own.id);
    assert.equal((await admin.getVolume(own.id)).status, 'error_extending', 'left untouched');
    for (const id of [own.id, res.json().volumeId as string]) {
      await admin.resetVolumeStatus(id, 'available');
      await admin.deleteVolume(id);
    }
  });

  test('plain creation ends at its deadline even when Cinder stops answering about the volume', async () => {
    const input: ClaimInput = {
      requestId: unique('deadline'),
      projectId: ALPHA,
      userId: TENANT_USER,
      name: unique('vm-deadline'),
      os: null,
      volumeType: 'sas',
      sizeGb: 1,
      systemDisk: false,
      createTimeoutMs: 4000,
    };
    const blind = proxy.add({
      method: 'GET',
      path: new RegExp(`/v3/${ALPHA}/volumes/[0-9a-f-]{36}$`),
      action: { kind: 'status', status: 503 },
    });
    const started = Date.now();
    await assert.rejects(
      client.workflow.execute(claimVolumeWorkflow, {
        taskQueue: taskQueue(),
        workflowId: claimWorkflowId(input.requestId),
        args: [input],
      }),
      (err: Error & { cause?: { cause?: Error } }) => {
        assert.match(err.cause?.cause?.message ?? '', /not confirmed available within/);
        return true;
      },
    );
    const tookMs = Date.now() - started;
    assert.ok(blind.hits >= 2, 'the wait was retried');
    assert.ok(tookMs < 60_000, `ended ${tookMs} ms after the start, deadline 4 s`);
    proxy.clear();
    // What it made is gone: nothing half-made under the requested name.
    await waitFor(
      'the timed-out volume deleted',
      () => tenant('alpha').listVolumes({ name: input.name }),
      (l) => l.every((v) => v.status === 'deleting'),
    );
  });

  test("a refused extend still delivers the volume: 201 with the delivered size and Cinder's reason", async () => {
    await fill();
    const project = randomProjectId();
    await admin.updateQuota(project, { volumes: 5, gigabytes: 1 });
    const name = unique('vm-small');
    const res = await claim({ name, os: 'Debian8 64bit', projectId: project, sizeGb: 3 });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().outcome, 'pool');
    assert.match(res.json().extendError ?? '', /quota|gigabytes|exceed/i);
    const v = await admin.getVolume(res.json().volumeId);
    assert.equal(v.projectId, project);
    assert.equal(v.name, name);
    assert.equal(v.size, 1);
    assert.equal(v.status, 'available');
    await admin.deleteVolume(v.id);
  });

  test('two requestIds for one name: one pool volume, one tenant volume, the second claim sees it as existing', async () => {
    await fill();
    const before = (await rowsOf('Debian8 64bit')).length;
    const name = unique('vm-twice');
    const replies = await Promise.all([
      claim({ name, os: 'Debian8 64bit' }),
      claim({ name, os: 'Debian8 64bit' }),
    ]);
    for (const r of replies) assert.equal(r.statusCode, 201, r.body);
    assert.deepEqual(replies.map((r) => r.json().outcome).sort(), ['existing', 'pool']);
    assert.equal(replies[0]?.json().volumeId, replies[1]?.json().volumeId);
    assert.equal((await tenant('alpha').listVolumes({ name })).length, 1);
    assert.equal((await rowsOf('Debian8 64bit')).length, before - 1, 'one pool volume used');
    const { rows } = await db.query('SELECT * FROM claim_names WHERE name = $1', [name]);
    assert.deepEqual(rows, [], 'the name lock is released');
  });

  test('twin attempts of one step never both run: one waits (StepBusy), one volume results', async () => {
    const acts = activities();
    // Tenant creates answer slowly: the window in which a twin used to create a second volume.
    proxy.add({
      method: 'POST',
      path: new RegExp(`/v3/${ALPHA}/volumes$`),
      action: { kind: 'delay', ms: 4000 },
    });
    const target = {
      claimId: unique('claim-twin'),
      projectId: ALPHA,
      userId: TENANT_USER,
      name: unique('vm-twin'),
      os: null,
      volumeType: 'sas',
      sizeGb: 1,
    };
    const first = new MockActivityEnvironment({ attempt: 1 });
    let beats = 0;
    first.on('heartbeat', () => beats++);
    const twins = await Promise.allSettled([
      first.run(acts.createTenantVolume, { target, image: null }),
      new Promise((r) => setTimeout(r, 500)).then(() =>
        new MockActivityEnvironment({ attempt: 2 }).run(acts.createTenantVolume, {
          target,
          image: null,
        }),
      ),
    ]);
    assert.equal(twins[0].status, 'fulfilled');
    assert.equal(twins[1].status, 'rejected');
    assert.equal((twins[1] as PromiseRejectedResult).reason.type, 'StepBusy');
    // One beat per 3 s interval (none at the start): the 4 s call is seen alive.
    assert.ok(beats >= 1, `heartbeats while the slow call ran: ${beats}`);
    const made = await tenant('alpha').listVolumes({ name: target.name });
    assert.equal(made.length, 1);
    // The next attempt, once the first is over, adopts that volume.
    const retry: { volumeId: string } = await new MockActivityEnvironment({ attempt: 3 }).run(
      acts.createTenantVolume,
      {
        target,
        image: null,
      },
    );
    assert.equal(retry.volumeId, made[0]?.id);
    await waitVolumeStatus(admin, retry.volumeId, 'available');
    await admin.deleteVolume(retry.volumeId);
  });

  test('twin pool creates: one runs, the other waits; nothing doubled or stranded', async () => {
    const acts = activities();
    const snap = await osSnapshot('Debian8 64bit', 'sas');
    const order = {
      name: unique('warmpool-twin'),
      os: 'Debian8 64bit',
      type: 'sas',
      snapshotId: snap.id,
      volumeType: 'sas',
      sizeGb: 1,
    };
    proxy.add({
      method: 'POST',
      path: /\/volumes$/,
      action: { kind: 'delay', ms: 3000 },
      times: 1,
    });
    const creates = await Promise.allSettled([
      new MockActivityEnvironment({ attempt: 1 }).run(acts.createPoolVolume, order),
      new Promise((r) => setTimeout(r, 500)).then(() =>
        new MockActivityEnvironment({ attempt: 2 }).run(acts.createPoolVolume, order),
      ),
    ]);
    assert.equal(creates[0].status, 'fulfilled');
    assert.equal((creates[1] as PromiseRejectedResult).reason?.type, 'StepBusy');
    const made = await admin.listVolumes({ name: order.name });
    assert.equal(made.length, 1, 'one pool volume under that name');
    await waitVolumeStatus(admin, made[0]?.id as string, 'available');
    await repo.deleteByVolumeId(made[0]?.id as string);
    await admin.deleteVolume(made[0]?.id as string);
  });

  test('a transient Cinder error in the check is not taken for a vanished volume', async () => {
    await fill();
    const [row] = (await rowsOf('Debian8 64bit')).filter((r) => r.status === 'available');
    assert.ok(row?.volumeId);
    // Out of the tagged list (as a claim's untagging would), so the check asks for it by id…
    await admin.replaceVolumeMetadata(row.volumeId, {});
    proxy.add({ method: 'GET', path: volumePath(row.volumeId), action: { kind: 'reset' } });
    const check = await run(checkPoolStateWorkflow);
    assert.equal(check.unreachable, 1);
    assert.equal(check.removedVanished, 0);
    assert.ok(await repo.get(row.id), 'the row is kept');
    proxy.clear();
    await admin.replaceVolumeMetadata(
      row.volumeId,
      poolTags(config.pool.volumeNamePrefix, row.os, row.type, row.snapshotId, row.zone),
    );
  });

  test('a failed microversion probe is asked again, not pinned to the legacy transfer API', async () => {
    const cinder = cinderFromConfig(config);
    const probe = proxy.add({
      method: 'GET',
      path: /^\/v3\/?$/,
      action: { kind: 'status', status: 500 },
      times: 1,
    });
    await assert.rejects(cinder.listTransfers(), /version probe|500/);
    assert.equal(probe.hits, 1);
    const seen = proxy.seen.length;
    await cinder.listTransfers();
    assert.ok(
      proxy.seen.slice(seen).some((s) => s.endsWith('/volume-transfers/detail')),
      proxy.seen.slice(seen).join(', '),
    );
  });

  test('concurrent attempts of one claim never reserve two rows', async () => {
    await fill();
    const claimId = unique('claim-once');
    const got = await Promise.all(
      Array.from({ length: 12 }, () => repo.reserve(sasPool('Debian8 64bit'), claimId)),
    );
    // One row, and every attempt sees it: twins are serialized, none falls back for nothing.
    const ids = new Set(got.map((r) => r?.id ?? null));
    assert.deepEqual([...ids].length, 1, `reserved ${[...ids].join(', ')}`);
    assert.ok(!ids.has(null), 'an attempt saw no row while its twin held one');
    const held = (await repo.listAll()).filter((r) => r.reservedBy === claimId);
    assert.equal(held.length, 1);
    assert.ok(await releaseHeld(db, held[0]?.id as number, claimId));
  });

  test('afterwards: pool rows = tagged admin volumes, nothing reserved, nothing awaiting transfer', async () => {
    proxy.clear();
    const rows = await repo.listAll();
    assert.deepEqual(
      rows.filter((r) => r.status === 'reserved'),
      [],
    );
    const tagged = await taggedVolumes();
    assert.deepEqual(
      tagged.map((v) => v.id).sort(),
      rows
        .map((r) => r.volumeId)
        .filter((x) => x)
        .sort(),
    );
    assert.ok(!tagged.some((v) => v.status === 'awaiting-transfer'));
  });
});
