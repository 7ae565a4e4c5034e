/**
 * `npm run bench:burst`: a burst of N concurrent claims through the API (default 60: 3 tenants ×
 * 2 OS, stock for two thirds of them) against N concurrent bare Cinder sequences of the same mix
 * on the same Cinder, in one run: a pool hit's transfer + accept + rename, a plain creation's
 * create + polling until available. Prints throughput and p99 ratios, how many fill runs the
 * burst started, and checks from Cinder itself that every claim got the right volume. Then the
 * same with two worker processes on the task queue. Needs the stack (`npm run stack:up`).
 *
 * At scale: `BENCH_BURST=1000 BENCH_WORKERS=2 BENCH_RESTART=1 BENCH_PEERS=0 npm run bench:burst`
 * kills one worker (SIGKILL) once half the claims are answered and starts another; a claim the
 * API answers 202 is polled (GET) until it ends, as a caller would. Prints every claim answered
 * or not, claims left running (stuck), and the peak of PostgreSQL connections against its limit.
 *
 * Zones: the pool serves one, the stack configuration's default zone (az-1 of config/pool.ini),
 * where every claim goes (none names a zone); the bare sequences create there too, from that
 * zone's snapshot. The stack's Cinder holds each OS image in every zone under one name, so the
 * check of each claimed volume's snapshot and zone tells the zones apart.
 */
import assert from 'node:assert/strict';
import { loadConfig, type AppConfig } from '../lib/config/load';
import { cinderFromConfig, type CinderClient, type Snapshot } from '../lib/cinder';
import { currentOsSnapshot } from '../activities/fill/images';
import { createDb, type Db } from '../lib/pool-state/db';
import { PoolRepository } from '../lib/pool-state/repository';
import { connectClient } from '../lib/temporal/connect';
import { ensureSchedules } from '../lib/temporal/schedules';
import { scheduleIds } from '../contracts/fill';
import type { InjectOptions } from 'fastify';
import { buildApi } from '../api/server';
import { fillPoolWorkflow } from '../workflows';
import { TENANT_PROJECTS, TENANT_QUOTA, TENANT_USER } from '../scripts/stack/cloud';
import { exited, setCreateDelay, spawnWorker, taggedVolumes, wipePool } from '../test/support/pool';
import { sleep, waitFor } from '../test/support/env';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { startFloor } from './floor';

const N = Number(process.env.BENCH_BURST ?? 60);
/** Kill one worker once half the claims are answered, and start another. */
const RESTART = process.env.BENCH_RESTART === '1';
/** Measure the bare and floor peers (off for scale runs: their figure is the 60-claim one). */
const PEERS = process.env.BENCH_PEERS !== '0';
const OS = ['Debian8 64bit', 'Debian9 64bit'];
const TENANTS = Object.values(TENANT_PROJECTS);
const TYPE = 'sas';
const POLL_SECONDS = 0.5;
/**
 * The fill's create interval during the burst (the seed's default is 40 s). The stock is made
 * beforehand without one; during the burst the refill runs at the pace an operator sets.
 */
const REFILL_INTERVAL = process.env.BENCH_REFILL_INTERVAL ?? '2';
/**
 * The one zone the pool serves during the burst: the stack configuration's default zone ('' when
 * it names no zones: Cinder's default). Another zone's stock would be made and never claimed.
 */
const ZONE = loadConfig().pool.defaultZone;
const zoneLabel = (zone: string) => zone || "Cinder's default (the pool names no zones)";

const quantile = (ms: number[], p: number) => {
  const s = [...ms].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] as number;
};
const describe = (ms: number[]) =>
  `p50 ${quantile(ms, 0.5).toFixed(0)} ms, p99 ${quantile(ms, 0.99).toFixed(0)} ms`;

interface Claimed {
  requestId: string;
  projectId: string;
  name: string;
  os: string;
  /** The claim's zone: the pool's default one (the claim names none). */
  zone: string;
  volumeId: string;
  outcome: string;
  ms: number;
}

const imageKey = (os: string, zone: string) => `${os}\u0000${zone}`;

/**
 * Each OS's current OS-image snapshot of `type` in the claims' zone (the default one), told from
 * Cinder as the fill tells it (activities/fill/images.ts). Keyed by imageKey(os, zone).
 */
