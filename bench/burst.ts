/**
 * `npm run bench:burst`: a burst of N concurrent claims through the API (default 60: 3 tenants ×
 * 2 OS, stock for two thirds of them) against its bare peer: N concurrent sequences of the seed's
 * own calls without orchestration, each looking its name up first as a claim must (a pool hit's
 * lookup + transfer + accept + rename, a plain creation's lookup + create + polling), and
 * against Temporal's floor (N claim-shaped workflows with no work). Claims, bare and floor run in
 * alternating rounds (BENCH_ROUNDS, 3 by default); the summary gives each ratio's median over the
 * rounds and its spread. Around each burst the CPU time of Temporal, PostgreSQL, the workers and
 * the API (the bench process) is read from /proc: orchestration CPU per claim against per floor
 * workflow, claims per second per orchestration core, and the cloud's CPU beside it. Every
 * claim is checked from Cinder itself. Then the same with two worker processes on the task
 * queue (BENCH_WORKERS=1,2). Needs the stack (`npm run stack:up`).
 *
 * BENCH_CPUS=split puts the cloud (Cinder, Keystone, Nova, MariaDB, RabbitMQ) on its own CPU and
 * the orchestration on the other, as in a real cloud (bench/support/stack-cpus.ts); the default
 * `shared` leaves both on both cores, competing.
 *
 * At scale: `BENCH_BURST=1000 BENCH_STOCK=700 BENCH_WORKERS=2 npm run bench:burst` (one round by
 * default above 200 claims) also prints where the claims' first workflow task waited (the
 * server, the queue, the worker), the task queue's backlog and the workers' free slots during
 * the burst, and PostgreSQL's peak connections against its limit. BENCH_RESTART=1 kills one
 * worker (SIGKILL) once half the claims are answered and starts another; BENCH_PEERS=0 skips the
 * bare and floor peers. A claim the API answers 202 is polled (GET) until it ends, and a 429 is
 * retried after its Retry-After, as a caller would.
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
import { setCreateDelay, taggedVolumes, wipePool } from '../test/support/pool';
import { sleep, waitFor } from '../test/support/env';
import type { Client } from '@temporalio/client';
import { startFloor } from './floor';
import {
  connectionWatch,
  describe,
  eachLimited,
  firstTaskWait,
  quantile,
  queueWatch,
  startWorkers,
} from './burst/watch';
import { runPlaced, stackProcesses, type StackProcess } from './support/stack-cpus';
import {
  cpuBetween,
  perUnit,
  readCpu,
  sumOf,
  type CpuGroups,
  type CpuReading,
} from './support/cpu-time';
import { alternate, roundCount, showSpread, spread } from './support/rounds';

const N = Number(process.env.BENCH_BURST ?? 60);
/** Kill one worker once half the claims are answered, and start another. */
const RESTART = process.env.BENCH_RESTART === '1';
/** Measure the bare and floor peers (off for scale runs: their figure is the 60-claim one). */
const PEERS = process.env.BENCH_PEERS !== '0';
/** Pool volumes stocked before each claims round (default: two thirds of the claims). */
const STOCK = Number(process.env.BENCH_STOCK ?? Math.floor((N * 2) / 3));
/** Alternating rounds (BENCH_ROUNDS): 3 by default, 1 for bursts above 200 claims. */
const ROUNDS = roundCount(process.env, N > 200 ? 1 : 3);
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
  const perOs = Math.floor(STOCK / OS.length);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES: TYPE,
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE: OS.join(', '),
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS: '',
    POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: String(perOs),
    POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: ZONE,
    // The stock each round is exactly STOCK: the previous round's claims raise no target.
    POOL__VOLUMES_BACKUP__DEMAND_TARGETS: 'false',
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
 * any Cinder or database work, and the orchestration CPU it takes (the floor's worker runs in
 * the bench process).
 */
async function floorBurst(client: Client, config: AppConfig, tag: string): Promise<PeerRound> {
  const floor = await startFloor(client, config.temporal.address, tag);
  const groups = cpuGroups(() => []);
  try {
    await floor.once('warm-up');
    const before = readCpu(groups);
    const started = performance.now();
    const ms = await Promise.all(Array.from({ length: N }, (_, i) => floor.once(String(i))));
    const wall = performance.now() - started;
    const cpu = cpuBetween(before, readCpu(groups));
    console.log(
      `floor: ${N} claim-shaped workflows with no work at once in ${(wall / 1000).toFixed(2)} s, ` +
        `${describe(ms)}; orchestration CPU ${perUnit(cpu, N, ORCHESTRATION)} each`,
    );
    return { wall, ms, cpu };
  } finally {
    await floor.stop();
  }
}

