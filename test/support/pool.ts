/** Helpers for pool tests: per-test configuration, a clean pool, workers in and out of process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  NativeConnection,
  Worker,
  bundleWorkflowCode,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { loadConfig, type AppConfig } from '../../lib/config/load';
import { cinderFromConfig, type CinderClient, type Volume } from '../../lib/cinder';
import type { Client } from '@temporalio/client';
import { createActivities } from '../../activities';
import { createLogger } from '../../lib/log';
import { createDb, type Db } from '../../lib/pool-state/db';
import { connectClient } from '../../lib/temporal/connect';
import { deploymentOptions, setCurrentVersion } from '../../lib/temporal/versioning';
import { TAGS } from '../../lib/pool-state/naming';
import type { PoolVolume } from '../../lib/pool-state/repository';
import assert from 'node:assert/strict';
import { admin, config as stackConfig, unique, waitFor } from './env';

export const STACK_DIR = process.env.STACK_DIR ?? resolve(__dirname, '../../.stack');

/**
 * The configuration a test's worker runs with: the stack's, plus these POOL__… overrides. Its
 * own task queue, and with it its own Worker Deployment (deployment_name defaults to the queue's
 * name), which its workers make current themselves (config/pool.ini: set_current_on_start): no
 * test's deploy moves another test's workflows. One build id for the whole test process, also
 * for the workers it spawns, even if a commit lands meanwhile.
 */
export function testConfig(overrides: Record<string, string | number>): {
  config: AppConfig;
  env: NodeJS.ProcessEnv;
} {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...(stackConfig.temporal.buildId && { POOL__TEMPORAL__BUILD_ID: stackConfig.temporal.buildId }),
    POOL__TEMPORAL__TASK_QUEUE: unique('tq'),
    POOL__TEMPORAL__SCHEDULE_PREFIX: unique('sched'),
    POOL__TEMPORAL__MANAGE_SCHEDULES: 'false',
    POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: '0',
    POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: '0.3',
    // Tests count stock against the seed's numbers; test/pool-policy.test.ts turns demand on.
    POOL__VOLUMES_BACKUP__DEMAND_TARGETS: 'false',
    // Several worker processes per test: none binds the metrics port unless a test asks.
    POOL__TEMPORAL__WORKER_METRICS_ADDRESS: '',
    // One zone, Cinder's default (the stack's az-1): the pools of a test are what it names;
    // test/zones.test.ts serves both of the stack's zones.
    POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: 'az-1',
    POOL__VOLUMES_BACKUP__DEFAULT_AVAILABILITY_ZONE: '',
  };
  for (const [k, v] of Object.entries(overrides)) env[k] = String(v);
  return { config: loadConfig({ env }), env };
}

/** Pool settings in the seed's terms: one type, the "more" and "less" OS lists and their counts. */
export function poolEnv(p: {
  types?: string;
  more?: string;
  less?: string;
  numsMore?: number;
  numsLess?: number;
  concurrency?: number;
  intervalSeconds?: number;
  drainPerRun?: number;
  /** availability_zones (default: the stack's az-1 alone). */
  zones?: string;
}): Record<string, string | number> {
  const env: Record<string, string | number> = {
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES: p.types ?? 'sas',
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE: p.more ?? '',
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS: p.less ?? '',
    POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: p.numsMore ?? 0,
    POOL__VOLUMES_BACKUP__BACKUP_NUMS_LESS: p.numsLess ?? 0,
    POOL__VOLUMES__CONCURRENCY: p.concurrency ?? 4,
  };
  if (p.intervalSeconds !== undefined)
    env.POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND = p.intervalSeconds;
  if (p.drainPerRun !== undefined) env.POOL__VOLUMES_BACKUP__STALE_DRAIN_PER_RUN = p.drainPerRun;
  if (p.zones !== undefined) env.POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES = p.zones;
  return env;
}

/** Every pool volume of the admin project, by the pool tag. */
export async function taggedVolumes(prefix = 'warmpool'): Promise<Volume[]> {
  return (await admin.listVolumes({ metadata: { [TAGS.pool]: prefix } })).filter(
    (v) => v.status !== 'deleting',
  );
}

/**
 * Empties the pool: its volumes in Cinder, its rows, the OS table and the limiter. Pass after pass
 * until nothing is left, since a refill a previous test triggered may still be creating.
 */
export async function wipePool(db: Db): Promise<void> {
  await waitFor(
    'pool volumes deleted',
    async () => {
      await wipeOnce(db);
      return taggedVolumes();
    },
    (l) => l.length === 0,
    90_000,
    1000,
  );
}

