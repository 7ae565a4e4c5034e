/**
 * The operator's CLI: `npm run pool -- <command> [options]`.
 *
 *   status                      levels per type × OS, workers, schedules, the last fill
 *   fill-now [--wait]           a fill now (after the one running, if any); --wait: until it ends
 *   sync-os                     rebuild the OS table from Cinder's snapshots
 *   drain [--os X] [--type T] [--zone Z] [--stale]   delete idle stock (all, one pool's, stale)
 *   pause [--reason R] | resume the fill and check schedules
 *   reconcile                   one leak/consistency pass now
 *
 * Exit codes: 0 done, 1 failed, 2 bad usage.
 *
 * Every command answers from what is recorded (the pool's tables, the server's descriptions of
 * schedules, runs and task-queue pollers) and asks a workflow (a query) only when a worker of its
 * build polls, under a deadline: with no worker, a query would wait for one. A command that needs
 * a worker (fill-now --wait, sync-os, drain, reconcile) says so and exits 1 when none polls.
 */
import { parseArgs } from 'node:util';
import {
  ScheduleOverlapPolicy,
  WorkflowIdConflictPolicy,
  type Client,
  type Workflow,
  type WorkflowHandle,
} from '@temporalio/client';
import { loadConfig, type AppConfig } from '../lib/config/load';
import { connectClient } from '../lib/temporal/connect';
import { runsInFlight, triggerOwnRun } from '../lib/temporal/schedules';
import { describeRun, type RunView } from '../lib/temporal/workflows';
import {
  describeQueueWorkers,
  describeServing,
  served,
  type QueueWorkers,
} from '../lib/temporal/pollers';
import { createDb } from '../lib/pool-state/db';
import { PoolRepository } from '../lib/pool-state/repository';
import { currentLevels } from '../lib/pool-state/levels';
import { RunRepository } from '../lib/pool-state/runs';
import { drainPoolWorkflow, reconcileWorkflow, syncOsWorkflow } from '../workflows';
import {
  fillProgressQuery,
  scheduleIds,
  syncOsWorkflowId,
  type DrainInput,
  type FillProgress,
} from '../contracts/fill';

class UsageError extends Error {}

const USAGE = `usage: npm run pool -- <status|fill-now|sync-os|drain|pause|resume|reconcile> [options]
  fill-now [--wait]
  drain [--os "<os>"] [--type <type>] [--zone <zone>] [--stale]
  pause [--reason "<why>"]`;

const COMMANDS = [
  'status',
  'fill-now',
  'sync-os',
  'drain',
  'pause',
  'resume',
  'reconcile',
] as const;
type Command = (typeof COMMANDS)[number];

function table(rows: Record<string, string | number>[]): string {
  if (rows.length === 0) return '(none)';
  const cols = Object.keys(rows[0] as object);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i] as number)).join('  ');
  return [
    line(cols),
    line(width.map((w) => '-'.repeat(w))),
    ...rows.map((r) => line(cols.map((c) => String(r[c])))),
  ].join('\n');
}

async function status(config: AppConfig, client: Client): Promise<void> {
  const db = createDb(config.databaseUrl, 2);
  try {
    const levels = await currentLevels(config, db);
    const zoned = levels.some((l) => l.zone !== '');
    console.log(
      table(
        levels.map((l) => ({
          type: l.volumeType,
          os: l.os,
          ...(zoned ? { zone: l.zone } : {}),
          floor: l.floor,
          target: l.target,
          available: l.available,
          creating: l.creating,
          reserved: l.reserved,
          stale: l.stale,
          deleting: l.deleting,
          flagged: l.flagged,
          missing: l.missing,
        })),
      ),
    );
    const run = await new RunRepository(db).last<FillProgress>('fill');
    if (run) {
      const s = run.summary;
      // A fill records its counts when it ends; one in flight shows below, with its schedule.
      console.log(
        run.finishedAt
          ? `\nlast fill: ${run.startedAt.toISOString()} finished; ` +
              `planned ${s.planned}, available ${s.available}, failed ${s.failed}, drained ${s.drained}` +
              (s.stoppedBy ? `; stopped by ${s.stoppedBy}` : '') +
              (s.skipped?.length
                ? `; skipped: ${s.skipped.map((k) => `${k.type}/${k.os}${k.zone ? `@${k.zone}` : ''}`).join(', ')}`
                : '')
          : `\nlast fill: ${run.startedAt.toISOString()} RUNNING (its counts are recorded when it ends)`,
      );
    }
    // Volumes Cinder refuses to delete: the operator's to look at (the check retries them).
    const flagged = (await new PoolRepository(db).listAll()).filter((r) => r.status === 'flagged');
    if (flagged.length) {
      console.log(`\nflagged (Cinder refuses to delete them; retried by every check):`);
      for (const r of flagged)
        console.log(
          `  ${r.volumeId} ${r.name}: ${r.deleteAttempts} attempt(s), last: ${r.lastError ?? '-'}`,
        );
    }
  } finally {
    await db.end();
  }
  const workers = await queueWorkers(config, client).catch((err: Error) => {
    console.log(`\nworkers: unknown, Temporal did not describe task queue: ${err.message}`);
    return null;
  });
  if (!workers) return;
  console.log(
    `\nworkers: ${describeServing(workers)}` +
      (served(workers) ? '' : ': fills, checks and claims wait until one does (npm run worker)'),
  );
  const schedules = await Promise.all(
    Object.values(scheduleIds(config.temporal.schedulePrefix)).map((id) =>
      scheduleLines(client, workers, id),
    ),
  );
  for (const lines of schedules) for (const line of lines) console.log(line);
  console.log(`Web UI: ${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/schedules`);
}