/** What one claims round measured. */
interface ClaimRound {
  wall: number;
  ms: number[];
  hits: number;
  cpu: CpuReading;
  wait: string;
}

/** What one peer round (bare sequences, or floor workflows) measured. */
interface PeerRound {
  wall: number;
  ms: number[];
  cpu: CpuReading;
}

/** The processes whose CPU a claim costs; the cloud's for comparison. */
function cpuGroups(workerPids: () => number[]): CpuGroups {
  // One listing per reading (the groups are read one after another within milliseconds).
  let listed: { at: number; procs: StackProcess[] } = { at: 0, procs: [] };
  const stack = (pred: (p: StackProcess) => boolean) => () => {
    if (Date.now() - listed.at > 1000) listed = { at: Date.now(), procs: stackProcesses() };
    return listed.procs.filter(pred).map((p) => p.pid);
  };
  return {
    temporal: stack((p) => p.name === 'temporal'),
    postgresql: stack((p) => p.name === 'postgresql'),
    workers: workerPids,
    // The bench process: the API (in-process) and its callers; the floor's worker in the floor.
    'api+bench': 'self',
    cloud: stack((p) => p.role === 'cloud'),
  };
}
const ORCHESTRATION = ['temporal', 'postgresql', 'workers', 'api+bench'];

/** Fill workflows still running on the bench's task queue (a burst's refill): ended. */
async function endFills(client: Client, config: AppConfig): Promise<void> {
  const query = `TaskQueue = '${config.temporal.taskQueue}' AND ExecutionStatus = 'Running' AND WorkflowType = 'fillPoolWorkflow'`;
  for await (const wf of client.workflow.list({ query }))
    await client.workflow
      .getHandle(wf.workflowId, wf.runId)
      .terminate('bench: next round')
      .catch(() => undefined);
}

async function run(workers: number): Promise<void> {
  const tag = `burst${process.pid}w${workers}`;
  const { config, env } = benchConfig(tag, REFILL_INTERVAL);
  const db = createDb(config.databaseUrl, 10);
  // The bare peer: every sequence at once, with as many Cinder calls in flight as the claims
  // get (each worker process's max_concurrent_calls): unbounded, a burst of 1,000 resets
  // cinder-api's connections.
  const bareCalls = Number(
    process.env.BENCH_BARE_CALLS ?? workers * config.auth.maxConcurrentCalls,
  );
  const cinder = cinderFromConfig(config, { maxConcurrentCalls: bareCalls, timeoutMs: 120_000 });
  const client = await connectClient(config);
  await wipePool(db);
  // Room for this burst beside what the tenants hold already (other runs' volumes), and for
  // the stock in the pool's own project.
  for (const id of TENANTS) {
    const used = (await cinder.getQuotaUsage(id)).volumes?.inUse ?? 0;
    const volumes = Math.max(TENANT_QUOTA.volumes, used + N);
    await cinder.updateQuota(id, {
      ...TENANT_QUOTA,
      volumes,
      gigabytes: Math.max(TENANT_QUOTA.gigabytes, 10 * volumes),
    });
  }
  const own = await cinder.projectId();
  const ownUsed = (await cinder.getQuotaUsage(own)).volumes?.inUse ?? 0;
  await cinder.updateQuota(own, {
    volumes: ownUsed + 2 * N + 100,
    gigabytes: 10 * (ownUsed + 2 * N + 100),
  });
  await ensureSchedules(client, config);
  const hitsPlanned = Math.floor(STOCK / OS.length) * OS.length;
  console.log(
    `\n== ${workers} worker process(es), ${N} claims (stock for ${hitsPlanned}), refill interval ` +
      `${REFILL_INTERVAL} s, zones served: ${config.pool.zones.join(', ') || 'none'} (claims in ` +
      `${zoneLabel(config.pool.defaultZone)}); ${ROUNDS} alternating round(s)` +
      (PEERS
        ? ` of claims, bare sequences with lookup (${bareCalls} Cinder calls in flight), floor workflows`
        : ' of claims only'),
  );
  try {
    const steps: Record<string, (round: number) => Promise<ClaimRound | PeerRound>> = {
      claims: (r) => claimRound(client, config, env, db, cinder, `${tag}r${r}`, workers),
    };
    if (PEERS) {
      steps.bare = () => bareBurst(config, cinder, hitsPlanned, N - hitsPlanned, true);
      steps.floor = (r) => floorBurst(client, config, `${tag}r${r}`);
    }
    const out = await alternate(ROUNDS, steps);
    summarize(out as { claims: ClaimRound[]; bare?: PeerRound[]; floor?: PeerRound[] }, workers);
  } finally {
    for (const id of Object.values(scheduleIds(config.temporal.schedulePrefix)))
      await client.schedule
        .getHandle(id)
        .delete()
        .catch(() => undefined);
    await endFills(client, config);
    await wipePool(db);
    await client.connection.close();
    await db.end();
  }
}

