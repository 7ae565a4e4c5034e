/**
 * `npm run bench:fill`: the fill against its bare peer on the same Cinder. Needs the stack
 * (`npm run stack:up`); it empties the pool first and between steps. Run it under the stack's
 * lock when the stack is shared. Modes (BENCH_FILL, comma-separated; default `scale,delayed`):
 *
 * - `scale`: a fill of BENCH_FILL_VOLUMES (500) volumes at concurrency BENCH_FILL_CONCURRENCY (8),
 *   create interval 0, no create delay, against a bare create-and-poll loop at the same
 *   concurrency (that many workers, each: create a volume from the same snapshot in the same
 *   zone, GET it every poll interval until available, then the next; the same volumes in the same
 *   order; the worker's Cinder client and its bound on calls in flight), in alternating rounds
 *   (BENCH_ROUNDS, 3). Per round and as median + spread: the ratio fill / bare of wall time,
 *   volumes/s of each, Cinder calls per volume of each by kind, CPU per volume of the cloud, the
 *   orchestration and this process.
 * - `delayed`: the same with a Ceph-like create delay (BENCH_FILL_DELAY_SECONDS, 30 s):
 *   BENCH_FILL_DELAYED_VOLUMES (200) volumes at BENCH_FILL_DELAYED_CONCURRENCY (50), polled every
 *   BENCH_FILL_DELAYED_POLL_SECONDS (2, the configuration's default); BENCH_FILL_DELAYED_ROUNDS (1)
 *   rounds. What shows: the fill's waiters share one list of `creating` volumes per project, the
 *   bare loop GETs each volume every poll.
 * - `intervals`: the former figure: the stack configuration's pools (default zone) filled from
 *   empty with the create interval at 0 s and at 1 s (BENCH_INTERVALS), calls per volume.
 *
 * The pools of `scale` and `delayed`: the target of N volumes spread over the stack
 * configuration's volume types × OSes (BENCH_FILL_TYPES, BENCH_FILL_OSES override them), each
 * pool made from its OS's snapshot in its zone: `scale` in the configuration's default zone
 * (az-1), `delayed` split evenly over the configuration's zones (az-1, az-2;
 * BENCH_FILL_DELAYED_ZONES). Many snapshots matter: Cinder makes one volume at a time from a
 * given snapshot (cinder-volume holds the snapshot's `<id>-delete_snapshot` lock through the
 * driver's create), so with a create delay the largest pool's count × the delay is a floor under
 * either side's wall time (printed); two zones halve it.
 *
 * The admin project's Cinder quota is raised when it lacks room for the run, and put back after.
 * The stack's state directory must be the running stack's (STACK_DIR; see bench/fill/cinder.ts).
 * BENCH_CPUS=shared|split places the processes (bench/support/stack-cpus.ts).
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig, type AppConfig } from '../lib/config/load';
import { cinderFromConfig, type CinderClient, type Snapshot } from '../lib/cinder';
import { currentOsSnapshot } from '../activities/fill/images';
import { createDb } from '../lib/pool-state/db';
import { connectClient } from '../lib/temporal/connect';
import { fillPoolWorkflow } from '../workflows';
import { setCreateDelay, startWorker, wipePool } from '../test/support/pool';
import { alternate, roundCount, showSpread, spread } from './support/rounds';
import { runPlaced, stackProcesses } from './support/stack-cpus';
import { cpuBetween, perUnit, readCpu, type CpuGroups, type CpuReading } from './support/cpu-time';
import {
  CallCounter,
  addCalls,
  callsTable,
  describeMix,
  fillModes,
  mixEnv,
  roundRobin,
  serialFloorSeconds,
  spreadTarget,
  totalCalls,
  type PoolShare,
} from './fill/mix';
import {
  bareLoop,
  checkStackDir,
  deleteVolumes,
  ensureQuotaRoom,
  waitDeleted,
  type BareItem,
} from './fill/cinder';

const MODES = ['scale', 'delayed', 'intervals'] as const;
const STACK_CONFIG = loadConfig();
/** The zone `scale` fills: the stack configuration's default (az-1). */
const ZONE = STACK_CONFIG.pool.defaultZone;
const list = (v: string | undefined) =>
  v
    ?.split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const TYPES = list(process.env.BENCH_FILL_TYPES) ?? STACK_CONFIG.pool.volumeTypes;