async function currentImages(
  config: AppConfig,
  cinder: CinderClient,
  oses: string[],
  type: string,
): Promise<Map<string, Snapshot>> {
  const zone = config.pool.defaultZone;
  const found = new Map<string, Snapshot>();
  for (const os of oses) {
    const snap = await currentOsSnapshot(cinder, config.pool.snapshotNameRule, os, type, zone);
    if (snap) found.set(imageKey(os, zone), snap);
  }
  return found;
}

/** The current snapshot of (os, zone), or an error naming what is missing. */
function imageOf(images: Map<string, Snapshot>, os: string, zone: string): Snapshot {
  const snap = images.get(imageKey(os, zone));
  if (!snap) throw new Error(`no snapshot for ${TYPE}/${os} in zone ${zoneLabel(zone)}`);
  return snap;
}

function benchConfig(
  tag: string,
  intervalSeconds: string,
): { config: AppConfig; env: NodeJS.ProcessEnv } {
  const perOs = Math.floor((N * 2) / 3 / OS.length);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES: TYPE,
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE: OS.join(', '),
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS: '',
    POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: String(perOs),
    POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: ZONE,
    POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: intervalSeconds,
    POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: String(POLL_SECONDS),
    // The schedules exist (a claim's refill goes through them) but do not tick during the bench.
    POOL__VOLUMES_BACKUP__BACKUP_FREQUENCY_MINUTE: '600',
    POOL__VOLUMES_BACKUP__CHECK_STATE_FREQUENCY_MINUTE: '600',
    POOL__VOLUMES__CONCURRENCY: '4',
    POOL__TEMPORAL__TASK_QUEUE: `${tag}-tq`,
    POOL__TEMPORAL__SCHEDULE_PREFIX: tag,
    POOL__TEMPORAL__MANAGE_SCHEDULES: 'true',
    POOL__API__CLAIM_WAIT_SECOND: '300',
    // Two worker processes on one host: neither binds the (single) metrics port.
    POOL__TEMPORAL__WORKER_METRICS_ADDRESS: '',
  };
  return { config: loadConfig({ env }), env };
}

/** Worker processes on the bench's task queue; resolves once all of them poll it. */
async function startWorkers(
  client: Client,
  config: AppConfig,
  env: NodeJS.ProcessEnv,
  count: number,
) {
  const since = Date.now();
  const children = Array.from({ length: count }, () => spawnWorker(env));
  await waitFor(
    `${count} worker(s) polling`,
    async () => {
      for (const c of children)
        if (c.exitCode !== null) throw new Error(`worker exited: ${c.output()}`);
      const res = await client.workflowService.describeTaskQueue({
        namespace: config.temporal.namespace,
        taskQueue: { name: config.temporal.taskQueue },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      });
      // Pollers seen since these processes started (the list keeps recent ones for minutes).
      const fresh = (res.pollers ?? []).filter(
        (p) => Number(p.lastAccessTime?.seconds ?? 0) * 1000 >= since - 1000,
      );
      return new Set(fresh.map((p) => p.identity)).size;
    },
    (n) => n >= count,
    90_000,
    500,
  );
  return {
    /** SIGKILL the first worker and start a new one in its place. */
    async restartOne() {
      const [victim] = children.splice(0, 1);
      if (!victim) return;
      victim.kill('SIGKILL');
      await exited(victim);
      children.push(spawnWorker(env));
    },
    async stop() {
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(children.map((c) => exited(c)));
    },
  };
}

/** Samples PostgreSQL's open connections until stopped; the peak and the server's limit. */
function connectionWatch(db: Db) {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = $1',
        ['client backend'],
      );
      peak = Math.max(peak, rows[0]?.n ?? 0);
      await sleep(200);
    }
  })();
  return {
    async stop(): Promise<{ peak: number; limit: number }> {
      running = false;
      await loop;
      const { rows } = await db.query<{ max_connections: string }>('SHOW max_connections');
      return { peak, limit: Number(rows[0]?.max_connections) };
    },
  };
}

let unavailableAnswers = 0;
let rateLimitedAnswers = 0;