/** Median and spread over the rounds of each figure, and the targets. */
function summarize(
  out: { claims: ClaimRound[]; bare?: PeerRound[]; floor?: PeerRound[] },
  workers: number,
): void {
  const { claims, bare, floor } = out;
  const orch = (c: CpuReading) => sumOf(c, ORCHESTRATION);
  const cpuPerClaim = spread(claims.map((c) => (orch(c.cpu) * 1000) / N));
  const cloudPerClaim = spread(claims.map((c) => ((c.cpu.cloud ?? 0) * 1000) / N));
  console.log(
    `\n== summary, ${workers} worker process(es), ${N} claims, medians of ${claims.length} round(s)`,
  );
  console.log(`claims/s: ${showSpread(spread(claims.map((c) => (N * 1000) / c.wall)), 1)}`);
  console.log(
    `claim p50 ${showSpread(spread(claims.map((c) => quantile(c.ms, 0.5))), 0, ' ms')}, ` +
      `p99 ${showSpread(spread(claims.map((c) => quantile(c.ms, 0.99))), 0, ' ms')}`,
  );
  console.log(
    `orchestration CPU per claim (Temporal + PostgreSQL + workers + API): ${showSpread(cpuPerClaim, 1, ' ms')}; ` +
      `claims/s per orchestration core: ${showSpread(spread(claims.map((c) => N / Math.max(1e-9, orch(c.cpu)))), 1)}`,
  );
  console.log(
    `cloud CPU per claim (Cinder, MariaDB, RabbitMQ, …): ${showSpread(cloudPerClaim, 1, ' ms')}`,
  );
  if (!bare || !floor) return;
  const pairs = claims.map((c, i) => ({ c, b: bare[i] as PeerRound, f: floor[i] as PeerRound }));
  const thr = spread(pairs.map(({ c, b }) => b.wall / c.wall));
  const thrFloor = spread(pairs.map(({ c, b, f }) => (b.wall + f.wall) / c.wall));
  const p99 = spread(pairs.map(({ c, b }) => quantile(c.ms, 0.99) / quantile(b.ms, 0.99)));
  const floorCpu = spread(floor.map((f) => (orch(f.cpu) * 1000) / N));
  const cpuRatio = spread(pairs.map(({ c, f }) => orch(c.cpu) / Math.max(1e-9, orch(f.cpu))));
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log(
    `bare sequences with lookup: ${showSpread(spread(bare.map((b) => (N * 1000) / b.wall)), 1)} per s`,
  );
  console.log(
    `claims vs bare + lookup: throughput ${showSpread(thr)} (target ≥ 0.95: ${met(thr.median >= 0.95)}), ` +
      `p99 ratio ${showSpread(p99)} (target ≤ 1.2: ${met(p99.median <= 1.2)})`,
  );
  console.log(`claims vs bare + lookup + floor: throughput ${showSpread(thrFloor)}`);
  console.log(
    `floor workflow: orchestration CPU ${showSpread(floorCpu, 1, ' ms')} each; a claim's / the floor's: ` +
      `${showSpread(cpuRatio)} (target ≤ 2: ${met(cpuRatio.median <= 2)})`,
  );
  console.log(
    `cloud CPU per bare sequence: ${showSpread(spread(bare.map((b) => ((b.cpu.cloud ?? 0) * 1000) / N)), 1, ' ms')}`,
  );
}

/**
 * One claims round: stock the pool (not timed), start the workers and the API, send every
 * claim at once, then check every claim from Cinder and clean up.
 */
