/**
 * `npm run bench:claim`: claim latency through the API (median and p99) for pool hits and for
 * plain creations, and two peers in the same run: the bare Cinder calls a pool hit needs (the
 * name lookup beside the transfer's create, then accept and rename: the seed's sequence without
 * orchestration), and Temporal's floor (the claim's workflow shape with no work in it, ./floor).
 * Claims run one after another so each measures the path, not the queue, interleaved claim by
 * claim with both peers; the figures are also given per round (BENCH_ROUNDS, 3) as a median and
 * its spread. Then the orchestration CPU of a pool hit against a floor workflow's, from /proc
 * (cpuPerPoolHit). BENCH_CPUS=split runs the cloud on its own CPU (bench/support/stack-cpus.ts).
 * Needs the stack. BENCH_AUTH=keystone compares pool hits in Keystone mode with noauth ones
 * instead (keystoneVsNoauth below).
 *
 * Zones: the pool serves one, the stack configuration's default zone (az-1 of config/pool.ini),
 * where every claim goes (none names a zone); the bare volumes are made there too, from that
 * zone's newest snapshot (the stack holds each OS image in every zone under one name).
 */
import { readFileSync } from 'node:fs';
import { loadConfig, type AppConfig } from '../lib/config/load';
import { cinderFromConfig, type CinderClient, type Snapshot } from '../lib/cinder';
import { currentOsSnapshot } from '../activities/fill/images';
import { createDb } from '../lib/pool-state/db';
import { connectClient } from '../lib/temporal/connect';
import { buildApi } from '../api/server';
import { fillPoolWorkflow } from '../workflows';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import { STACK_DIR, setCreateDelay, startWorker, wipePool } from '../test/support/pool';
import { FaultProxy } from '../test/support/fault-proxy';
import { startFloor } from './floor';
import { runPlaced, stackProcesses } from './support/stack-cpus';
import { alternate, roundCount, showSpread, spread } from './support/rounds';
import { cpuBetween, readCpu, sumOf, type CpuGroups, type CpuReading } from './support/cpu-time';
import { claimWorkflowId } from '../contracts/claim';
import { tsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';
import type { Client } from '@temporalio/client';

const WFT_STARTED = temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED;
const WFT_COMPLETED = temporal.api.enums.v1.EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED;

const N = Number(process.env.BENCH_CLAIMS ?? 100);
/**
 * The one zone the pool serves: the stack configuration's default zone ('' when it names no
 * zones: Cinder's default). Another zone's stock would be made and never claimed.
 */
const ZONE = loadConfig().pool.defaultZone;
const zoneLabel = (zone: string) => zone || "Cinder's default (the pool names no zones)";

/** The current OS-image snapshot of (os, type) in `zone`, as the fill tells it. */
async function currentImage(
  config: AppConfig,
  cinder: CinderClient,
  os: string,
  type: string,
  zone: string,
): Promise<Snapshot> {
  const snap = await currentOsSnapshot(cinder, config.pool.snapshotNameRule, os, type, zone);
  if (!snap) throw new Error(`no snapshot for ${type}/${os} in zone ${zoneLabel(zone)}`);
  return snap;
}

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number;
  return `n=${s.length} median ${at(0.5).toFixed(0)} ms, p99 ${at(0.99).toFixed(0)} ms, max ${(s[s.length - 1] as number).toFixed(0)} ms`;
}

/** A workflow started through the API (or the floor's update-with-start), with wall times. */
interface Sent {
  workflowId: string;
  sentAt: number;
  answeredAt: number;
}

/**
 * Where the time outside the workflow's own work goes, from history event times (the server's
 * clock, the same host): request → started, started → first task started, the tasks, the last
 * task completed → the answer back at the caller. Medians over `sent`.
 */