const queueWorkers = (config: AppConfig, client: Client) =>
  describeQueueWorkers(client, config.temporal.namespace, config.temporal.taskQueue);

const seconds = (from: Date) => Math.round((Date.now() - from.getTime()) / 1000);

/** A schedule's state and its runs in flight, each from the server's records. */
async function scheduleLines(client: Client, workers: QueueWorkers, id: string): Promise<string[]> {
  let d;
  try {
    d = await client.schedule.getHandle(id).describe();
  } catch {
    return [`schedule ${id}: not created (start the worker)`];
  }
  const next = d.info.nextActionTimes[0]?.toISOString() ?? '-';
  const running = await runsInFlight(client, d);
  const lines = [
    `schedule ${id}: ${d.state.paused ? `PAUSED (${d.state.note ?? ''})` : 'active'}, next ${next}, running ${running.length}`,
  ];
  for (const r of running)
    lines.push(`  ${r.workflowId}: ${await runLine(client, workers, r.workflowId, r.runId)}`);
  return lines;
}

/**
 * One line on a run in flight: how long, on which build, what it waits for; a fill's progress
 * (its query) only when a worker of its build polls, and then within 1.5 s.
 */
async function runLine(
  client: Client,
  workers: QueueWorkers,
  workflowId: string,
  runId: string,
): Promise<string> {
  let v: RunView;
  try {
    v = await describeRun(client, workflowId, runId);
  } catch (err) {
    return `not described: ${(err as Error).message}`;
  }
  const build = v.buildId ?? undefined; // not pinned yet: it goes where new runs go
  const parts = [
    `${v.status.toLowerCase()} since ${v.startedAt.toISOString()} (${seconds(v.startedAt)} s)` +
      (v.buildId ? ` on build ${v.buildId}` : ''),
  ];
  if (v.pendingActivities.length) parts.push(`pending: ${v.pendingActivities.join(', ')}`);
  if (v.taskWaitingSince)
    parts.push(`a workflow task waits for a worker since ${seconds(v.taskWaitingSince)} s`);
  if (v.status !== 'RUNNING') return parts.join('; ');
  if (!served(workers, build)) {
    parts.push(`progress unknown: ${describeServing(workers, build)}`);
    return parts.join('; ');
  }
  const p = await fillProgress(client, workflowId, runId);
  if (p) parts.push(progressLine(p));
  return parts.join('; ');
}

/** A fill's progress by its query, or null within 1.5 s (a run that is not a fill, or stuck). */
function fillProgress(client: Client, workflowId: string, runId?: string) {
  const handle = client.workflow.getHandle(workflowId, runId);
  return client.connection
    .withDeadline(Date.now() + 1500, () => handle.query(fillProgressQuery))
    .catch(() => null);
}

const progressLine = (p: FillProgress) =>
  `${p.phase}: ${p.available}/${p.planned} available, ${p.inFlight} in flight, ${p.failed} failed`;

/**
 * Waits for a run's result, saying every few seconds what it does (from the server's records;
 * a fill's own progress when a worker of its build polls) and plainly when no worker polls.
 * `fill`: show the fill's progress query, else the run's pending activities.
 */
