/**
 * Claims through the HTTP API, against the real Temporal, PostgreSQL and Cinder: the seed's tests
 * 7–9, idempotency, 50 concurrent claims on 10 in stock, size extension, accept refused, bad
 * requests, Temporal down, and no secret in any workflow history.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { Client, Connection } from '@temporalio/client';
import { buildApi } from '../api/server';
import { connectClient } from '../lib/temporal/connect';
import { ensureSchedules } from '../lib/temporal/schedules';
import { scheduleIds } from '../contracts/fill';
import { createDb, type Db } from '../lib/pool-state/db';
import { PoolRepository } from '../lib/pool-state/repository';
import { CinderClient } from '../lib/cinder';
import { TAGS } from '../lib/pool-state/naming';
import { fillPoolWorkflow } from '../workflows';
import { claimWorkflowId } from '../contracts/claim';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import {
  admin,
  config as stackConfig,
  randomProjectId,
  tenant,
  sleep,
  unique,
  waitFor,
} from './support/env';
import {
  poolEnv,
  startWorker,
  taggedVolumes,
  testConfig,
  wipePool,
  setCreateDelay,
  type RunningWorker,
} from './support/pool';

let client: Client;
let db: Db;
let worker: RunningWorker;
let app: FastifyInstance;
const authKeys: string[] = [];
const { config } = testConfig({
  ...poolEnv({ more: 'Debian8 64bit', less: 'Centos7.3 64bit', numsMore: 10, numsLess: 1 }),
  POOL__API__CLAIM_WAIT_SECOND: '120',
  POOL__VOLUMES_BACKUP__BACKUP_FREQUENCY_MINUTE: '600',
  POOL__VOLUMES_BACKUP__CHECK_STATE_FREQUENCY_MINUTE: '600',
});
const key = config.api.apiKeys[0] as string;
const alpha = TENANT_PROJECTS.alpha;

before(async () => {
  client = await connectClient(stackConfig);
  db = createDb(stackConfig.databaseUrl, 10);
  await wipePool(db);
  // Every Cinder client of this process (the worker's per-attempt ones too) remembers the
  // transfer auth keys it gets, so the test can look for them in histories.
  const createTransfer = CinderClient.prototype.createTransfer;
  CinderClient.prototype.createTransfer = async function (...args) {
    const t = await createTransfer.apply(this, args);
    authKeys.push(t.authKey);
    return t;
  };
  worker = await startWorker(config, db, { temporal: client });
  await ensureSchedules(client, config);
  app = buildApi({ config, db, temporal: client });
});

after(async () => {
  await app.close();
  await worker.stop();
  for (const id of Object.values(scheduleIds(config.temporal.schedulePrefix)))
    await client.schedule
      .getHandle(id)
      .delete()
      .catch(() => undefined);
  await wipePool(db);
  await client.connection.close();
  await db.end();
});

const auth = { authorization: `Bearer ${key}` };

function claim(body: Record<string, unknown>) {
  return app.inject({ method: 'POST', url: '/v1/claims', headers: auth, payload: body });
}

/** As a caller does: POST, and while the answer is 202, GET until the claim has ended. */
async function claimToEnd(
  body: Record<string, unknown>,
): Promise<{ status: string; json: () => { outcome: string; volumeId: string } }> {
  const first = await claim(body);
  if (first.statusCode === 201) return { status: 'completed', json: () => first.json() };
  assert.equal(first.statusCode, 202, first.body);
  for (;;) {
    await sleep(1000);
    const got = await app.inject({
      method: 'GET',
      url: `/v1/claims/${body.requestId}`,
      headers: auth,
    });
    const r = got.json() as { status: string; outcome: string; volumeId: string };
    if (r.status !== 'running') return { status: r.status, json: () => r };
  }
}

/** Workers that cache no workflow (npm run test:nocache): every task replays its history. */
const NO_CACHE = config.temporal.maxCachedWorkflows === 0;

function sysDisk(overrides: Record<string, unknown> = {}) {
  return {
    requestId: unique('req'),
    projectId: alpha,
    name: unique('vm-sys'),
    os: 'Debian8 64bit',
    volumeType: 'sas',
    ...overrides,
  };
}

async function fillNow(): Promise<void> {
  await client.workflow.execute(fillPoolWorkflow, {
    taskQueue: config.temporal.taskQueue,
    workflowId: unique('fill'),
    args: [{}],
  });
}

const rows = () => new PoolRepository(db).listAll();

/**
 * Waits out the refills earlier claims asked the schedule for (fillNow bypasses the schedule,
 * so a scheduled run could otherwise fill alongside it). Pauses the schedule meanwhile when asked.
 */