async function timeline(client: Client, sent: Sent[]): Promise<string> {
  const parts: Record<string, number[]> = {};
  const add = (k: string, v: number) => (parts[k] ??= []).push(v);
  for (const s of sent) {
    const events = (await client.workflow.getHandle(s.workflowId).fetchHistory()).events ?? [];
    type Event = (typeof events)[number];
    const at = (e: Event | undefined) => (e?.eventTime ? tsToMs(e.eventTime) : NaN);
    const type = (e: Event) => e.eventType as number;
    const started = events[0];
    const tasks = events.filter((e) => type(e) === WFT_STARTED);
    const done = events.filter((e) => type(e) === WFT_COMPLETED);
    add('request → started', at(started) - s.sentAt);
    add('started → first task', at(tasks[0]) - at(started));
    add('first task → last task done', at(done[done.length - 1]) - at(tasks[0]));
    add('last task done → answer', s.answeredAt - at(done[done.length - 1]));
    add('tasks', tasks.length);
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)] as number;
  return Object.entries(parts)
    .map(([k, v]) => `${k} ${median(v).toFixed(0)}`)
    .join(', ');
}

/** Rounds and pool hits per round of the CPU measurement (cpuPerPoolHit). */
const CPU_ROUNDS = roundCount();
const CPU_CLAIMS = Number(process.env.BENCH_CPU_CLAIMS ?? 20);
/** The quiet time after each CPU step, so that the work a step left behind is counted in it. */
const SETTLE_MS = 2000;

/**
 * Orchestration CPU per pool hit against per floor workflow, read from /proc: Temporal,
 * PostgreSQL and the bench process (which runs the worker, the API and the floor's worker),
 * over CPU_CLAIMS sequential pool hits, then as many floor workflows, in alternating rounds,
 * each step followed by a quiet SETTLE_MS; the machine's idle rate over as long is subtracted.
 */
async function cpuPerPoolHit(
  client: Client,
  claimOnce: (i: number, kind: string) => Promise<{ outcome: string }>,
  floor: Awaited<ReturnType<typeof startFloor>>,
): Promise<void> {
  const procs = stackProcesses();
  const pids = (name: string) => () => procs.filter((p) => p.name === name).map((p) => p.pid);
  const groups: CpuGroups = {
    temporal: pids('temporal'),
    postgresql: pids('postgresql'),
    'worker+api+bench': 'self',
  };
  const names = Object.keys(groups);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const measure = async (work: () => Promise<void>) => {
    const before = readCpu(groups);
    const t = performance.now();
    await work();
    await sleep(SETTLE_MS);
    return { used: cpuBetween(before, readCpu(groups)), ms: performance.now() - t };
  };
  let next = 0;
  const out = await alternate(CPU_ROUNDS, {
    idle: () => measure(async () => undefined),
    'pool hits': () =>
      measure(async () => {
        for (let i = 0; i < CPU_CLAIMS; i++) {
          const r = await claimOnce(next++, 'cpu');
          if (r.outcome !== 'pool') throw new Error(`CPU claim ${next}: ${r.outcome}`);
        }
      }),
    floor: () =>
      measure(async () => {
        for (let i = 0; i < CPU_CLAIMS; i++) await floor.once(`cpu-${next++}`);
      }),
  });
  // Per unit of work, less what the same time costs idle (the dev server ticks on its own).
  const perUnit = (m: { used: CpuReading; ms: number }, idle: { used: CpuReading; ms: number }) =>
    (Math.max(0, sumOf(m.used, names) - (sumOf(idle.used, names) * m.ms) / idle.ms) * 1000) /
    CPU_CLAIMS;
  const hit = out['pool hits']!.map((m, r) => perUnit(m, out.idle![r]!));
  const fl = out.floor!.map((m, r) => perUnit(m, out.idle![r]!));
  const ratio = spread(hit.map((h, r) => h / Math.max(1e-9, fl[r]!)));
  const split = (m: { used: CpuReading }) =>
    names.map((n) => `${n} ${(((m.used[n] ?? 0) * 1000) / CPU_CLAIMS).toFixed(1)}`).join(', ');
  console.log(
    `orchestration CPU (Temporal + PostgreSQL + worker, API and bench), ${CPU_CLAIMS} sequential each, idle subtracted:`,
  );
  console.log(
    `  per pool hit ${showSpread(spread(hit), 1, ' ms')} (last round, before idle: ${split(out['pool hits']!.at(-1)!)} ms)`,
  );
  console.log(
    `  per floor workflow ${showSpread(spread(fl), 1, ' ms')} (last round: ${split(out.floor!.at(-1)!)} ms)`,
  );
  console.log(
    `  pool hit / floor: ${showSpread(ratio)} (target ≤ 2: ${ratio.median <= 2 ? 'met' : 'MISSED'}); ` +
      `idle ${showSpread(spread(out.idle!.map((m) => (sumOf(m.used, names) * 1000) / (m.ms / 1000))), 0, ' ms')} CPU per second`,
  );
}