const OSES = list(process.env.BENCH_FILL_OSES) ?? [
  ...STACK_CONFIG.pool.osMore,
  ...STACK_CONFIG.pool.osLess,
];

function numberEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  const n = Number(raw ?? fallback);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${raw}: a number ≥ 0`);
  return n;
}

/** One side of a round: the fill or the bare loop. */
interface Step {
  wallMs: number;
  volumes: number;
  failed: number;
  calls: Map<string, number>;
  cpu: CpuReading;
}

interface Spec {
  name: 'scale' | 'delayed';
  /** The zones served, the volumes split evenly between them ('' : Cinder's default). */
  zones: string[];
  volumes: number;
  concurrency: number;
  pollSeconds: number;
  delaySeconds: number;
  rounds: number;
}

const CPU_GROUPS = ['cloud', 'orchestration', 'bench'];

/** CPU per group, each group's processes listed anew at each reading. */
function cpuGroups(): CpuGroups {
  let cached: { at: number; procs: ReturnType<typeof stackProcesses> } | undefined;
  const procs = () => {
    if (!cached || Date.now() - cached.at > 1000)
      cached = { at: Date.now(), procs: stackProcesses() };
    return cached.procs;
  };
  return {
    cloud: () =>
      procs()
        .filter((p) => p.role === 'cloud')
        .map((p) => p.pid),
    orchestration: () =>
      procs()
        .filter((p) => p.role === 'orchestration')
        .map((p) => p.pid),
    // This process: the in-process worker during a fill, the bare loop during a bare step.
    bench: () => [process.pid],
  };
}

const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;
const perSecond = (s: Step) => s.volumes / (s.wallMs / 1000);

function stepLine(name: string, s: Step, wanted: number): string {
  const calls = totalCalls(s.calls);
  return (
    `  ${name}: ${s.volumes}/${wanted} volumes in ${(s.wallMs / 1000).toFixed(1)} s = ` +
    `${perSecond(s).toFixed(2)} volumes/s${s.failed ? ` (${s.failed} failed)` : ''}; ` +
    `${calls} Cinder calls = ${(calls / Math.max(1, s.volumes)).toFixed(2)} per volume; ` +
    `CPU per volume: ${perUnit(s.cpu, Math.max(1, s.volumes), CPU_GROUPS)}`
  );
}

type ZonedShare = PoolShare & { zone: string };
const shareKey = (p: ZonedShare) => `${p.type}/${p.os}@${p.zone}`;

/** Each pool's current snapshot in its zone, as the fill resolves it. */
async function poolSnapshots(
  config: AppConfig,
  cinder: CinderClient,
  pools: ZonedShare[],
): Promise<Map<string, Snapshot>> {
  const out = new Map<string, Snapshot>();
  for (const p of pools) {
    const snap = await currentOsSnapshot(
      cinder,
      config.pool.snapshotNameRule,
      p.os,
      p.type,
      p.zone,
    );
    if (!snap) throw new Error(`no snapshot of ${p.type}/${p.os} in zone ${p.zone || '(default)'}`);
    out.set(shareKey(p), snap);
  }
  return out;
}

/** A fill of spec.volumes against the bare loop, in alternating rounds; prints as it goes. */
async function fillVsBare(spec: Spec): Promise<void> {
  const zones = spec.zones.length ? spec.zones : [''];
  if (spec.volumes % zones.length)
    throw new Error(`${spec.volumes} volumes do not split evenly over zones ${spec.zones}`);
  // The same counts in every zone (the configuration's counts are per zone).
  const mix = spreadTarget(spec.volumes / zones.length, TYPES, OSES);
  const pools: ZonedShare[] = zones.flatMap((zone) => mix.pools.map((p) => ({ ...p, zone })));
  const tag = `benchfill${process.pid}${spec.name}`;
  const config = loadConfig({
    env: {
      ...process.env,
      ...mixEnv(mix),
      POOL__VOLUMES__CONCURRENCY: String(spec.concurrency),
      POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: spec.zones.join(', '),
      POOL__VOLUMES_BACKUP__DEFAULT_AVAILABILITY_ZONE: '',
      POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: '0',
      POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: String(spec.pollSeconds),
      // The target is the floor: no demand raises it (and no quota check for demand).
      POOL__VOLUMES_BACKUP__DEMAND_TARGETS: 'false',
      POOL__TEMPORAL__TASK_QUEUE: `${tag}-tq`,
      POOL__TEMPORAL__SCHEDULE_PREFIX: tag,
      POOL__TEMPORAL__MANAGE_SCHEDULES: 'false',
      POOL__TEMPORAL__WORKER_METRICS_ADDRESS: '',
    },
  });
  const target = config.pool.targets.reduce((n, t) => n + t.target, 0);
  if (target !== spec.volumes) throw new Error(`target ${target}, not ${spec.volumes}`);

  const db = createDb(config.databaseUrl, 10);
  const admin = cinderFromConfig(config); // set-up and clean-up, not counted
  const fillCalls = new CallCounter();
  const bareCalls = new CallCounter();
  const workerCinder = cinderFromConfig(config, { log: fillCalls.log });
  // The same client as the worker's, with the same bound on calls in flight (max_concurrent_calls):
  // 50 workers' polls unbounded ran the stack's MariaDB out of connections (Cinder answered 500).
  const bare = cinderFromConfig(config, { log: bareCalls.log });
  const snaps = await poolSnapshots(config, admin, pools);
  const items: BareItem[] = roundRobin(pools).map((p) => {
    const snap = snaps.get(shareKey(p)) as Snapshot;
    return { snapshotId: snap.id, volumeType: p.type, sizeGb: snap.size, zone: p.zone };
  });
  const gbEach = Math.max(...items.map((i) => i.sizeGb));
  const projectId = await admin.projectId();
  const quota = await ensureQuotaRoom(admin, projectId, spec.volumes + 10, gbEach, mix.types);

  const floor = serialFloorSeconds(pools, spec.delaySeconds);
  console.log(
    `\n== ${spec.name}: ${spec.volumes} volumes at concurrency ${spec.concurrency}, create interval 0 s, ` +
      `create delay ${spec.delaySeconds} s, poll every ${spec.pollSeconds} s (fill and bare), ` +
      `zone(s) ${spec.zones.join(', ') || "(Cinder's default)"}, Cinder calls in flight ≤ ` +
      `${config.auth.maxConcurrentCalls} per side (max_concurrent_calls), ${spec.rounds} alternating round(s)` +
      (spec.rounds === 1 ? ' (one round: no spread)' : ''),
  );
  console.log(
    `pools: ${describeMix(mix)}${zones.length > 1 ? ` in each of ${zones.length} zones` : ''}, ` +
      `each made from its OS's snapshot in its zone (${snaps.size} snapshots)`,
  );
  console.log(`admin project ${projectId} quota: ${quota.said}`);
  if (spec.delaySeconds > 0)
    console.log(
      `Cinder makes one volume at a time per snapshot: floor under either side's wall time ` +
        `${floor} s (largest pool ${floor / spec.delaySeconds} volumes × ${spec.delaySeconds} s)`,
    );

  await wipePool(db);
  await waitDeleted(admin);
  const groups = cpuGroups();
  const worker = await startWorker(config, db, { cinder: workerCinder });
  const client = await connectClient(config);
  try {
    setCreateDelay(spec.delaySeconds);
    const out = await alternate<Step>(spec.rounds, {
      fill: async (r) => {
        fillCalls.reset();
        const cpu0 = readCpu(groups);
        const t = performance.now();
        const res = await client.workflow.execute(fillPoolWorkflow, {
          taskQueue: config.temporal.taskQueue,
          workflowId: `${tag}-fill-${r}`,
          args: [{ reason: 'bench' }],
        });
        const step: Step = {
          wallMs: performance.now() - t,
          volumes: res.available,
          failed: res.failed,
          calls: fillCalls.snapshot(),
          cpu: cpuBetween(cpu0, readCpu(groups)),
        };
        console.log(stepLine('fill', step, spec.volumes));
        if (res.stoppedBy) console.log(`    stopped by: ${res.stoppedBy}`);
        for (const e of res.errors.slice(0, 3)) console.log(`    error: ${e}`);
        const t1 = performance.now();
        await wipePool(db);
        const gone = await waitDeleted(admin);
        console.log(
          `    clean-up (wipePool, Cinder's deletes): ${seconds(t1)}${gone ? '' : ', deletes still running'}`,
        );
        return step;
      },
      bare: async (r) => {
        bareCalls.reset();
        const cpu0 = readCpu(groups);
        const run = await bareLoop({
          cinder: bare,
          items,
          concurrency: spec.concurrency,
          pollMs: spec.pollSeconds * 1000,
          prefix: `${tag}-bare-r${r}`,
        });
        const step: Step = {
          wallMs: run.wallMs,
          volumes: run.available,
          failed: run.failed.length,
          calls: bareCalls.snapshot(),
          cpu: cpuBetween(cpu0, readCpu(groups)),
        };
        console.log(stepLine('bare', step, spec.volumes));
        for (const f of run.failed.slice(0, 3)) console.log(`    failed: ${f}`);
        if (run.pollErrors)
          console.log(
            `    ${run.pollErrors} poll(s) answered with a transient error, polled again`,
          );
        const t1 = performance.now();
        await deleteVolumes(admin, run.ids);
        const gone = await waitDeleted(admin);
        console.log(
          `    clean-up (deletes, 8 at once): ${seconds(t1)}${gone ? '' : ', deletes still running'}`,
        );
        return step;
      },
    });
    setCreateDelay(0);
    summarize(spec, out.fill ?? [], out.bare ?? []);
  } finally {
    setCreateDelay(0);
    await worker.stop();
    await client.connection.close();
    await wipePool(db).catch((e: Error) => console.log(`wipe: ${e.message}`));
    await quota
      .restore()
      .catch((e: Error) => console.log(`quota not put back: ${e.message} (was: ${quota.said})`));
    await db.end();
  }
}