/** One API call, as a well-behaved caller makes it: after a 429 again once `Retry-After` has passed. */
async function injectPolitely(api: ReturnType<typeof buildApi>, req: InjectOptions) {
  for (;;) {
    const res = await api.inject(req);
    if (res.statusCode !== 429) return res;
    rateLimitedAnswers++;
    await sleep(1000 * Math.max(1, Number(res.headers['retry-after']) || 1));
  }
}

/**
 * A caller's view: POST (again after a 503, same requestId), and while the answer is 202, GET
 * until the claim has ended.
 */
async function claimThroughApi(
  api: ReturnType<typeof buildApi>,
  headers: Record<string, string>,
  body: { requestId: string },
): Promise<{ volumeId: string; outcome: string }> {
  let res = await injectPolitely(api, {
    method: 'POST',
    url: '/v1/claims',
    headers,
    payload: body,
  });
  // 503 (Temporal did not answer in time): the same request again, as the API asks callers to.
  for (let retry = 1; res.statusCode === 503 && retry <= 10; retry++) {
    unavailableAnswers++;
    await sleep(1000 * retry);
    res = await injectPolitely(api, { method: 'POST', url: '/v1/claims', headers, payload: body });
  }
  if (res.statusCode === 201) return res.json();
  // A claim that failed with a reason (e.g. the tenant's quota) is answered too.
  if (res.statusCode === 422) return { volumeId: '', outcome: `failed: ${res.json().error}` };
  if (res.statusCode !== 202) throw new Error(`${body.requestId}: ${res.statusCode} ${res.body}`);
  for (;;) {
    await sleep(1000);
    const got = await injectPolitely(api, {
      method: 'GET',
      url: `/v1/claims/${body.requestId}`,
      headers,
    });
    const r = got.json() as {
      status?: string;
      volumeId?: string;
      outcome?: string;
      error?: string;
    };
    if (r.status === 'completed') return r as { volumeId: string; outcome: string };
    if (r.status === 'failed') return { volumeId: '', outcome: `failed: ${r.error}` };
    if (got.statusCode !== 200 || (r.status !== 'running' && r.status !== undefined))
      throw new Error(`${body.requestId}: ${got.statusCode} ${got.body}`);
  }
}

/**
 * N floor workflows (bench/floor: update-with-start, two local activities that return at once)
 * started together: what Temporal and the SDK cost a burst of that size on this machine before
 * any Cinder or database work. Their CPU is the same two cores Cinder runs on.
 */
async function floorBurst(client: Client, config: AppConfig, tag: string): Promise<number> {
  const floor = await startFloor(client, config.temporal.address, tag);
  try {
    await floor.once('warm-up');
    const started = performance.now();
    await Promise.all(Array.from({ length: N }, (_, i) => floor.once(String(i))));
    return performance.now() - started;
  } finally {
    await floor.stop();
  }
}