/** The p-quantile of `ms`. */
const q = (ms: number[], p: number) => {
  const sorted = [...ms].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] as number;
};

/**
 * The pool hits, the bare calls and the floor ran interleaved, claim by claim; cut into
 * `rounds` consecutive rounds, each round's p50 figures give a median and a spread.
 */
function byRound(pool: number[], bare: number[], floorMs: number[], rounds: number): void {
  const size = Math.ceil(pool.length / rounds);
  const ratio: number[] = [];
  const own: number[] = [];
  const floorRatio: number[] = [];
  for (let r = 0; r * size < pool.length; r++) {
    const cut = (ms: number[]) => ms.slice(r * size, (r + 1) * size);
    const [p, b, f] = [cut(pool), cut(bare), cut(floorMs)].map((ms) => q(ms, 0.5)) as [
      number,
      number,
      number,
    ];
    ratio.push(p / b);
    own.push(p - b - f);
    floorRatio.push((b + f) / b);
  }
  console.log(`per round (${size} claims each), medians of the rounds' p50s:`);
  console.log(`  pool hit / bare calls: ${showSpread(spread(ratio))}`);
  console.log(`  (bare + floor) / bare: ${showSpread(spread(floorRatio))}`);
  const ownSpread = spread(own);
  console.log(
    `  a pool hit's own cost beyond the bare calls and the floor: ${showSpread(ownSpread, 0, ' ms')} ` +
      `(target ≤ 15 ms: ${ownSpread.median <= 15 ? 'met' : 'MISSED'})`,
  );
}

async function main(): Promise<void> {
  setCreateDelay(0);
  // BENCH_CREATE_DELAY is set mid-run: back to 0 however the bench ends.
  await runPlaced(claims, () => setCreateDelay(0));
}