function summarize(spec: Spec, fills: Step[], bares: Step[]): void {
  const ratios = fills.map((f, i) => f.wallMs / (bares[i] as Step).wallMs);
  const s = (v: number[], digits = 2, unit = '') =>
    v.length > 1 ? showSpread(spread(v), digits, unit) : `${(v[0] ?? NaN).toFixed(digits)}${unit}`;
  console.log(`-- ${spec.name}: over ${fills.length} round(s)`);
  console.log(
    `fill / bare wall time: ${s(ratios)}   (fill ${s(
      fills.map((f) => f.wallMs / 1000),
      1,
      ' s',
    )}; bare ${s(
      bares.map((b) => b.wallMs / 1000),
      1,
      ' s',
    )})`,
  );
  console.log(
    `per round, fill / bare: ${ratios
      .map(
        (r, i) =>
          `r${i + 1} ${r.toFixed(2)} (${((fills[i] as Step).wallMs / 1000).toFixed(1)} / ` +
          `${((bares[i] as Step).wallMs / 1000).toFixed(1)} s)`,
      )
      .join(', ')}`,
  );
  console.log(
    `volumes/s: fill ${s(fills.map(perSecond))}; bare ${s(bares.map(perSecond))}; ` +
      `bare / fill throughput ratio = the wall time ratio`,
  );
  const fillVolumes = fills.reduce((n, f) => n + f.volumes, 0);
  const bareVolumes = bares.reduce((n, b) => n + b.volumes, 0);
  const fillCalls = addCalls(fills.map((f) => f.calls));
  const bareCalls = addCalls(bares.map((b) => b.calls));
  for (const line of callsTable([
    { name: 'fill', calls: fillCalls, volumes: fillVolumes },
    { name: 'bare', calls: bareCalls, volumes: bareVolumes },
  ]))
    console.log(line);
  // Status calls: what waiting on `creating` volumes costs each side.
  const status = (calls: Map<string, number>) =>
    (calls.get('GET /volumes/{id}') ?? 0) + (calls.get('GET /volumes/detail') ?? 0);
  const perVol = (n: number, v: number) => (n / Math.max(1, v)).toFixed(2);
  console.log(
    `status calls per volume (GET /volumes/{id} + GET /volumes/detail): fill ` +
      `${perVol(status(fillCalls), fillVolumes)} (GETs ${perVol(fillCalls.get('GET /volumes/{id}') ?? 0, fillVolumes)}, ` +
      `lists ${perVol(fillCalls.get('GET /volumes/detail') ?? 0, fillVolumes)}); bare ` +
      `${perVol(status(bareCalls), bareVolumes)}` +
      (spec.delaySeconds > 0
        ? `; one create's delay / poll interval = ${(spec.delaySeconds / spec.pollSeconds).toFixed(0)} polls`
        : ''),
  );
  const cpuOf = (steps: Step[]) => {
    const sum: CpuReading = {};
    for (const st of steps) for (const [g, v] of Object.entries(st.cpu)) sum[g] = (sum[g] ?? 0) + v;
    return sum;
  };
  console.log(
    `CPU per volume, fill: ${perUnit(cpuOf(fills), Math.max(1, fillVolumes), CPU_GROUPS)}`,
  );
  console.log(
    `CPU per volume, bare: ${perUnit(cpuOf(bares), Math.max(1, bareVolumes), CPU_GROUPS)}`,
  );
}