async function awaitRun<T>(
  client: Client,
  config: AppConfig,
  handle: WorkflowHandle,
  opts: { fill?: boolean; runId?: string } = {},
): Promise<T> {
  const done = handle.result() as Promise<T>; // one long poll for the whole wait
  const ended = done.then(
    () => true,
    () => true, // its failure is thrown by `return done`
  );
  let said = '';
  let saidAt = 0;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      ended,
      new Promise<false>((r) => (timer = setTimeout(() => r(false), 3000))),
    ]).finally(() => clearTimeout(timer));
    if (finished) return done;
    const workers = await queueWorkers(config, client);
    const v = await describeRun(client, handle.workflowId, opts.runId).catch(() => null);
    const build = v?.buildId ?? undefined;
    let line: string;
    if (!served(workers, build))
      line = `waiting: ${describeServing(workers, build)}; the run goes on when one polls (Ctrl-C leaves it running)`;
    else {
      const p = opts.fill ? await fillProgress(client, handle.workflowId, opts.runId) : null;
      line = p
        ? progressLine(p)
        : `running ${v ? seconds(v.startedAt) : '?'} s` +
          (v?.pendingActivities.length ? `; pending: ${v.pendingActivities.join(', ')}` : '');
    }
    // Say what changed, and at least every 30 s that it still waits.
    if (line !== said || Date.now() - saidAt > 30_000) {
      console.log(`  ${line}`);
      said = line;
      saidAt = Date.now();
    }
  }
}

/** Refuses (exit 1) when no worker takes new workflows: `what` would wait for one. */
async function needWorker(config: AppConfig, client: Client, what: string): Promise<void> {
  const workers = await queueWorkers(config, client);
  if (!served(workers))
    throw new Error(
      `${describeServing(workers)}: ${what} would wait for one. Start the worker (npm run worker) and run this again`,
    );
}

/**
 * A fill now. One fill runs at a time: with one in flight, plain fill-now triggers nothing and
 * says so; `--wait` waits for it to end, then triggers a fill and waits for that run (the one
 * its trigger started) to close, so the pool is filled from the state the earlier one left.
 * With no worker polling, `--wait` exits 1 at once (nothing would run the fill); plain fill-now
 * triggers it and says it starts when a worker polls.
 */
async function fillNow(config: AppConfig, client: Client, wait: boolean): Promise<void> {
  const id = scheduleIds(config.temporal.schedulePrefix).fill;
  const handle = client.schedule.getHandle(id);
  const [d, workers] = await Promise.all([
    handle.describe().catch(() => {
      throw new Error(`schedule ${id} does not exist: start the worker, it creates the schedules`);
    }),
    queueWorkers(config, client),
  ]);
  if (wait && !served(workers))
    throw new Error(
      `${describeServing(workers)}: a fill would wait for one, so nothing was triggered. Start the worker (npm run worker), or run fill-now without --wait to queue a fill for it`,
    );
  if (d.state.paused)
    console.log(`schedule ${id} is PAUSED (${d.state.note ?? ''}): triggering anyway`);
  const ahead = (await runsInFlight(client, d))[0];
  if (ahead)
    console.log(
      `fill ${ahead.workflowId} is running since ${ahead.startedAt.toISOString()}: ` +
        (wait
          ? 'the new fill starts when it ends (one fill at a time)'
          : 'nothing triggered (one fill at a time); fill-now --wait waits for it, then runs one'),
    );
  if (!wait) {
    if (ahead) return;
    await handle.trigger(ScheduleOverlapPolicy.BUFFER_ONE);
    console.log(
      `triggered ${id}` +
        (served(workers) ? '' : `; ${describeServing(workers)}: the fill starts when one polls`),
    );
    return;
  }
  const mine = await triggerOwnRun(client, handle, {
    // The one ahead must end first: say what it does, and give up if nothing would run it.
    whileBehind: async (run) => {
      const now = await queueWorkers(config, client);
      const v = await describeRun(client, run.workflowId, run.runId).catch(() => null);
      const build = v?.buildId ?? undefined;
      if (!served(now, build))
        throw new Error(
          `fill ${run.workflowId} ahead cannot end: ${describeServing(now, build)}; nothing was triggered`,
        );
      const p = await fillProgress(client, run.workflowId, run.runId);
      console.log(`  waiting for ${run.workflowId} to end${p ? `: ${progressLine(p)}` : ''}`);
    },
  });
  if (!mine) throw new Error(`the schedule started no fill for this trigger (${id})`);
  console.log(
    `triggered ${id}: fill ${mine.workflowId} (run ${mine.runId}) started ${mine.startedAt.toISOString()}`,
  );
  const p = await awaitRun<FillProgress>(
    client,
    config,
    client.workflow.getHandle(mine.workflowId, mine.runId),
    { fill: true, runId: mine.runId },
  );
  console.log(
    `fill done: ${p.available}/${p.planned} available, ${p.failed} failed${p.stoppedBy ? `, stopped by ${p.stoppedBy}` : ''}`,
  );
}