async function quietFills(pause = false): Promise<void> {
  const fill = client.schedule.getHandle(scheduleIds(config.temporal.schedulePrefix).fill);
  if (pause) await fill.pause('test needs a quiet pool');
  const q = `WorkflowType = 'fillPoolWorkflow' AND TaskQueue = '${config.temporal.taskQueue}' AND ExecutionStatus = 'Running'`;
  await waitFor(
    'no fill running',
    async () => {
      let n = 0;
      for await (const _ of client.workflow.list({ query: q })) n++;
      return n + (await fill.describe()).info.runningActions.length;
    },
    (n) => n === 0,
    60_000,
    500,
  );
}

describe('claims (API + workflow, real stack)', () => {
  test('seed 7: an empty pool → the claim succeeds by plain creation', async () => {
    const res = await claim(sysDisk());
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.outcome, 'created');
    assert.equal(body.fallbackReason, 'pool empty');
    assert.match(res.headers.location as string, /^\/v1\/claims\/req-/);
    const v = await tenant('alpha').getVolume(body.volumeId);
    assert.equal(v.status, 'available');
    assert.equal(v.volumeType, 'sas');
  });

  test('seed 8+9: a stocked pool hands a volume over: transferred, renamed, untagged, row removed; refill triggered; tenant deletes it', async () => {
    await fillNow();
    const before = await rows();
    const stock = before.filter((r) => r.os === 'Debian8 64bit');
    assert.equal(stock.length, 10);
    const req = sysDisk();
    const res = await claim(req);
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json();
    assert.equal(body.outcome, 'pool');
    assert.ok(
      stock.some((r) => r.volumeId === body.volumeId),
      'the volume came from the pool',
    );
    const v = await tenant('alpha').getVolume(body.volumeId);
    assert.equal(v.name, req.name);
    assert.equal(v.status, 'available');
    assert.ok(
      !Object.keys(v.metadata).some((k) => (Object.values(TAGS) as string[]).includes(k)),
      'pool tags removed',
    );
    assert.equal(
      (await admin.listVolumes({ name: req.name, allTenants: true }))[0]?.projectId,
      alpha,
    );
    assert.equal(await new PoolRepository(db).findByVolumeId(body.volumeId), null, 'row removed');
    // The claim triggered a refill through the fill schedule: the pool is back at target.
    await waitFor(
      'refill',
      rows,
      (r) => r.filter((x) => x.os === 'Debian8 64bit' && x.status === 'available').length === 10,
      60_000,
      500,
    );
    const d = await client.schedule
      .getHandle(scheduleIds(config.temporal.schedulePrefix).fill)
      .describe();
    assert.ok(d.info.recentActions.length >= 1, 'a fill was started by the claim');
    // Seed 9: the handed-out volume is an ordinary tenant volume.
    await tenant('alpha').deleteVolume(body.volumeId);
    await waitFor(
      'deleted',
      () => tenant('alpha').findVolume(body.volumeId),
      (x) => x === null,
    );
  });

  test('a system disk of that name already in the tenant is returned (existing)', async () => {
    const first = (await claim(sysDisk({ name: 'vm-fixed-name-' + unique('n') }))).json();
    const again = await claim(
      sysDisk({ name: (await tenant('alpha').getVolume(first.volumeId)).name }),
    );
    assert.equal(again.statusCode, 201);
    assert.equal(again.json().outcome, 'existing');
    assert.equal(again.json().volumeId, first.volumeId);
  });

  test('idempotency: 5 identical requests at once → one volume; a retry later → the same; another body → 409', async () => {
    const req = sysDisk();
    const replies = await Promise.all(Array.from({ length: 5 }, () => claim(req)));
    const ids = new Set(replies.map((r) => r.json().volumeId));
    assert.deepEqual(
      replies.map((r) => r.statusCode),
      [201, 201, 201, 201, 201],
    );
    assert.equal(ids.size, 1);
    const later = await claim(req);
    assert.equal(later.json().volumeId, [...ids][0]);
    assert.equal((await tenant('alpha').listVolumes({ name: req.name })).length, 1);
    const conflict = await claim({ ...req, name: 'something-else' });
    assert.equal(conflict.statusCode, 409);
    assert.match(conflict.json().error, /already used with a different body/);
    const get = await app.inject({ url: `/v1/claims/${req.requestId}`, headers: auth });
    assert.equal(get.statusCode, 200);
    assert.equal(get.json().status, 'completed');
    assert.equal(get.json().volumeId, [...ids][0]);
    assert.match(get.json().historyUrl, /\/workflows\/claim-req-/);
  });

  test('50 claims at once with 10 in stock → 10 pool, 40 created, 50 distinct tenant volumes, nothing left reserved', async () => {
    // Refills would add stock mid-test: pause the fill schedule.
    await quietFills(true);
    try {
      await wipePool(db);
      await fillNow();
      assert.equal((await rows()).filter((r) => r.os === 'Debian8 64bit').length, 10);
      const stockIds = (await rows()).map((r) => r.volumeId as string);
      const projects = [TENANT_PROJECTS.alpha, TENANT_PROJECTS.beta];
      const reqs = Array.from({ length: 50 }, (_, i) => sysDisk({ projectId: projects[i % 2] }));
      // (Answered within the API's wait as a rule; a caller polls a 202, and so does this test.)
      const replies = await Promise.all(reqs.map((r) => claimToEnd(r)));
      for (const r of replies) assert.equal(r.status, 'completed');
      const outcomes = replies.map((r) => r.json().outcome as string);
      const hits = outcomes.filter((o) => o === 'pool').length;
      const ids = replies.map((r) => r.json().volumeId as string);
      const left = (await rows()).filter(
        (r) => r.status === 'available' && r.os === 'Debian8 64bit',
      ).length;
      if (NO_CACHE) {
        // Without a cache a worker evicts a claim with its hand-off (a local activity) still in
        // flight: the SDK cancels it (the claim gives its row back and creates), or the task
        // times out while the hand-off goes on and delivers; the next attempt finds no row of its
        // own and answers the delivered volume by its name (`existing`). Every stock volume is
        // still either handed out once or back in stock.
        const handedOut = ids.filter((id) => stockIds.includes(id)).length;
        const found = replies.filter((r) => r.json().outcome === 'existing');
        for (const r of found)
          assert.ok(
            stockIds.includes(r.json().volumeId),
            `existing ${r.json().volumeId} not stock`,
          );
        assert.equal(hits + found.length + outcomes.filter((o) => o === 'created').length, 50);
        assert.equal(handedOut + left, 10, `${handedOut} handed out, ${left} back in stock`);
        assert.ok(hits >= 5, `${hits} pool hits`);
      } else {
        assert.equal(hits + outcomes.filter((o) => o === 'created').length, 50);
        assert.equal(hits, 10);
        assert.equal(left, 0);
      }
      assert.equal(new Set(ids).size, 50);
      const everyone = await admin.listVolumes({ allTenants: true });
      for (let i = 0; i < 50; i++) {
        const v = everyone.find((x) => x.id === ids[i]);
        assert.equal(v?.projectId, reqs[i]?.projectId, `claim ${i} volume in the wrong project`);
        assert.equal(v?.name, reqs[i]?.name);
      }
      assert.deepEqual(
        (await rows()).filter((r) => r.status === 'reserved'),
        [],
      );
    } finally {
      await client.schedule.getHandle(scheduleIds(config.temporal.schedulePrefix).fill).unpause();
    }
  });

  test(
    'a burst of pool hits is refilled back to target by at most two fill runs',
    {
      // A timing bound: without a cache, concurrent claims' first workflow tasks time out and run
      // again (an SDK limit with local activities), so their refill requests spread out.
      skip: NO_CACHE && 'workers without a workflow cache spread the refill requests out',
    },
    async () => {
      await quietFills();
      await wipePool(db);
      await fillNow();
      const since = new Date();
      const replies = await Promise.all(Array.from({ length: 8 }, () => claim(sysDisk())));
      for (const r of replies) assert.equal(r.statusCode, 201, r.body);
      assert.ok(replies.every((r) => r.json().outcome === 'pool'));
      await waitFor(
        'the pool back at target',
        async () =>
          (await rows()).filter((r) => r.status === 'available' && r.os === 'Debian8 64bit').length,
        (n) => n === 10,
        60_000,
        500,
      );
      const q = `WorkflowType = 'fillPoolWorkflow' AND TaskQueue = '${config.temporal.taskQueue}' AND StartTime > '${since.toISOString()}'`;
      // Visibility is eventually consistent: the refill's run may be listed a moment late.
      const count = async () => {
        let n = 0;
        for await (const _ of client.workflow.list({ query: q })) n++;
        return n;
      };
      await waitFor('the refill listed', count, (n) => n >= 1, 10_000, 250);
      const runs = await count();
      assert.ok(runs >= 1 && runs <= 2, `${runs} fill runs for one burst`);
    },
  );

  test('claims are searchable in Temporal by outcome, project, OS and type', async () => {
    const q = `WorkflowType = 'claimVolumeWorkflow' AND TaskQueue = '${config.temporal.taskQueue}'`;
    const count = async (extra: string) => {
      let n = 0;
      for await (const _ of client.workflow.list({ query: `${q} AND ${extra}` })) n++;
      return n;
    };
    await waitFor(
      'visibility',
      () => count(`PoolOutcome = 'pool'`),
      (n) => n >= 10,
      20_000,
      500,
    );
    assert.ok(
      (await count(`PoolOutcome = 'created' AND PoolProject = '${TENANT_PROJECTS.beta}'`)) >= 1,
    );
    assert.ok(
      (await count(
        `PoolOs = 'Debian8 64bit' AND PoolVolumeType = 'sas' AND PoolKind = 'system'`,
      )) >= 50,
    );
    assert.equal(await count(`PoolOs = 'Windows2016 64bit'`), 0);
  });

  test('plain creation that ends in error: the broken volume is deleted and the claim fails clearly', async () => {
    // An empty pool that stays empty: an earlier test's refill must not stock it meanwhile.
    await quietFills(true);
    await wipePool(db);
    setCreateDelay(4);
    try {
      const req = sysDisk();
      const pending = claim(req);
      const v = await waitFor(
        'volume requested',
        () => tenant('alpha').listVolumes({ name: req.name }),
        (l) => l.length === 1,
        20_000,
        200,
      );
      await admin.resetVolumeStatus(v[0]!.id, 'error');
      const res = await pending;
      assert.equal(res.statusCode, 422, res.body);
      assert.match(res.json().error, /went to error/);
      await waitFor(
        'broken volume deleted',
        () => tenant('alpha').findVolume(v[0]!.id),
        (x) => x === null || x.status === 'deleting',
      );
    } finally {
      setCreateDelay(0);
      await client.schedule.getHandle(scheduleIds(config.temporal.schedulePrefix).fill).unpause();
    }
  });

  test('a larger size than the pool volume: extended after accept', async () => {
    await fillNow();
    const res = await claim(sysDisk({ sizeGb: 3 }));
    assert.equal(res.json().outcome, 'pool', res.body);
    assert.equal((await tenant('alpha').getVolume(res.json().volumeId)).size, 3);
  });

  test('a data disk takes the plain path: a blank volume of the requested size', async () => {
    const res = await claim({
      requestId: unique('data'),
      projectId: alpha,
      name: unique('vm-data'),
      volumeType: 'ssd',
      sizeGb: 2,
      systemDisk: false,
    });
    assert.equal(res.statusCode, 201, res.body);
    const v = await tenant('alpha').getVolume(res.json().volumeId);
    assert.equal(res.json().outcome, 'created');
    assert.equal(v.size, 2);
    assert.equal(v.snapshotId, null);
  });

  test('accept refused (tenant over quota): the volume is back in the pool, the claim fails clearly', async () => {
    // The refill an earlier pool hit asked for would create pool volumes while this test looks
    // at them (the request fires 1.5 s after the last claim): the schedule stays paused here.
    await quietFills(true);
    try {
      await acceptRefusedReturnsTheVolume();
    } finally {
      await client.schedule.getHandle(scheduleIds(config.temporal.schedulePrefix).fill).unpause();
    }
  });

  async function acceptRefusedReturnsTheVolume(): Promise<void> {
    await fillNow();
    const full = randomProjectId();
    await admin.updateQuota(full, { volumes: 0 });
    const stockBefore = (await rows())
      .filter((r) => r.status === 'available')
      .map((r) => r.volumeId)
      .sort();
    const res = await claim(sysDisk({ projectId: full }));
    assert.equal(res.statusCode, 422, res.body);
    assert.match(res.json().error, /quota/i);
    const after = await rows();
    assert.deepEqual(
      after
        .filter((r) => r.status === 'available')
        .map((r) => r.volumeId)
        .sort(),
      stockBefore,
    );
    assert.equal(after.filter((r) => r.status === 'reserved').length, 0);
    for (const v of await taggedVolumes())
      assert.equal(v.status, 'available', `${v.id} left ${v.status}`);
    assert.deepEqual(
      await admin
        .listTransfers({ allTenants: true })
        .then((t) => t.filter((x) => stockBefore.includes(x.volumeId))),
      [],
    );
  }

  test('bad requests get a clear 4xx and start nothing', async () => {
    const cases: [Record<string, unknown>, number, RegExp][] = [
      [{ projectId: alpha, name: 'x', os: 'Debian8 64bit', volumeType: 'sas' }, 400, /requestId/],
      [sysDisk({ projectId: 'tenant-a' }), 400, /projectId/],
      [sysDisk({ os: 'Plan9' }), 400, /unknown os "Plan9"; known: Debian8 64bit, Centos7.3 64bit/],
      [sysDisk({ volumeType: 'nvme' }), 400, /unknown volumeType "nvme"/],
      [sysDisk({ os: undefined }), 400, /os is required/],
      [sysDisk({ sizeGb: 0 }), 400, /sizeGb/],
      [sysDisk({ extra: 1 }), 400, /additional properties/],
      [{ ...sysDisk(), systemDisk: false }, 400, /sizeGb is required for a data disk/],
      [sysDisk({ requestId: 'bad id!' }), 400, /requestId/],
    ];
    for (const [body, status, pattern] of cases) {
      const res = await claim(body);
      assert.equal(res.statusCode, status, `${JSON.stringify(body)} → ${res.body}`);
      assert.match(res.json().error, pattern);
      if (typeof body.requestId === 'string' && /^[A-Za-z0-9]/.test(body.requestId)) {
        await assert.rejects(
          client.workflow.getHandle(claimWorkflowId(body.requestId)).describe(),
          /not found/i,
        );
      }
    }
    const noKey = await app.inject({ method: 'POST', url: '/v1/claims', payload: sysDisk() });
    assert.equal(noKey.statusCode, 401);
    const unknown = await app.inject({ url: '/v1/claims/never-made', headers: auth });
    assert.equal(unknown.statusCode, 404);
    assert.match(unknown.json().error, /unknown claim never-made/);
    const notJson = await app.inject({
      method: 'POST',
      url: '/v1/claims',
      headers: { ...auth, 'content-type': 'application/json' },
      payload: '{nope',
    });
    assert.equal(notJson.statusCode, 400);
  });

  test('Temporal unreachable → 503 within seconds, not a hang', async () => {
    const dead = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
    const deadApp = buildApi({ config, db, temporal: dead });
    const t0 = Date.now();
    const res = await deadApp.inject({
      method: 'POST',
      url: '/v1/claims',
      headers: auth,
      payload: sysDisk(),
    });
    assert.equal(res.statusCode, 503, res.body);
    assert.match(res.json().error, /Temporal/);
    assert.ok(Date.now() - t0 < 15_000);
    const ready = await deadApp.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    await deadApp.close();
  });

  test("/metrics counts this API's claims by outcome", async () => {
    const body = (await app.inject({ url: '/metrics' })).body;
    const count = (outcome: string, status: string) =>
      Number(
        new RegExp(
          `warmpool_claims_total\\{outcome="${outcome}",status="${status}"\\} (\\d+)`,
        ).exec(body)?.[1] ?? 0,
      );
    // The 50-claim burst's: each answered 201 (pool or created), or 202 when slower (no cache).
    assert.ok(count('pool', '201') >= 5, body);
    assert.ok(count('pool', '201') + count('created', '201') + count('running', '202') >= 50);
    assert.ok(count('failed', '422') >= 1);
    assert.match(body, /warmpool_claim_seconds_bucket\{le="1",outcome="pool"\}/);
  });

  test('no transfer auth key or token appears in any claim history', async () => {
    assert.ok(authKeys.length >= 10, `only ${authKeys.length} transfers were made`);
    let histories = 0;
    const tokens = Object.values(TENANT_PROJECTS).map((p) => `:${p}"`);
    for await (const wf of client.workflow.list({
      query: `WorkflowType = 'claimVolumeWorkflow' AND TaskQueue = '${config.temporal.taskQueue}'`,
    })) {
      const history = JSON.stringify(
        await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory(),
      );
      const text = history + Buffer.from(history).toString('base64');
      for (const k of authKeys) assert.ok(!history.includes(k), `auth key in ${wf.workflowId}`);
      // Payloads are base64 JSON: decode them all and look again.
      const decoded = [...history.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g)].map((m) =>
        Buffer.from(m[1] as string, 'base64').toString(),
      );
      for (const d of decoded) {
        for (const k of authKeys)
          assert.ok(!d.includes(k), `auth key in a payload of ${wf.workflowId}`);
        assert.doesNotMatch(d, /auth_?key|X-Auth-Token/i);
        for (const t of tokens)
          assert.ok(
            !d.includes(`admin${t}`) && !d.includes(`warm-pool-claim${t}`),
            'a noauth token in history',
          );
      }
      assert.ok(text.length > 0);
      histories++;
    }
    assert.ok(histories >= 50, `${histories} claim histories checked`);
  });
});