async function claimRound(
  client: Client,
  config: AppConfig,
  env: NodeJS.ProcessEnv,
  db: Db,
  cinder: CinderClient,
  tag: string,
  workers: number,
): Promise<ClaimRound> {
  await endFills(client, config);
  await wipePool(db);
  const t0 = Date.now();
  const stocker = await startWorkers(
    client,
    config,
    benchConfig(config.temporal.schedulePrefix, '0').env,
    1,
  );
  const fill = await client.workflow
    .execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `${tag}-stock`,
      args: [{}],
    })
    .finally(() => stocker.stop());
  const fleet = await startWorkers(client, config, env, workers, true);
  const api = buildApi({ config, db, temporal: client });
  const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };
  const groups = cpuGroups(() => fleet.pids());
  try {
    console.log(
      `claims: ${fill.available} pool volumes stocked in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
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
    const queue = queueWatch(client, config, fleet.metricsUrls(), () => fleet.pids());
    unavailableAnswers = 0;
    rateLimitedAnswers = 0;
    const cpuBefore = readCpu(groups);
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
    const cpu = cpuBetween(cpuBefore, readCpu(groups));
    await restarted;
    const { peak, limit } = await connections.stop();
    const seen = await queue.stop();
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
    const claimMs = claimed.map((c) => c.ms);
    console.log(
      `claims: ${N} in ${(claimWall / 1000).toFixed(2)} s = ${((N * 1000) / claimWall).toFixed(1)}/s ` +
        `(${hits} pool, ${claimed.length - hits} created), ${describe(claimMs)}; ` +
        `orchestration CPU ${perUnit(cpu, N, ORCHESTRATION)} per claim; cloud ${(((cpu.cloud ?? 0) * 1000) / N).toFixed(1)} ms`,
    );
    const wait = await firstTaskWait(
      client,
      claimed.map((c) => c.requestId),
    );
    console.log(`  first workflow task: ${wait}`);
    console.log(`  task queue during the burst: ${seen}`);
    const stuck = await stillRunning(client, config);
    console.log(
      `  answered ${answers.length} of ${N} (${refused.length} refused with a reason, ` +
        `${failed.length} without an answer; ${unavailableAnswers} 503s and ${rateLimitedAnswers} 429s retried), ` +
        `${stuck} claim workflow(s) still running 60 s after the last answer (stuck); ` +
        `PostgreSQL connections: peak ${peak} of max_connections ${limit}`,
    );
    assert.equal(failed.length, 0, 'every claim answered');
    assert.equal(refused.length, 0, 'no claim refused (the tenants have room)');
    assert.equal(stuck, 0, 'no claim stuck');
    assert.ok(peak < limit, 'under the connection limit');
    await checkInvariants(config, cinder, db, claimed);
    const runs = await refillRuns(client, config, burstAt);
    console.log(
      `  invariants hold: right project, name, zone and image; none twice; none awaiting-transfer; ` +
        `rows = tagged volumes; fill runs started by the refill requests: ${runs}`,
    );
    await eachLimited(claimed, 16, (c) =>
      cinder
        .asProject(c.projectId, TENANT_USER)
        .deleteVolume(c.volumeId)
        .catch(() => undefined),
    );
    return { wall: claimWall, ms: claimMs, hits, cpu, wait };
  } finally {
    await api.close();
    await fleet.stop();
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
  // The transfers' volumes, made beforehand as the pool's are (not timed).
  const vols: { id: string }[] = [];
  await eachLimited(
    Array.from({ length: hits }, (_, i) => i),
    8,
    async (i) => {
      const v = await cinder.createVolume({
        name: `bare-${i}`,
        size: 1,
        snapshotId,
        volumeType: TYPE,
        availabilityZone,
      });
      while ((await cinder.getVolume(v.id)).status !== 'available') await sleep(100);
      vols[i] = v;
    },
  );
  const made: { client: CinderClient; id: string }[] = [];
  const groups = cpuGroups(() => []);
  const before = readCpu(groups);
  const started = performance.now();
  const timed = async (fn: () => Promise<void>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  // Every sequence ends (settled) before the volumes go, even when one failed.
  const settled = await Promise.allSettled([
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
  const cpu = cpuBetween(before, readCpu(groups));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // Made, or made and not yet transferred: none is left behind.
    await eachLimited(made, 16, (m) => m.client.deleteVolume(m.id).catch(() => undefined));
    await eachLimited(vols, 16, async (v) => {
      for (const t of await cinder.listTransfers({ volumeId: v.id }).catch(() => []))
        await cinder.deleteTransfer(t.id).catch(() => undefined);
      await cinder.deleteVolume(v.id).catch(() => undefined);
    });
    throw failed.reason;
  }
  const ms = settled.map((r) => (r as PromiseFulfilledResult<number>).value);
  console.log(
    `bare + lookup: ${N} sequences at once in ${(wall / 1000).toFixed(2)} s, ${describe(ms)} ` +
      `(transfer+accept+rename ${describe(ms.slice(0, hits))}; create+poll ${describe(ms.slice(hits))}); ` +
      `cloud CPU ${(((cpu.cloud ?? 0) * 1000) / N).toFixed(1)} ms each`,
  );
  await eachLimited(made, 16, (m) => m.client.deleteVolume(m.id).catch(() => undefined));
  return { wall, ms, cpu };
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
  await runPlaced(async () => {
    for (const workers of (process.env.BENCH_WORKERS ?? '1,2').split(',').map(Number))
      await run(workers);
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
