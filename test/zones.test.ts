/**
 * Pools per availability zone, against the stack's two Cinder zones (az-1, az-2; each OS
 * snapshot exists in both, under one name): the fill makes each zone's stock from that zone's
 * own snapshot, in that zone; a claim takes stock of its zone only, and when its zone has none
 * it creates in its zone, never handing over another zone's volume; an unknown zone is a 400
 * naming the known ones; the answer carries the zone and a block device mapping for Nova.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import type { Client } from '@temporalio/client';
import { buildApi } from '../api/server';
import { fillPoolWorkflow } from '../workflows';
import type { Db } from '../lib/pool-state/db';
import { PoolRepository, OsImageRepository } from '../lib/pool-state/repository';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import { admin, tenant, unique, waitFor } from './support/env';
import {
  closeStack,
  exited,
  openStack,
  poolEnv,
  spawnWorker,
  startWorker,
  taggedVolumes,
  testConfig,
  wipePool,
  type RunningWorker,
} from './support/pool';

const OS = 'Debian8 64bit';
let client: Client;
let db: Db;
let worker: RunningWorker;
let app: FastifyInstance;
const { config } = testConfig({
  // Two per zone; the second test takes az-2's away, so a claim for az-2 must create there.
  ...poolEnv({ more: OS, numsMore: 2, zones: 'az-1, az-2' }),
  POOL__VOLUMES_BACKUP__DEFAULT_AVAILABILITY_ZONE: 'az-1',
  POOL__API__CLAIM_WAIT_SECOND: '120',
});
const auth = { authorization: `Bearer ${config.api.apiKeys[0]}` };
const rows = () => new PoolRepository(db).listAll();

before(async () => {
  ({ client, db } = await openStack(5, { wipe: true }));
  worker = await startWorker(config, db, { temporal: client });
  app = buildApi({ config, db, temporal: client });
});

after(async () => {
  await app?.close();
  await worker?.stop();
  await closeStack({ client, db });
});

async function fill(): Promise<void> {
  await client.workflow.execute(fillPoolWorkflow, {
    taskQueue: config.temporal.taskQueue,
    workflowId: unique('fill'),
    args: [{}],
  });
}

function claim(body: Record<string, unknown>) {
  return app.inject({
    method: 'POST',
    url: '/v1/claims',
    headers: auth,
    payload: {
      requestId: unique('zone'),
      projectId: TENANT_PROJECTS.alpha,
      name: unique('vm-sys'),
      os: OS,
      volumeType: 'sas',
      ...body,
    },
  });
}

describe('pools per availability zone', () => {
  test("the fill makes each zone's stock from that zone's snapshot, in that zone", async () => {
    await fill();
    const images = await new OsImageRepository(db).list();
    const mine = images.filter((i) => i.os === OS && i.type === 'sas');
    assert.deepEqual(mine.map((i) => i.zone).sort(), ['az-1', 'az-2']);
    const [az1, az2] = ['az-1', 'az-2'].map((z) => mine.find((i) => i.zone === z));
    assert.notEqual(az1?.snapshotId, az2?.snapshotId, 'each zone has its own snapshot');
    assert.equal(az1?.snapshotName, az2?.snapshotName, 'under the same name');
    for (const img of mine) {
      const snap = await admin.getSnapshot(img.snapshotId);
      const source = await admin.getVolume(snap.volumeId);
      assert.equal(source.availabilityZone, img.zone, `${img.zone}'s snapshot is in its zone`);
    }
  });

  test('a claim for a zone without stock creates there and never takes stock of another zone', async () => {
    // The fill above filled both zones (2 each): take az-2's stock away first.
    const repo = new PoolRepository(db);
    for (const r of (await rows()).filter((x) => x.zone === 'az-2')) {
      const v = r.volumeId ? await admin.findVolume(r.volumeId) : null;
      if (v) await admin.deleteVolume(v.id);
      await repo.delete(r.id);
    }
    const az1Before = (await rows()).filter((r) => r.zone === 'az-1' && r.status === 'available');
    assert.equal(az1Before.length, 2, 'az-1 holds its stock');

    const res = await claim({ availabilityZone: 'az-2', deleteOnTermination: true });
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.outcome, 'created', body.fallbackReason);
    assert.equal(body.fallbackReason, 'pool empty');
    assert.equal(body.availabilityZone, 'az-2');
    const v = await tenant('alpha').getVolume(body.volumeId);
    assert.equal(v.availabilityZone, 'az-2', 'made in the claimed zone');
    assert.ok(!az1Before.some((r) => r.volumeId === body.volumeId), 'no az-1 stock handed over');
    const az1After = (await rows()).filter((r) => r.zone === 'az-1' && r.status === 'available');
    assert.deepEqual(
      az1After.map((r) => r.id).sort(),
      az1Before.map((r) => r.id).sort(),
      "az-1's stock untouched",
    );
    assert.deepEqual(body.blockDeviceMapping, {
      uuid: body.volumeId,
      source_type: 'volume',
      destination_type: 'volume',
      boot_index: 0,
      delete_on_termination: true,
    });
  });

  test("a claim without a zone takes the default zone's stock; the answer names the zone", async () => {
    const stock = (await rows()).filter((r) => r.zone === 'az-1' && r.status === 'available');
    const res = await claim({});
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.outcome, 'pool');
    assert.equal(body.availabilityZone, 'az-1');
    assert.ok(
      stock.some((r) => r.volumeId === body.volumeId),
      'one of az-1 stock',
    );
    assert.equal((await tenant('alpha').getVolume(body.volumeId)).availabilityZone, 'az-1');
    assert.equal(body.blockDeviceMapping.delete_on_termination, false);
    assert.equal(body.blockDeviceMapping.boot_index, 0);
  });

  test("a volume of that name in another zone fails the claim (Nova would refuse it), one in the claim's zone is returned", async () => {
    const name = unique('vm-sys');
    const there = await tenant('alpha').createVolume({ name, size: 1, availabilityZone: 'az-1' });
    try {
      await waitFor(
        'the tenant volume',
        () => tenant('alpha').getVolume(there.id),
        (v) => v.status === 'available',
        60_000,
      );
      const other = await claim({ name, availabilityZone: 'az-2' });
      assert.equal(other.statusCode, 422, other.body);
      assert.match(other.json().error, /is in zone az-1, not az-2/);
      const same = await claim({ name, availabilityZone: 'az-1' });
      assert.equal(same.statusCode, 201, same.body);
      assert.deepEqual(
        [same.json().outcome, same.json().volumeId, same.json().availabilityZone],
        ['existing', there.id, 'az-1'],
      );
    } finally {
      await tenant('alpha').deleteVolume(there.id);
    }
  });

  test('an unknown zone is a 400 naming the known zones', async () => {
    const res = await claim({ availabilityZone: 'az-9' });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error, 'unknown availabilityZone "az-9"; known: az-1, az-2');
  });

  test("status, /v1/pool and /metrics show each zone's pool", async () => {
    const pool = await app.inject({ url: '/v1/pool', headers: auth });
    const levels = pool.json().levels as { os: string; zone: string; available: number }[];
    assert.deepEqual(
      levels
        .filter((l) => l.os === OS)
        .map((l) => l.zone)
        .sort(),
      ['az-1', 'az-2'],
    );
    const metrics = (await app.inject({ url: '/metrics' })).body;
    assert.match(
      metrics,
      /warmpool_pool_volumes\{volume_type="sas",os="Debian8 64bit",zone="az-2",state="floor"\} 2/,
    );
  });
});

describe('two zones under a burst with a worker crash', () => {
  test('24 claims across both zones, one of two workers SIGKILLed mid-burst: each volume once, in its zone', async () => {
    const n = 24;
    const { config: burst, env } = testConfig({
      ...poolEnv({ more: OS, numsMore: 6, zones: 'az-1, az-2', concurrency: 4 }),
      POOL__API__CLAIM_WAIT_SECOND: '240',
    });
    await wipePool(db);
    const workers = [spawnWorker(env), spawnWorker(env)];
    const gone = workers.map(exited);
    const api = buildApi({ config: burst, db, temporal: client });
    try {
      await client.workflow.execute(fillPoolWorkflow, {
        taskQueue: burst.temporal.taskQueue,
        workflowId: unique('fill'),
        args: [{}],
      });
      const stock = await new PoolRepository(db).listAll();
      const zoneOf = new Map(stock.map((r) => [r.volumeId ?? '', r.zone]));
      const projects = [TENANT_PROJECTS.alpha, TENANT_PROJECTS.beta];
      const reqs = Array.from({ length: n }, (_, i) => ({
        requestId: unique('zburst'),
        projectId: projects[i % 2] as string,
        name: unique('vm-zburst'),
        os: OS,
        volumeType: 'sas',
        availabilityZone: i % 3 === 0 ? 'az-2' : 'az-1', // az-1 runs out (16 asked, 6 in stock)
      }));
      const replies = Promise.all(
        reqs.map((payload) =>
          api.inject({
            method: 'POST',
            url: '/v1/claims',
            headers: { authorization: `Bearer ${burst.api.apiKeys[0]}` },
            payload,
          }),
        ),
      );
      await waitFor(
        'the burst under way',
        () => new PoolRepository(db).listAll(),
        (rows) => rows.filter((r) => r.status !== 'available').length >= 3,
        60_000,
        50,
      );
      workers[0]?.kill('SIGKILL');
      const done = await replies;
      for (const r of done) assert.equal(r.statusCode, 201, r.body);
      const ids = done.map((r) => r.json().volumeId as string);
      assert.equal(new Set(ids).size, n, 'no volume handed out twice');
      const everyone = await admin.listVolumes({ allTenants: true });
      for (let i = 0; i < n; i++) {
        const req = reqs[i] as (typeof reqs)[number];
        const answer = done[i]?.json();
        const mine = everyone.filter((v) => v.name === req.name && v.status !== 'deleting');
        assert.deepEqual(
          mine.map((v) => v.id),
          [ids[i]],
          `claim ${i}: exactly one volume`,
        );
        assert.equal(mine[0]?.projectId, req.projectId, `claim ${i} in the wrong project`);
        assert.equal(mine[0]?.availabilityZone, req.availabilityZone, `claim ${i} in its zone`);
        assert.equal(answer.availabilityZone, req.availabilityZone);
        if (answer.outcome === 'pool')
          assert.equal(
            zoneOf.get(ids[i] as string),
            req.availabilityZone,
            `claim ${i}: its zone's stock`,
          );
      }
      const outcomes = done.map((r) => `${r.json().availabilityZone}:${r.json().outcome}`);
      assert.ok(outcomes.includes('az-2:pool') && outcomes.includes('az-1:pool'), outcomes.join());
      assert.ok(outcomes.includes('az-1:created'), 'az-1 ran out and created in az-1');
      const rows = await new PoolRepository(db).listAll();
      assert.deepEqual(
        rows.filter((r) => r.status === 'reserved'),
        [],
        'nothing left reserved',
      );
      const tagged = (await taggedVolumes()).map((v) => v.id).sort();
      const rowVolumes = rows.map((r) => r.volumeId).filter((x): x is string => !!x);
      assert.deepEqual(tagged, rowVolumes.sort(), 'pool rows = tagged admin volumes');
      for (const id of ids) await admin.deleteVolume(id);
    } finally {
      await api.close();
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGTERM');
      await Promise.all(gone);
    }
  });
});