/** The former figure: the stack configuration's pools at create intervals 0 s and 1 s. */
async function intervals(): Promise<void> {
  const zones = process.env.BENCH_ZONES ?? ZONE;
  for (const interval of (process.env.BENCH_INTERVALS ?? '0,1').split(',').map(Number)) {
    const tag = `benchfill${process.pid}i${interval}`;
    const config = loadConfig({
      env: {
        ...process.env,
        POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: String(interval),
        POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: '0.5',
        POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: zones,
        POOL__TEMPORAL__TASK_QUEUE: `${tag}-tq`,
        POOL__TEMPORAL__WORKER_METRICS_ADDRESS: '',
      },
    });
    const db = createDb(config.databaseUrl, 10);
    await wipePool(db);
    const calls = new CallCounter();
    const worker = await startWorker(config, db, {
      cinder: cinderFromConfig(config, { log: calls.log }),
    });
    const client = await connectClient(config);
    try {
      const target = config.pool.targets.reduce((n, t) => n + t.target, 0);
      const started = Date.now();
      const result = await client.workflow.execute(fillPoolWorkflow, {
        taskQueue: config.temporal.taskQueue,
        workflowId: `${tag}-fill`,
        args: [{ reason: 'bench' }],
      });
      const seconds = (Date.now() - started) / 1000;
      const counted = calls.snapshot();
      const total = totalCalls(counted);
      console.log(
        `\n== intervals: interval ${interval} s, concurrency ${config.concurrency}, zones ` +
          `${config.pool.zones.join(', ') || "none (Cinder's default)"}: ${result.available}/${target} ` +
          `volumes in ${seconds.toFixed(1)} s (${(result.available / seconds).toFixed(2)} volumes/s); ` +
          `Cinder calls ${total} = ${(total / Math.max(1, result.available)).toFixed(2)} per volume`,
      );
      for (const [k, n] of [...counted.entries()].sort((a, b) => b[1] - a[1]))
        console.log(`    ${String(n).padStart(5)}  ${k}`);
    } finally {
      await wipePool(db);
      await worker.stop();
      await client.connection.close();
      await db.end();
    }
  }
}