async function run(workers: number): Promise<void> {
  const tag = `burst${process.pid}w${workers}`;
  const { config, env } = benchConfig(tag, REFILL_INTERVAL);
  const db = createDb(config.databaseUrl, 10);
  // The bare peer: no bound on calls in flight, every sequence at once.
  const cinder = cinderFromConfig(config, { maxConcurrentCalls: Infinity, timeoutMs: 60_000 });
  const client = await connectClient(config);
  await wipePool(db);
  // Room for this burst beside what the tenants hold already (other runs' volumes).
  for (const id of TENANTS) {
    const used = (await cinder.getQuotaUsage(id)).volumes?.inUse ?? 0;
    const volumes = Math.max(TENANT_QUOTA.volumes, used + N);
    await cinder.updateQuota(id, {
      ...TENANT_QUOTA,
      volumes,
      gigabytes: Math.max(TENANT_QUOTA.gigabytes, 10 * volumes),
    });
  }
  await ensureSchedules(client, config);
  const t0 = Date.now();
  const stocker = await startWorkers(client, config, benchConfig(tag, '0').env, 1);
  const fill = await client.workflow
    .execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `${tag}-stock`,
      args: [{}],
    })
    .finally(() => stocker.stop());
  const fleet = await startWorkers(client, config, env, workers);
  const api = buildApi({ config, db, temporal: client });
  const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };
  try {
    console.log(
      `\n== ${workers} worker process(es), refill interval ${REFILL_INTERVAL} s, ` +
        `zones served: ${config.pool.zones.join(', ') || 'none'} (claims in ${zoneLabel(config.pool.defaultZone)}): ` +
        `${fill.available} pool volumes stocked in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );

    // The burst: every claim at once, through the API.
    const requests = Array.from({ length: N }, (_, i) => ({
      requestId: `${tag}-${i}`,
      projectId: TENANTS[i % TENANTS.length] as string,
      name: `${tag}-vm-${i}`,
      os: OS[Math.floor(i / TENANTS.length) % OS.length] as string,
      volumeType: TYPE,
    }));
    // No claim names a zone: each goes to the pool's default one.
    const zone = config.pool.defaultZone;
    const burstAt = new Date();
    const connections = connectionWatch(db);
    const started = performance.now();
    let answered = 0;
    let restarted: Promise<void> | null = null;
    const settled = await Promise.allSettled(
      requests.map(async (body): Promise<Claimed> => {
        const t = performance.now();
        const r = await claimThroughApi(api, headers, body);
        const ms = performance.now() - t;
        if (++answered === Math.floor(N / 2) && RESTART) {
          console.log(`${answered} claims answered: SIGKILL one worker, start another`);
          restarted = fleet.restartOne();
        }
        return { ...body, zone, volumeId: r.volumeId, outcome: r.outcome, ms };
      }),
    );
    const claimWall = performance.now() - started;
    await restarted;
    const { peak, limit } = await connections.stop();
    const failed = settled.filter((r) => r.status === 'rejected');
    for (const f of failed.slice(0, 5))
      console.log(`  not answered: ${(f as PromiseRejectedResult).reason}`);
    const answers: Claimed[] = settled
      .filter((r): r is PromiseFulfilledResult<Claimed> => r.status === 'fulfilled')
      .map((r) => r.value);
    const refused = answers.filter((c) => c.outcome.startsWith('failed'));
    for (const r of refused.slice(0, 3)) console.log(`  answered 422: ${r.requestId} ${r.outcome}`);
    const claimed = answers.filter((c) => !c.outcome.startsWith('failed'));
    const hits = claimed.filter((c) => c.outcome === 'pool').length;
    const stuck = await stillRunning(client, config);
    console.log(
      `answered ${answers.length} of ${N} claims (${claimed.length} with a volume, ${refused.length} ` +
        `refused with a reason; ${failed.length} without an answer; ${unavailableAnswers} 503s and ${rateLimitedAnswers} 429s ` +
        `retried), ` +
        `${stuck} claim workflow(s) still running 60 s after the last answer (stuck)`,
    );
    console.log(
      `PostgreSQL connections: peak ${peak} of max_connections ${limit} ` +
        `(${workers} worker process(es) + the API + the bench)`,
    );
    assert.equal(failed.length, 0, 'every claim answered');
    assert.equal(refused.length, 0, 'no claim refused (the tenants have room)');
    assert.equal(stuck, 0, 'no claim stuck');
    assert.ok(peak < limit, 'under the connection limit');

    const claimMs = claimed.map((c) => c.ms);
    console.log(
      `claims: ${N} in ${(claimWall / 1000).toFixed(2)} s = ${((N * 1000) / claimWall).toFixed(1)}/s ` +
        `(${hits} pool, ${N - hits} created), ${describe(claimMs)}`,
    );
    if (!PEERS) {
      await checkInvariants(config, cinder, db, claimed);
      console.log(
        'invariants hold: right project, name, zone and image; none twice; none awaiting-transfer; rows = tagged volumes',
      );
      return;
    }
    // The same mix as bare Cinder sequences, all at once.
    const bare = await bareBurst(config, cinder, hits, N - hits);
    // The same, each sequence also looking its name up as a claim must (idempotency).
    const looked = await bareBurst(config, cinder, hits, N - hits, true);
    // And Temporal's own share: N workflows of the claim's shape with no work, all at once.
    const floorWall = await floorBurst(client, config, tag);

    const byOutcome = (o: string) => claimed.filter((c) => c.outcome === o).map((c) => c.ms);
    console.log(
      `  pool hits ${describe(byOutcome('pool'))}; created ${describe(byOutcome('created'))}`,
    );
    console.log(
      `bare:   ${N} in ${(bare.wall / 1000).toFixed(2)} s = ${((N * 1000) / bare.wall).toFixed(1)}/s, ${describe(bare.ms)}`,
    );
    console.log(
      `  transfer+accept+rename ${describe(bare.ms.slice(0, hits))}; create+poll ${describe(bare.ms.slice(hits))}`,
    );
    console.log(
      `throughput ratio ${(bare.wall / claimWall).toFixed(2)} (target ≥ 0.8), ` +
        `p99 ratio ${(quantile(claimMs, 0.99) / quantile(bare.ms, 0.99)).toFixed(2)} (target ≤ 1.5)`,
    );

    console.log(
      `bare + name lookup: ${N} in ${(looked.wall / 1000).toFixed(2)} s, ${describe(looked.ms)}; ` +
        `claims vs it: throughput ${(looked.wall / claimWall).toFixed(2)}, ` +
        `p99 ${(quantile(claimMs, 0.99) / quantile(looked.ms, 0.99)).toFixed(2)}`,
    );
    console.log(
      `Temporal floor: ${N} claim-shaped workflows with no work at once: ` +
        `${(floorWall / 1000).toFixed(2)} s; bare + name lookup + floor: ` +
        `${((looked.wall + floorWall) / 1000).toFixed(2)} s, claims vs it: throughput ` +
        `${((looked.wall + floorWall) / claimWall).toFixed(2)}`,
    );
    await checkInvariants(config, cinder, db, claimed);
    const runs = await refillRuns(client, config, burstAt);
    console.log(`fill runs started by the burst's refill requests: ${runs} (at most 2)`);
    console.log(
      'invariants hold: right project, name, zone and image; none twice; none awaiting-transfer; rows = tagged volumes',
    );

    for (const c of claimed)
      await cinder
        .asProject(c.projectId, TENANT_USER)
        .deleteVolume(c.volumeId)
        .catch(() => undefined);
  } finally {
    await api.close();
    await fleet.stop();
    for (const id of Object.values(scheduleIds(config.temporal.schedulePrefix)))
      await client.schedule
        .getHandle(id)
        .delete()
        .catch(() => undefined);
    await client.connection.close();
    await db.end();
  }
}