async function wipeOnce(db: Db): Promise<void> {
  const { rows } = await db.query<{ volume_id: string | null }>(
    'SELECT volume_id FROM pool_volumes',
  );
  const ids = new Set(rows.map((r) => r.volume_id).filter((x): x is string => !!x));
  for (const v of await taggedVolumes()) ids.add(v.id);
  for (const id of ids) {
    const v = await admin.findVolume(id);
    if (!v || v.status === 'deleting') continue;
    if (v.status === 'awaiting-transfer') {
      for (const t of await admin.listTransfers({ volumeId: id })) await admin.deleteTransfer(t.id);
    }
    if (!['available', 'error', 'awaiting-transfer'].includes(v.status))
      await admin.resetVolumeStatus(id, 'available');
    await admin.deleteVolume(id, { cascade: true }).catch(() => undefined);
  }
  await db.query(
    'TRUNCATE pool_volumes, os_images, leak_sightings, rate_limits, pool_runs, claim_names, claim_demand, pool_lead_times, claim_log',
  );
}

/** How long each create from a snapshot takes in the stack's Cinder (see warmpool_fake_driver.py). */
export function setCreateDelay(seconds: number): void {
  mkdirSync(`${STACK_DIR}/cinder`, { recursive: true });
  writeFileSync(`${STACK_DIR}/cinder/create-delay-seconds`, String(seconds));
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;
/** The workflow bundle, built once per test file (webpack takes seconds). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: undefined,
  });
  return bundle;
}

export interface RunningWorker {
  stop(): Promise<void>;
}

type Activities = ReturnType<typeof createActivities>;

/**
 * A worker in this process with the given configuration (its own task queue), versioned like
 * `npm run worker`; with set_current_on_start, returned once its version is current. `activities`:
 * a test's wrapper around the real ones.
 */
export async function startWorker(
  config: AppConfig,
  db: Db,
  extra: {
    temporal?: Client;
    cinder?: CinderClient;
    activities?: (real: Activities) => Activities;
  } = {},
): Promise<RunningWorker> {
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const activities = createActivities({
    config,
    cinder: extra.cinder ?? cinderFromConfig(config),
    db,
    log: createLogger('test-worker', 'silent'),
    temporal: extra.temporal,
  });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    workflowBundle: await workflowBundle(),
    activities: extra.activities ? extra.activities(activities) : activities,
    maxCachedWorkflows: config.temporal.maxCachedWorkflows,
    workerDeploymentOptions: deploymentOptions(config),
  });
  const running = worker.run();
  if (config.temporal.setCurrentOnStart) {
    try {
      await setCurrentVersion(connection.workflowService, config, { timeoutMs: 30_000 });
    } catch (err) {
      worker.shutdown();
      await running;
      await connection.close();
      throw err;
    }
  }
  return {
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

/**
 * A worker as a separate process (`npm run worker`), for crash tests: SIGKILL is real. It makes
 * its version current itself, shortly after it polls: a workflow started before waits for it.
 */
export function spawnWorker(env: NodeJS.ProcessEnv): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
    env: { LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return Object.assign(child, { output: () => out });
}

/** Resolves with the signal (or exit code) that ended a spawned worker. */
export function exited(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.signalCode ?? child.exitCode);
  return new Promise((r) => child.once('exit', (code, signal) => r(signal ?? code)));
}

/**
 * The fill's limits, read from the rows' own timestamps: creations (requested_at, the rate
 * limiter's slot) at least `intervalSeconds` apart, and fewer than `concurrency` other volumes
 * between request and ready when one was requested. Rows without both timestamps are skipped.
 */
export function assertFillLimits(
  rows: PoolVolume[],
  intervalSeconds: number,
  concurrency: number,
): void {
  const all = rows
    .filter((r) => r.requestedAt && r.readyAt)
    .sort((a, b) => (a.requestedAt as Date).getTime() - (b.requestedAt as Date).getTime());
  const starts = all.map((x) => (x.requestedAt as Date).getTime());
  for (let i = 1; i < starts.length; i++) {
    const gap = (starts[i] as number) - (starts[i - 1] as number);
    assert.ok(gap >= intervalSeconds * 1000, `starts ${i - 1} and ${i} are ${gap} ms apart`);
  }
  for (const x of all) {
    const t = (x.requestedAt as Date).getTime();
    const inFlight = all.filter(
      (y) => y !== x && (y.requestedAt as Date).getTime() <= t && (y.readyAt as Date).getTime() > t,
    ).length;
    assert.ok(inFlight < concurrency, `${inFlight + 1} in flight when ${x.name} started`);
  }
}

/** What a stack test holds: a Temporal client and a database pool. */
export interface StackSession {
  client: Client;
  db: Db;
}

/**
 * Opens a stack test's clients (`wipe`: from an empty pool). Pair with closeStack in `after`:
 * the one place that resets the create delay, empties the pool and closes the clients.
 */
export async function openStack(
  dbPoolSize = 5,
  opts: { wipe?: boolean } = {},
): Promise<StackSession> {
  const session = {
    client: await connectClient(stackConfig),
    db: createDb(stackConfig.databaseUrl, dbPoolSize),
  };
  if (opts.wipe) await wipePool(session.db);
  return session;
}

export async function closeStack(session: Partial<StackSession>): Promise<void> {
  setCreateDelay(0);
  if (session.db) await wipePool(session.db);
  await session.client?.connection.close();
  await session.db?.end();
}