async function main(): Promise<void> {
  checkStackDir();
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const modes = fillModes(process.env.BENCH_FILL, MODES, ['scale', 'delayed']);
  // Ctrl-C or a kill: neither the create delay nor the pinning may stay behind on the stack.
  await runPlaced(
    async () => {
      for (const mode of modes) {
        if (mode === 'scale')
          await fillVsBare({
            name: 'scale',
            zones: [ZONE].filter(Boolean),
            volumes: numberEnv('BENCH_FILL_VOLUMES', 500),
            concurrency: numberEnv('BENCH_FILL_CONCURRENCY', 8),
            pollSeconds: numberEnv('BENCH_FILL_POLL_SECONDS', 0.5),
            delaySeconds: 0,
            rounds: roundCount(),
          });
        else if (mode === 'delayed')
          await fillVsBare({
            name: 'delayed',
            zones: list(process.env.BENCH_FILL_DELAYED_ZONES) ?? STACK_CONFIG.pool.zones,
            volumes: numberEnv('BENCH_FILL_DELAYED_VOLUMES', 200),
            concurrency: numberEnv('BENCH_FILL_DELAYED_CONCURRENCY', 50),
            pollSeconds: numberEnv('BENCH_FILL_DELAYED_POLL_SECONDS', 2),
            delaySeconds: numberEnv('BENCH_FILL_DELAY_SECONDS', 30),
            rounds: roundCount({ BENCH_ROUNDS: process.env.BENCH_FILL_DELAYED_ROUNDS }, 1),
          });
        else await intervals();
      }
    },
    () => setCreateDelay(0),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