/**
 * `hits` transfer + accept + rename sequences and `creates` create + poll sequences at once;
 * with `lookup`, each first looks its name up in the tenant (as every claim must).
 */
async function bareBurst(
  config: AppConfig,
  cinder: CinderClient,
  hits: number,
  creates: number,
  lookup = false,
) {
  // The claims' zone (the default one) and its current snapshot, as the pool's volumes are made.
  const zone = config.pool.defaultZone;
  const snapshotId = imageOf(
    await currentImages(config, cinder, OS, TYPE),
    OS[0] as string,
    zone,
  ).id;
  const availabilityZone = zone || undefined;
  const vols = [];
  for (let i = 0; i < hits; i++)
    vols.push(
      await cinder.createVolume({
        name: `bare-${i}`,
        size: 1,
        snapshotId,
        volumeType: TYPE,
        availabilityZone,
      }),
    );
  for (const v of vols)
    while ((await cinder.getVolume(v.id)).status !== 'available') await sleep(100);
  const made: { client: CinderClient; id: string }[] = [];
  const started = performance.now();
  const timed = async (fn: () => Promise<void>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const ms = await Promise.all([
    ...vols.map((v, i) =>
      timed(async () => {
        const tenant = cinder.asProject(TENANTS[i % TENANTS.length] as string, TENANT_USER);
        const [tr] = await Promise.all([
          cinder.createTransfer(v.id, 'bench'),
          lookup ? tenant.listVolumes({ name: `bare-renamed-${i}` }) : null,
        ]);
        await tenant.acceptTransfer(tr.id, tr.authKey);
        await tenant.updateVolume(v.id, { name: `bare-renamed-${i}`, metadata: {} });
        made.push({ client: tenant, id: v.id });
      }),
    ),
    ...Array.from({ length: creates }, (_, i) =>
      timed(async () => {
        const tenant = cinder.asProject(TENANTS[i % TENANTS.length] as string, TENANT_USER);
        if (lookup) await tenant.listVolumes({ name: `bare-new-${i}` });
        const v = await tenant.createVolume({
          name: `bare-new-${i}`,
          size: 1,
          snapshotId,
          volumeType: TYPE,
          availabilityZone,
        });
        made.push({ client: tenant, id: v.id });
        while ((await tenant.getVolume(v.id)).status !== 'available')
          await sleep(POLL_SECONDS * 1000);
      }),
    ),
  ]);
  const wall = performance.now() - started;
  for (const m of made) await m.client.deleteVolume(m.id).catch(() => undefined);
  return { wall, ms };
}

/** Read from Cinder: every claim's volume is where and what it should be; the pool agrees. */
async function checkInvariants(
  config: AppConfig,
  cinder: CinderClient,
  db: Db,
  claimed: Claimed[],
) {
  const ids = claimed.map((c) => c.volumeId);
  assert.equal(new Set(ids).size, ids.length, 'a volume was handed out twice');
  // Each claim's volume is made from its own zone's current snapshot of its OS (the other zone's
  // snapshot has the same name) and lives in that zone.
  const current = await currentImages(config, cinder, OS, TYPE);
  for (const c of claimed) {
    const v = await cinder.getVolume(c.volumeId);
    assert.equal(v.projectId, c.projectId, `${c.requestId}: in project ${v.projectId}`);
    assert.equal(v.name, c.name, `${c.requestId}: named ${v.name}`);
    const image = imageOf(current, c.os, c.zone);
    assert.equal(
      v.snapshotId,
      image.id,
      `${c.requestId}: made from ${v.snapshotId}, not ${image.name} (${image.id}) of zone ${zoneLabel(c.zone)}`,
    );
    if (c.zone)
      assert.equal(v.availabilityZone, c.zone, `${c.requestId}: in zone ${v.availabilityZone}`);
    assert.equal(v.status, 'available', `${c.requestId}: ${v.status}`);
    assert.deepEqual(Object.keys(v.metadata ?? {}), [], `${c.requestId}: still tagged`);
  }
  const waiting = await cinder.listVolumes({ allTenants: true, status: 'awaiting-transfer' });
  assert.deepEqual(
    waiting.map((v) => v.id),
    [],
    'volumes left awaiting-transfer',
  );
  // Every tagged admin volume has its row (by id, or by name while its create is in flight), and
  // every row's volume is a tagged admin volume; the refill may still be creating meanwhile.
  await waitFor(
    'pool rows = tagged volumes',
    async () => {
      const rows = await new PoolRepository(db).listAll();
      const tagged = await taggedVolumes();
      const ids = new Set(rows.map((r) => r.volumeId));
      const pending = new Set(rows.filter((r) => !r.volumeId).map((r) => r.name));
      const taggedIds = new Set(tagged.map((v) => v.id));
      const orphans = tagged.filter((v) => !ids.has(v.id) && !pending.has(v.name));
      const missing = rows.filter(
        (r) => r.volumeId && r.status !== 'deleting' && !taggedIds.has(r.volumeId),
      );
      return orphans.length + missing.length;
    },
    (n) => n === 0,
    180_000,
    1000,
  );
}

/** Claim workflows on the bench's task queue still running a minute after the burst. */
async function stillRunning(client: Client, config: AppConfig): Promise<number> {
  const query = `TaskQueue = '${config.temporal.taskQueue}' AND ExecutionStatus = 'Running' AND WorkflowType = 'claimVolumeWorkflow'`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { count } = await client.workflow.count(query);
    if (count === 0 || Date.now() > deadline) return count;
    await sleep(2000);
  }
}

/** Fill runs the schedule started since `since` (refill requests; its interval is hours). */
async function refillRuns(client: Client, config: AppConfig, since: Date): Promise<number> {
  const desc = await client.schedule
    .getHandle(scheduleIds(config.temporal.schedulePrefix).fill)
    .describe();
  return desc.info.recentActions.filter((a) => a.takenAt >= since).length;
}

async function main() {
  setCreateDelay(0);
  for (const workers of (process.env.BENCH_WORKERS ?? '1,2').split(',').map(Number))
    await run(workers);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