async function claims(): Promise<void> {
  const tag = `bench${process.pid}`;
  const config = loadConfig({
    env: {
      ...process.env,
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES: 'sas',
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE: 'Debian8 64bit',
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS: '',
      POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: String(N + 10 + CPU_ROUNDS * CPU_CLAIMS),
      POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: ZONE,
      POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: '0',
      POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: '0.2',
      POOL__VOLUMES__CONCURRENCY: '8',
      POOL__TEMPORAL__TASK_QUEUE: `${tag}-tq`,
      POOL__TEMPORAL__SCHEDULE_PREFIX: tag,
      POOL__API__CLAIM_WAIT_SECOND: '120',
    },
  });
  const db = createDb(config.databaseUrl, 10);
  await wipePool(db);
  const cinder = cinderFromConfig(config);
  // Room in the pool's own project for the stock and the bare volumes beside what it holds.
  const own = await cinder.projectId();
  const volumes = ((await cinder.getQuotaUsage(own)).volumes?.inUse ?? 0) + 3 * N + 100;
  await cinder.updateQuota(own, { volumes, gigabytes: 10 * volumes });
  const client = await connectClient(config);
  const worker = await startWorker(config, db, { cinder, temporal: client });
  const api = buildApi({ config, db, temporal: client });
  const floor = await startFloor(client, config.temporal.address, tag);
  const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };

  try {
    const t0 = Date.now();
    const fill = await client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `${tag}-fill`,
      args: [{}],
    });
    console.log(
      `zones served: ${config.pool.zones.join(', ') || 'none'} (claims in ` +
        `${zoneLabel(config.pool.defaultZone)}); stocked ${fill.available} pool volumes in ` +
        `${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );

    const claimOnce = async (i: number, kind: string) => {
      const body = {
        requestId: `${tag}-${kind}-${i}`,
        projectId: TENANT_PROJECTS.alpha,
        name: `${tag}-${kind}-${i}`,
        os: 'Debian8 64bit',
        volumeType: 'sas',
      };
      const sentAt = Date.now();
      const t = performance.now();
      const res = await api.inject({ method: 'POST', url: '/v1/claims', headers, payload: body });
      const ms = performance.now() - t;
      if (res.statusCode !== 201) throw new Error(`claim ${i}: ${res.statusCode} ${res.body}`);
      return {
        ms,
        sent: { workflowId: claimWorkflowId(body.requestId), sentAt, answeredAt: Date.now() },
        outcome: res.json().outcome as string,
        steps: res.json().timingsMs as Record<string, number>,
      };
    };

    // The bare Cinder calls of a pool hit (lookup ‖ transfer, accept, rename), without Temporal or the
    // database, on volumes made the same way; run alternately with the claims so both see the
    // same machine and the same Cinder: in the claims' zone, from its current snapshot.
    const zone = config.pool.defaultZone;
    const snap = await currentImage(config, cinder, 'Debian8 64bit', 'sas', zone);
    const tenantClient = cinder.asProject(TENANT_PROJECTS.beta, TENANT_USER);
    const vols = [];
    for (let i = 0; i < N; i++)
      vols.push(
        await cinder.createVolume({
          name: `${tag}-bare-${i}`,
          size: snap.size,
          snapshotId: snap.id,
          volumeType: 'sas',
          availabilityZone: zone || undefined,
        }),
      );
    for (const v of vols)
      while ((await cinder.getVolume(v.id)).status !== 'available')
        await new Promise((r) => setTimeout(r, 100));

    // BENCH_CREATE_DELAY=s makes each create from a snapshot take that long (like a Ceph flatten).
    setCreateDelay(Number(process.env.BENCH_CREATE_DELAY ?? 0));
    const pool: number[] = [];
    const bare: number[] = [];
    const floorMs: number[] = [];
    const calls: number[] = [];
    const steps: Record<string, number[]> = {};
    const claimsSent: Sent[] = [];
    const floorsSent: Sent[] = [];
    for (let i = 0; i < N; i++) {
      // No fill schedule exists here, so no refill adds Cinder calls to the claim's count.
      const before = cinder.callCount;
      const r = await claimOnce(i, 'pool');
      calls.push(cinder.callCount - before);
      for (const [k, v] of Object.entries(r.steps)) (steps[k] ??= []).push(v);
      if (r.outcome !== 'pool') throw new Error(`claim ${i} was ${r.outcome}`);
      pool.push(r.ms);
      claimsSent.push(r.sent);
      const v = vols[i] as (typeof vols)[number];
      const t = performance.now();
      // The name lookup a claim makes (idempotency), beside the transfer's create as it does.
      const [tr] = await Promise.all([
        cinder.createTransfer(v.id, 'bench'),
        tenantClient.listVolumes({ name: `${tag}-bare-renamed` }),
      ]);
      await tenantClient.acceptTransfer(tr.id, tr.authKey);
      await tenantClient.updateVolume(v.id, { name: `${tag}-bare-renamed`, metadata: {} });
      bare.push(performance.now() - t);
      const floorSentAt = Date.now();
      floorMs.push(await floor.once(String(i)));
      floorsSent.push({
        workflowId: floor.workflowId(String(i)),
        sentAt: floorSentAt,
        answeredAt: Date.now(),
      });
    }
    await cpuPerPoolHit(client, claimOnce, floor);
    // Empty what is left so every following claim falls back to plain creation.
    await wipePool(db);
    const created: number[] = [];
    for (let i = 0; i < N; i++) {
      const r = await claimOnce(i, 'created');
      if (r.outcome !== 'created') throw new Error(`claim ${i} was ${r.outcome}`);
      created.push(r.ms);
    }
    setCreateDelay(0);

    console.log(`claim via API, outcome pool:    ${stats(pool)}`);
    console.log(`claim via API, outcome created: ${stats(created)}`);
    console.log(`bare Cinder lookup ‖ transfer, accept, rename: ${stats(bare)}`);
    console.log(
      `pool hit / bare calls: p50 ${(q(pool, 0.5) / q(bare, 0.5)).toFixed(2)}x, ` +
        `p99 ${(q(pool, 0.99) / q(bare, 0.99)).toFixed(2)}x`,
    );
    console.log(`Temporal floor (the claim's shape, no work): ${stats(floorMs)}`);
    console.log(
      `pool hit − bare calls, p50: ${(q(pool, 0.5) - q(bare, 0.5)).toFixed(0)} ms, of which ` +
        `the floor ${q(floorMs, 0.5).toFixed(0)} ms; (bare + floor) / bare: p50 ` +
        `${((q(bare, 0.5) + q(floorMs, 0.5)) / q(bare, 0.5)).toFixed(2)}x`,
    );
    console.log(
      `pool hit, median ms from the workflow's start: ${Object.entries(steps)
        .map(([k, v]) => `${k} ${q(v, 0.5)}`)
        .join(', ')}`,
    );
    byRound(pool, bare, floorMs, roundCount());
    for (const [what, sent] of [
      ['pool hit', claimsSent],
      ['floor', floorsSent],
    ] as const)
      console.log(`${what}, median ms: ${await timeline(client, sent)}`);
    console.log(
      `Cinder calls per pool hit: first ${calls[0]} (incl. the one-off version probe), then ` +
        `median ${q(calls.slice(1), 0.5)}, max ${Math.max(...calls.slice(1))}`,
    );

    for (const v of vols) await tenantClient.deleteVolume(v.id).catch(() => undefined);
    const alpha = cinder.asProject(TENANT_PROJECTS.alpha, TENANT_USER);
    for (const v of await alpha.listVolumes())
      if (v.name.startsWith(tag)) await alpha.deleteVolume(v.id).catch(() => undefined);
  } finally {
    await floor.stop();
    await worker.stop();
  }
  await api.close();
  await client.connection.close();
  await db.end();
}

