/**
 * The fenced hand-off against the real stack (Temporal, PostgreSQL, Cinder behind the fault
 * proxy), with the project's own activities in a mocked activity context. Each test replays a
 * sequence in which an attempt acts on a pool row that is not its own any more, and counts the
 * Cinder mutations that attempt makes through the proxy. (The defect sequences 1, 2, 3 and 5,
 * run against the code before the fence, fail there: a compensation answering `accepted` for
 * another claim's volume, a re-run deleting another claim's transfer, an accepted volume
 * quarantined into an orphan, an `existing` answer counted as a pool hit.)
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities';
import { reservedVolume } from '../activities/claim/reserve';
import { connectClient } from '../lib/temporal/connect';
import { createDb, type Db } from '../lib/pool-state/db';
import { HandOffRows } from '../lib/pool-state/handoff';
import { PoolRepository } from '../lib/pool-state/repository';
import { cinderFromConfig } from '../lib/cinder';
import { createLogger } from '../lib/log';
import type { AppConfig } from '../lib/config/load';
import { fillPoolWorkflow } from '../workflows';
import type { ClaimTarget, Compensation, Delivery, ReservedVolume } from '../contracts/claim';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import { admin, config as stackConfig, tenant, unique } from './support/env';
import { FaultProxy } from './support/fault-proxy';
import { waitVolumeStatus } from './support/cinder';
import { poolEnv, startWorker, testConfig, wipePool, type RunningWorker } from './support/pool';

const ALPHA = TENANT_PROJECTS.alpha;
const OS = 'Debian8 64bit';
let proxy: FaultProxy;
let client: Client;
let db: Db;
let repo: PoolRepository;
let rows: HandOffRows;
let worker: RunningWorker;
let config: AppConfig;

before(async () => {
  proxy = await FaultProxy.start(new URL(stackConfig.auth.cinderUrl as string).origin);
  ({ config } = testConfig({
    ...poolEnv({ more: OS, numsMore: 4 }),
    POOL__AUTH_ARGS__CINDER_URL: proxy.cinderUrl,
  }));
  client = await connectClient(stackConfig);
  db = createDb(stackConfig.databaseUrl, 10);
  repo = new PoolRepository(db);
  rows = new HandOffRows(db);
  await wipePool(db);
  worker = await startWorker(config, db, { temporal: client });
});
after(async () => {
  proxy.clear();
  await worker.stop();
  await wipePool(db);
  await proxy.close();
  await client.connection.close();
  await db.end();
});
beforeEach(async () => {
  proxy.clear();
  await client.workflow.execute(fillPoolWorkflow, {
    taskQueue: config.temporal.taskQueue,
    workflowId: unique('fence-fill'),
    args: [{ reason: 'test' }],
  });
});

function activities() {
  return createActivities({
    config,
    cinder: cinderFromConfig(config),
    db,
    log: createLogger('test', 'silent'),
  });
}
function target(label: string): ClaimTarget {
  return {
    claimId: unique(`claim-${label}`),
    projectId: ALPHA,
    userId: TENANT_USER,
    name: unique(`vm-${label}`),
    os: OS,
    volumeType: 'sas',
    sizeGb: null,
    // The zone the worker's fill stocks ('' when it names none): the claim takes its stock.
    zone: config.pool.zones[0] ?? '',
  };
}

async function reserve(t: ClaimTarget): Promise<ReservedVolume> {
  const row = await repo.reserve({ type: 'sas', os: OS, zone: t.zone ?? '' }, t.claimId);
  assert.ok(row, 'a pool row was reserved');
  return reservedVolume(row) as ReservedVolume;
}

const deliver = (t: ClaimTarget, reserved: ReservedVolume) =>
  new MockActivityEnvironment().run(activities().deliverPoolVolume, {
    target: t,
    reserved,
  }) as Promise<Delivery>;
const compensate = (t: ClaimTarget, reserved: ReservedVolume) =>
  new MockActivityEnvironment().run(activities().returnToPool, {
    target: t,
    reserved,
  }) as Promise<Compensation>;

/** The Cinder mutations (not reads) the proxy saw from index `from` on. */
const mutations = (from: number) =>
  proxy.seen
    .slice(from)
    .filter((c) => !c.startsWith('GET '))
    .map((c) => c.replace(/[0-9a-f-]{32,36}/g, '<id>'));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('fenced hand-off (real stack + fault proxy)', () => {
  test('defect 1: a compensation retried after another claim took the released row answers lost, not accepted', async () => {
    const a = target('a');
    const ra = await reserve(a);
    // A's compensation releases the row; its result is "lost" (the worker died before it was
    // recorded), so it will run again.
    assert.equal(await compensate(a, ra), 'released');
    // C reserves the same row (oldest first); its hand-off has accepted, not yet renamed.
    const c = target('c');
    const rc = await reserve(c);
    assert.equal(rc.rowId, ra.rowId, 'C got the row A released');
    const heldByC = await rows.take(rc.rowId, c.claimId, true);
    assert.ok(heldByC);
    const transfer = await admin.createTransfer(rc.volumeId, 'C in flight');
    assert.ok(await rows.advance(heldByC.fence, 'transferring', 'transferring', transfer.id));
    await tenant('alpha').acceptTransfer(transfer.id, transfer.authKey);
    // A's compensation runs again: the row is not A's, so nothing is done and nothing claimed.
    const from = proxy.seen.length;
    assert.equal(await compensate(a, ra), 'lost');
    assert.deepEqual(mutations(from), [], 'no Cinder mutation from a compensation without its row');
    // C's hand-off resumes (a re-run) and finishes: the volume is C's, under C's name.
    const delivered = await deliver(c, rc);
    assert.deepEqual([delivered.existing, delivered.volumeId], [false, rc.volumeId]);
    const v = await admin.getVolume(rc.volumeId);
    assert.equal(v.name, c.name, "C's volume has C's name");
    assert.equal(v.projectId, ALPHA);
    assert.equal(await repo.get(rc.rowId), null, 'delivered');
    await tenant('alpha').deleteVolume(v.id);
  });

  test("defect 2: a re-run hand-off whose row went to another claim leaves that claim's transfer alone", async () => {
    const a = target('a2');
    // The name exists already in A's project: A's hand-off answers `existing` and gives the row back.
    const own = await tenant('alpha').createVolume({ name: a.name, size: 1, volumeType: 'sas' });
    await waitVolumeStatus(admin, own.id, 'available');
    const ra = await reserve(a);
    const first = await deliver(a, ra);
    assert.deepEqual([first.existing, first.volumeId], [true, own.id]);
    // C reserves the row and has a transfer pending (between its transfer create and accept).
    const c = target('c2');
    const rc = await reserve(c);
    assert.equal(rc.rowId, ra.rowId);
    const heldByC = await rows.take(rc.rowId, c.claimId, true);
    assert.ok(heldByC);
    const transfer = await admin.createTransfer(rc.volumeId, 'C in flight');
    assert.ok(await rows.advance(heldByC.fence, 'transferring', 'transferring', transfer.id));
    // A's hand-off runs again (its name release failed, the local activity re-ran).
    const from = proxy.seen.length;
    const again = await deliver(a, ra);
    assert.deepEqual([again.existing, again.volumeId], [true, own.id]);
    assert.deepEqual(mutations(from), [], 'no Cinder mutation from a hand-off without its row');
    const pending = await admin.listTransfers({ volumeId: rc.volumeId });
    assert.deepEqual(
      pending.map((p) => p.id),
      [transfer.id],
      "C's transfer is still there",
    );
    // C accepts with its key and finishes.
    await tenant('alpha').acceptTransfer(transfer.id, transfer.authKey);
    assert.ok(await rows.advance(heldByC.fence, 'transferring', 'accepted'));
    const finished = await deliver(c, rc);
    assert.equal(finished.existing, false);
    assert.equal((await admin.getVolume(rc.volumeId)).name, c.name);
    for (const id of [own.id, rc.volumeId]) await tenant('alpha').deleteVolume(id);
  });

  test('defect 3: an accept that completes while the compensation runs is finished, never orphaned; the hand-off stops', async () => {
    const a = target('a3');
    const ra = await reserve(a);
    // The hand-off's accept is held 1.5 s before it reaches Cinder; the compensation's look at
    // the transfers is held 2.5 s, so the accept lands while the compensation runs.
    proxy.add({ method: 'POST', path: /\/accept$/, action: { kind: 'delay', ms: 1500 }, times: 1 });
    const handOff = deliver(a, ra).then(
      () => null,
      (err: { type?: string }) => err.type ?? String(err),
    );
    await sleep(600); // the transfer exists, the accept is on its way
    proxy.add({
      method: 'GET',
      path: /-transfers?(\/detail)?$/,
      action: { kind: 'delay', ms: 2500 },
      times: 1,
    });
    const from = proxy.seen.length;
    const compensation = await compensate(a, ra);
    const stray = await handOff;
    assert.equal(compensation, 'accepted', 'the volume is the tenant’s: the claim finishes it');
    assert.equal(stray, 'HandOffSuperseded', 'the hand-off attempt stopped at its next step');
    assert.ok(
      !mutations(from).some((m) => m.startsWith('PUT ')),
      `no rename by the superseded attempt: ${mutations(from).join(', ')}`,
    );
    const row = await repo.get(ra.rowId);
    assert.deepEqual([row?.status, row?.handoffState], ['reserved', 'accepted']);
    // The workflow then resumes the hand-off at `accepted`: rename, delivered.
    const done = await deliver(a, ra);
    assert.deepEqual([done.existing, done.volumeId], [false, ra.volumeId]);
    const v = await admin.getVolume(ra.volumeId);
    assert.deepEqual([v.projectId, v.name, v.status], [ALPHA, a.name, 'available']);
    assert.equal(await repo.get(ra.rowId), null, 'delivered');
    await tenant('alpha').deleteVolume(v.id);
  });

  test('fencing: a hand-off attempt whose epoch was taken over makes no further Cinder mutation', async () => {
    const a = target('a4');
    const ra = await reserve(a);
    // Attempt 1's accept is held 2 s in the proxy; attempt 2 (a re-run) starts meanwhile.
    proxy.add({ method: 'POST', path: /\/accept$/, action: { kind: 'delay', ms: 2000 }, times: 1 });
    const first = deliver(a, ra).then(
      () => 'delivered',
      (err: { type?: string }) => err.type ?? String(err),
    );
    await sleep(500);
    const from = proxy.seen.length;
    const second = await deliver(a, ra);
    const firstOutcome = await first;
    assert.equal(second.existing, false);
    assert.equal(firstOutcome, 'HandOffSuperseded');
    // Attempt 2: drop attempt 1's transfer, transfer, accept, rename. Attempt 1's held accept
    // reaches Cinder after that (and fails: its transfer is gone); then attempt 1 stops.
    assert.deepEqual(mutations(from), [
      'DELETE /v3/<id>/volume-transfers/<id>',
      'POST /v3/<id>/volume-transfers',
      'POST /v3/<id>/volume-transfers/<id>/accept',
      'PUT /v3/<id>/volumes/<id>',
    ]);
    const v = await admin.getVolume(ra.volumeId);
    assert.deepEqual([v.projectId, v.name], [ALPHA, a.name]);
    assert.deepEqual(await admin.listTransfers({ volumeId: ra.volumeId }), []);
    await tenant('alpha').deleteVolume(v.id);
  });

  test('fencing: a compensation attempt whose epoch was taken over makes no Cinder mutation', async () => {
    const a = target('a5');
    const ra = await reserve(a);
    // A hand-off got as far as a pending transfer, then failed.
    const held = await rows.take(ra.rowId, a.claimId, true);
    assert.ok(held);
    const t = await admin.createTransfer(ra.volumeId, 'dead attempt');
    assert.ok(await rows.advance(held.fence, 'transferring', 'transferring', t.id));
    // Compensation 1 lists the transfers slowly; compensation 2 (its retry) runs meanwhile.
    proxy.add({
      method: 'GET',
      path: /-transfers?(\/detail)?$/,
      action: { kind: 'delay', ms: 2000 },
      times: 1,
    });
    const first = compensate(a, ra);
    await sleep(500);
    assert.equal(await compensate(a, ra), 'released');
    const from = proxy.seen.length;
    assert.equal(await first, 'lost');
    assert.deepEqual(mutations(from), [], 'no Cinder mutation after the takeover');
    const row = await repo.get(ra.rowId);
    assert.deepEqual([row?.status, row?.reservedBy], ['available', null]);
    assert.equal((await admin.getVolume(ra.volumeId)).status, 'available');
  });

  test('defect 5: demand counts deliveries: an existing answer or a refused accept is no demand, no share used', async () => {
    const demandOf = async (claimId: string) =>
      (await db.query('SELECT hit FROM claim_demand WHERE claim_id = $1', [claimId])).rows;
    // The name exists already: `existing`, the row given back, no demand.
    const a = target('a6');
    const own = await tenant('alpha').createVolume({ name: a.name, size: 1, volumeType: 'sas' });
    await waitVolumeStatus(admin, own.id, 'available');
    const ra = await reserve(a);
    assert.equal((await deliver(a, ra)).existing, true);
    assert.deepEqual(await demandOf(a.claimId), []);
    // The tenant's quota refuses the accept: no demand either (plain creation records its own).
    const b = target('b6');
    const rb = await reserve(b);
    proxy.add({
      method: 'POST',
      path: /\/accept$/,
      action: { kind: 'status', status: 413, message: 'VolumeLimitExceeded' },
      times: 1,
    });
    await assert.rejects(deliver(b, rb), (err: { type?: string }) => {
      assert.equal(err.type, 'AcceptRefused');
      return true;
    });
    assert.equal(await compensate(b, rb), 'released');
    assert.deepEqual(await demandOf(b.claimId), []);
    // A delivery is one pool hit of the tenant, recorded with the row's removal.
    const c = target('c6');
    const rc = await reserve(c);
    assert.equal((await deliver(c, rc)).existing, false);
    assert.deepEqual(await demandOf(c.claimId), [{ hit: true }]);
    for (const id of [own.id, rc.volumeId]) await tenant('alpha').deleteVolume(id);
  });
});
