/**
 * The operator's CLI: `npm run pool -- <command> [options]`.
 *
 *   status                      levels per type × OS, schedules, the last fill
 *   fill-now [--wait]           trigger the fill schedule now (skipped if a fill is running)
 *   sync-os                     rebuild the OS table from Cinder's snapshots
 *   drain [--os X] [--type T] [--stale]   delete idle stock (all, of one pool, or only stale)
 *   pause [--reason R] | resume the fill and check schedules
 *   reconcile                   one leak/consistency pass now
 *
 * Exit codes: 0 done, 1 failed, 2 bad usage.
 */
import { parseArgs } from 'node:util';
import {
  ScheduleOverlapPolicy,
  WorkflowIdConflictPolicy,
  type Client,
  type Workflow,
} from '@temporalio/client';
import { loadConfig, type AppConfig } from '../lib/config/load';
import { connectClient } from '../lib/temporal/connect';
import { findTriggeredRun } from '../lib/temporal/schedules';
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
  drain [--os "<os>"] [--type <type>] [--stale]
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
    console.log(
      table(
        levels.map((l) => ({
          type: l.volumeType,
          os: l.os,
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
      console.log(
        `\nlast fill: ${run.startedAt.toISOString()} ${run.finishedAt ? 'finished' : 'RUNNING'}; ` +
          `planned ${s.planned}, available ${s.available}, failed ${s.failed}, drained ${s.drained}` +
          (s.stoppedBy ? `; stopped by ${s.stoppedBy}` : '') +
          (s.skipped?.length
            ? `; skipped: ${s.skipped.map((k) => `${k.type}/${k.os}`).join(', ')}`
            : ''),
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
  for (const id of Object.values(scheduleIds(config.temporal.schedulePrefix))) {
    try {
      const d = await client.schedule.getHandle(id).describe();
      const next = d.info.nextActionTimes[0]?.toISOString() ?? '-';
      const running = d.info.runningActions.length;
      console.log(
        `schedule ${id}: ${d.state.paused ? `PAUSED (${d.state.note ?? ''})` : 'active'}, next ${next}, running ${running}`,
      );
      for (const a of d.info.runningActions) {
        try {
          const p = await client.workflow
            .getHandle(a.workflow.workflowId, a.workflow.firstExecutionRunId)
            .query(fillProgressQuery);
          console.log(
            `  ${a.workflow.workflowId}: ${p.phase}, ${p.available}/${p.planned} available, ${p.inFlight} in flight`,
          );
        } catch {
          /* not every scheduled workflow has a progress query */
        }
      }
    } catch {
      console.log(`schedule ${id}: not created (start the worker)`);
    }
  }
  console.log(`Web UI: ${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/schedules`);
}

async function follow(
  client: Client,
  workflowId: string,
  runId: string | undefined,
): Promise<FillProgress> {
  const handle = client.workflow.getHandle(workflowId, runId);
  const done = handle.result() as Promise<FillProgress>; // one long poll for the whole wait
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const winner = await Promise.race([
      done,
      new Promise<null>((r) => (timer = setTimeout(() => r(null), 2000))),
    ]).finally(() => clearTimeout(timer));
    if (winner) return winner;
    const p = await handle.query(fillProgressQuery).catch(() => null);
    if (p)
      console.log(
        `  ${p.phase}: ${p.available}/${p.planned} available, ${p.inFlight} in flight, ${p.failed} failed`,
      );
  }
}

async function run(
  cmd: Command,
  values: Record<string, string | boolean | undefined>,
): Promise<void> {
  const config = loadConfig();
  const client = await connectClient(config, 5000);
  const ids = scheduleIds(config.temporal.schedulePrefix);
  const prefix = config.temporal.schedulePrefix;
  // One run of each job at a time: a second start joins the running one.
  const start = <W extends Workflow>(workflow: W, id: string, ...args: Parameters<W>) =>
    client.workflow.execute(workflow as Workflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: id,
      args,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    }) as ReturnType<W>;
  try {
    switch (cmd) {
      case 'status':
        return await status(config, client);
      case 'fill-now': {
        const handle = client.schedule.getHandle(ids.fill);
        const before = new Date();
        await handle.trigger(ScheduleOverlapPolicy.SKIP);
        console.log(`triggered ${ids.fill} (a fill already running makes this a no-op)`);
        if (values.wait) {
          const run = await findTriggeredRun(handle, before);
          if (!run) throw new Error('the schedule started no fill (is it paused?)');
          const p = await follow(client, run.workflowId, run.runId);
          console.log(
            `fill done: ${p.available}/${p.planned} available, ${p.failed} failed${p.stoppedBy ? `, stopped by ${p.stoppedBy}` : ''}`,
          );
        }
        return;
      }
      case 'sync-os': {
        const r = await start(syncOsWorkflow, syncOsWorkflowId(prefix));
        console.log(
          table(r.images.map((i) => ({ type: i.type, os: i.os, snapshot: i.snapshotName }))),
        );
        for (const s of r.skipped) console.warn(`skipped ${s.type}/${s.os}: ${s.reason}`);
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
        const drain: DrainInput = { os, type, staleOnly: !!values.stale };
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