/** One auth mode's worker, API and tenant, for keystoneVsNoauth. */
interface Mode {
  name: 'noauth' | 'keystone';
  config: AppConfig;
  cinder: CinderClient;
  api: ReturnType<typeof buildApi>;
  stop: () => Promise<void>;
  tenant: string;
  ms: number[];
}

/**
 * BENCH_AUTH=keystone: pool hits in Keystone mode (the stack's real Keystone behind a proxy that
 * counts token requests, and its keystone-checked Cinder) against noauth pool hits, in
 * alternating rounds of BENCH_ROUND claims in one run. Each round stocks its own mode's pool and
 * claims it empty: one mode's stock at a time, since a fill drops the rows of volumes its
 * identity cannot see.
 */
async function keystoneVsNoauth(): Promise<void> {
  setCreateDelay(0);
  const tag = `benchks${process.pid}`;
  const perRound = Number(process.env.BENCH_ROUND ?? 5);
  const rounds = Math.ceil(N / perRound);
  const keystone = await FaultProxy.start(`http://127.0.0.1:${process.env.KEYSTONE_PORT ?? 5000}`);
  const tokenRequests = () => keystone.seen.filter((r) => r === 'POST /v3/auth/tokens').length;
  const cloud = JSON.parse(readFileSync(`${STACK_DIR}/keystone/cloud.json`, 'utf8')) as {
    tenants: Record<'tenant-alpha', { projectId: string }>;
  };
  const base = loadConfig();
  const db = createDb(base.databaseUrl, 10);
  await wipePool(db);
  const client = await connectClient(base);

  async function mode(
    name: Mode['name'],
    env: Record<string, string>,
    tenant: string,
  ): Promise<Mode> {
    const config = loadConfig({
      env: {
        ...process.env,
        ...env,
        POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES: 'sas',
        POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE: 'Debian8 64bit',
        POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS: '',
        POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: String(perRound),
        // One zone: another zone's stock (its own counts) would outlive the round.
        POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: ZONE,
        // Exactly one round's stock: nothing of one mode is left when the other fills.
        POOL__VOLUMES_BACKUP__DEMAND_TARGETS: 'false',
        POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: '0',
        POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: '0.2',
        POOL__VOLUMES__CONCURRENCY: '8',
        POOL__TEMPORAL__TASK_QUEUE: `${tag}-${name}-tq`,
        POOL__TEMPORAL__SCHEDULE_PREFIX: `${tag}-${name}`,
        POOL__API__CLAIM_WAIT_SECOND: '120',
      },
    });
    const cinder = cinderFromConfig(config);
    const worker = await startWorker(config, db, { cinder, temporal: client });
    const api = buildApi({ config, db, temporal: client });
    const stop = async () => {
      await api.close();
      await worker.stop();
    };
    return { name, config, cinder, api, stop, tenant, ms: [] };
  }

  const modes: [Mode, Mode] = [
    await mode('noauth', {}, TENANT_PROJECTS.alpha),
    await mode(
      'keystone',
      {
        OS_CLIENT_CONFIG_FILE: `${STACK_DIR}/keystone/clouds.yaml`,
        OS_CLOUD: 'warmpool-stack',
        OS_AUTH_URL: `http://127.0.0.1:${keystone.port}/v3`,
      },
      cloud.tenants['tenant-alpha'].projectId,
    ),
  ];
  const tokens: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      for (const m of modes) {
        const fill = await client.workflow.execute(fillPoolWorkflow, {
          taskQueue: m.config.temporal.taskQueue,
          workflowId: `${tag}-${m.name}-fill-${r}`,
          args: [{}],
        });
        if (fill.available < perRound)
          throw new Error(`${m.name} round ${r}: ${fill.available} stocked`);
        for (let i = 0; i < perRound; i++) {
          const requestId = `${tag}-${m.name}-${r}-${i}`;
          const before = tokenRequests();
          const t = performance.now();
          const res = await m.api.inject({
            method: 'POST',
            url: '/v1/claims',
            headers: { authorization: `Bearer ${m.config.api.apiKeys[0]}` },
            payload: {
              requestId,
              projectId: m.tenant,
              name: requestId,
              os: 'Debian8 64bit',
              volumeType: 'sas',
            },
          });
          m.ms.push(performance.now() - t);
          if (res.statusCode !== 201 || res.json().outcome !== 'pool')
            throw new Error(`${requestId}: ${res.statusCode} ${res.body}`);
          if (m.name === 'keystone') tokens.push(tokenRequests() - before);
        }
      }
    }
    const [noauth, ks] = modes;
    const p = (ms: number[], q: number) =>
      [...ms].sort((a, b) => a - b)[
        Math.min(ms.length - 1, Math.ceil(q * ms.length) - 1)
      ] as number;
    const ratio = p(ks.ms, 0.5) / p(noauth.ms, 0.5);
    console.log(`pool hit, noauth:   ${stats(noauth.ms)}`);
    console.log(`pool hit, keystone: ${stats(ks.ms)}`);
    console.log(
      `keystone / noauth: p50 ${ratio.toFixed(2)}x (target ≤ 1.3x: ${ratio <= 1.3 ? 'met' : 'MISSED'}), ` +
        `p99 ${(p(ks.ms, 0.99) / p(noauth.ms, 0.99)).toFixed(2)}x; ${rounds} alternating rounds of ${perRound}; ` +
        `zones served: ${noauth.config.pool.zones.join(', ') || 'none'} (claims in ${zoneLabel(noauth.config.pool.defaultZone)})`,
    );
    const rest = tokens.slice(1).reduce((a, b) => a + b, 0);
    console.log(
      `Keystone token requests per pool hit: first claim ${tokens[0]}, then ${rest} in ` +
        `${tokens.length - 1} claims (${(rest / Math.max(1, tokens.length - 1)).toFixed(2)} per claim)`,
    );
    for (const m of modes) {
      const tenant = m.cinder.asProject(m.tenant, TENANT_USER);
      for (const v of await tenant.listVolumes())
        if (v.name.startsWith(tag)) await tenant.deleteVolume(v.id).catch(() => undefined);
    }
  } finally {
    for (const m of modes) await m.stop();
    await keystone.close();
  }
  await wipePool(db);
  await client.connection.close();
  await db.end();
}

(process.env.BENCH_AUTH === 'keystone' ? runPlaced(keystoneVsNoauth) : main()).catch((err) => {
  console.error(err);
  process.exit(1);
});