async function run(
  cmd: Command,
  values: Record<string, string | boolean | undefined>,
): Promise<void> {
  const config = loadConfig();
  const client = await connectClient(config, 5000);
  const ids = scheduleIds(config.temporal.schedulePrefix);
  const prefix = config.temporal.schedulePrefix;
  // One run of each job at a time: a second start joins the running one. A worker must poll.
  const start = async <W extends Workflow>(workflow: W, id: string, ...args: Parameters<W>) => {
    await needWorker(config, client, `${cmd}`);
    const handle = await client.workflow.start(workflow as Workflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: id,
      args,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    });
    return awaitRun<Awaited<ReturnType<W>>>(client, config, handle, {
      runId: handle.firstExecutionRunId,
    });
  };
  try {
    switch (cmd) {
      case 'status':
        return await status(config, client);
      case 'fill-now':
        return await fillNow(config, client, !!values.wait);
      case 'sync-os': {
        const r = await start(syncOsWorkflow, syncOsWorkflowId(prefix));
        // The zone last (when the pool names zones): a pool per (type, OS, zone), each with its
        // own zone's snapshot under the same name.
        const zoned = r.images.some((i) => i.zone !== '');
        console.log(
          table(
            r.images.map((i) => ({
              type: i.type,
              os: i.os,
              snapshot: i.snapshotName,
              ...(zoned ? { zone: i.zone } : {}),
            })),
          ),
        );
        for (const s of r.skipped)
          console.warn(
            `skipped ${s.type}/${s.os}${s.zone ? ` in zone ${s.zone}` : ''}: ${s.reason}`,
          );
        return;
      }
      case 'drain': {
        const os = values.os as string | undefined;
        const type = values.type as string | undefined;
        if (os && !config.pool.targets.some((t) => t.os === os)) {
          throw new UsageError(
            `unknown OS ${JSON.stringify(os)}; configured: ${[...new Set(config.pool.targets.map((t) => t.os))].join(', ')}`,
          );
        }
        if (type && !config.pool.volumeTypes.includes(type)) {
          throw new UsageError(
            `unknown volume type ${JSON.stringify(type)}; configured: ${config.pool.volumeTypes.join(', ')}`,
          );
        }
        const zone = values.zone as string | undefined;
        if (zone !== undefined && !config.pool.zones.includes(zone)) {
          throw new UsageError(
            `unknown zone ${JSON.stringify(zone)}; configured: ${config.pool.zones.join(', ') || 'none'}`,
          );
        }
        const drain: DrainInput = {
          os,
          type,
          ...(zone ? { zone } : {}),
          staleOnly: !!values.stale,
        };
        const r = await start(drainPoolWorkflow, `${prefix}-drain`, drain);
        console.log(
          `drained ${r.drained} of ${r.total} idle volume(s)${r.skipped ? `, ${r.skipped} taken by claims meanwhile` : ''}`,
        );
        return;
      }
      case 'pause':
      case 'resume':
        for (const id of Object.values(ids)) {
          const h = client.schedule.getHandle(id);
          if (cmd === 'pause')
            await h.pause((values.reason as string | undefined) ?? 'paused by operator');
          else await h.unpause('resumed by operator');
          console.log(`${cmd === 'pause' ? 'paused' : 'resumed'} ${id}`);
        }
        return;
      case 'reconcile': {
        const r = await start(reconcileWorkflow, `${prefix}-reconcile`);
        console.log(
          `reconcile: ${r.tagged} tagged volumes; ${r.unknownSeenOnce} unknown seen once (acted on next pass); ` +
            `adopted ${r.adopted.length}, deleted ${r.deletedLeaks.length} leaks, removed ${r.rowsWithoutVolume} rows without volume`,
        );
        return;
      }
    }
  } finally {
    await client.connection.close();
  }
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      strict: true,
      options: {
        os: { type: 'string' },
        type: { type: 'string' },
        zone: { type: 'string' },
        stale: { type: 'boolean' },
        wait: { type: 'boolean' },
        reason: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const [cmd, ...extra] = parsed.positionals;
  if (parsed.values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!cmd || !(COMMANDS as readonly string[]).includes(cmd) || extra.length > 0) {
    console.error(
      `${cmd ? `unknown command or extra arguments: ${parsed.positionals.join(' ')}` : 'no command given'}\n${USAGE}`,
    );
    return 2;
  }
  try {
    await run(cmd as Command, parsed.values);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(err.message);
      return 2;
    }
    console.error(`pool ${cmd} failed: ${(err as Error).message}`);
    return 1;
  }
}

main().then((code) => process.exit(code));
