/**
 * The pool's Temporal Schedules (durable cron): the fill every `backup_frequency_minute`, the
 * status check every `check_state_frequency_minute`. Overlap SKIP: a tick that finds the previous
 * run still going starts nothing. Created or updated from the configuration at worker start, so a
 * changed config plus a restart changes the schedules; a paused schedule stays paused.
 */
import {
  ScheduleAlreadyRunning,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleHandle,
  type ScheduleOptionsAction,
  type ScheduleSpec,
} from '@temporalio/client';
import type { AppConfig } from '../config/load';
import { FILL_WORKFLOWS, scheduleIds as idsOf } from '../../contracts/fill';

/** A scheduled run's timeout: several intervals, at least `minMinutes`. */
export const runTimeoutMs = (everyMinutes: number, minMinutes: number) =>
  Math.round(Math.max(minMinutes, 6 * everyMinutes) * 60_000);

interface Wanted {
  id: string;
  spec: ScheduleSpec;
  action: ScheduleOptionsAction;
  note: string;
}

function wanted(config: AppConfig): Wanted[] {
  const ids = idsOf(config.temporal.schedulePrefix);
  const taskQueue = config.temporal.taskQueue;
  return [
    {
      id: ids.fill,
      spec: { intervals: [{ every: Math.round(config.pool.fillEveryMinutes * 60_000) }] },
      action: {
        type: 'startWorkflow',
        workflowType: FILL_WORKFLOWS.fill,
        taskQueue,
        workflowId: ids.fill,
        args: [{ reason: 'schedule' }],
        // A backstop: a run that wedges (a bug, a dependency gone for hours) ends, and the
        // next tick starts a fresh one instead of being skipped forever.
        workflowRunTimeout: runTimeoutMs(config.pool.fillEveryMinutes, 2 * 60),
      },
      note: `fill every ${config.pool.fillEveryMinutes} min`,
    },
    {
      id: ids.check,
      spec: { intervals: [{ every: Math.round(config.pool.checkStateEveryMinutes * 60_000) }] },
      action: {
        type: 'startWorkflow',
        workflowType: FILL_WORKFLOWS.check,
        taskQueue,
        workflowId: ids.check,
        args: [],
        workflowRunTimeout: runTimeoutMs(config.pool.checkStateEveryMinutes, 30),
      },
      note: `status check every ${config.pool.checkStateEveryMinutes} min`,
    },
  ];
}

const policies = {
  overlap: ScheduleOverlapPolicy.SKIP,
  catchupWindow: '1 minute',
  pauseOnFailure: false,
} as const;

export async function ensureSchedules(client: Client, config: AppConfig): Promise<string[]> {
  const done: string[] = [];
  for (const w of wanted(config)) {
    try {
      await client.schedule.create({
        scheduleId: w.id,
        spec: w.spec,
        action: w.action,
        policies,
        state: { note: w.note },
      });
      done.push(`created ${w.id} (${w.note})`);
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      // update() may call the function more than once: it must only derive from `prev`.
      await client.schedule.getHandle(w.id).update((prev) => ({
        ...prev,
        spec: w.spec,
        action: w.action,
        policies: { ...prev.policies, ...policies },
      }));
      done.push(`updated ${w.id} (${w.note})`);
    }
  }
  return done;
}

/**
 * The run that covers a trigger made at `since`: the one running now, or the one the schedule
 * started since then (a fast run may already be over). Null if none shows up within `timeoutMs`.
 */
export async function findTriggeredRun(
  handle: ScheduleHandle,
  since: Date,
  timeoutMs = 10_000,
): Promise<{ workflowId: string; runId: string } | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const d = await handle.describe();
    const action =
      d.info.runningActions[0] ??
      d.info.recentActions.filter((a) => a.takenAt >= new Date(since.getTime() - 1000)).pop()
        ?.action;
    if (action)
      return { workflowId: action.workflow.workflowId, runId: action.workflow.firstExecutionRunId };
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A run a schedule started, and when. */
export interface ScheduledRun {
  workflowId: string;
  runId: string;
  startedAt: Date;
}

const runIdsOf = (d: ScheduleDescription) =>
  new Set([
    ...d.info.recentActions.map((a) => a.action.workflow.firstExecutionRunId),
    ...d.info.runningActions.map((a) => a.workflow.firstExecutionRunId),
  ]);

/**
 * The schedule's runs still open, each described by its own workflow: the schedule's running
 * list and recent statuses can lag or miss runs (seen on the dev server 1.32: runningActions
 * empty while a fill ran, and a trigger started a second fill beside it).
 */
export async function runsInFlight(
  client: Client,
  d: ScheduleDescription,
): Promise<ScheduledRun[]> {
  const ids = new Map<string, string>();
  for (const a of d.info.recentActions)
    ids.set(a.action.workflow.firstExecutionRunId, a.action.workflow.workflowId);
  for (const a of d.info.runningActions)
    ids.set(a.workflow.firstExecutionRunId, a.workflow.workflowId);
  const described = await Promise.all(
    [...ids].map(([runId, workflowId]) =>
      client.workflow
        .getHandle(workflowId, runId)
        .describe()
        .then((w) =>
          w.status.name === 'RUNNING' ? { workflowId, runId, startedAt: w.startTime } : null,
        )
        .catch(() => null),
    ),
  );
  return described
    .filter((r): r is ScheduledRun => r !== null)
    .sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
}

/**
 * Starts a run of the schedule now and returns that run, never one started before this call. A
 * run in flight goes first: this waits until none is open (one run at a time), calling
 * `whileBehind` about every 5 s with the one ahead (it may throw to give up), then triggers and
 * returns the first run the schedule did not know before the trigger (a tick that slipped in
 * between is that run: it also started after this call). Null if none shows up within
 * `appearMs`.
 */
export async function triggerOwnRun(
  client: Client,
  handle: ScheduleHandle,
  opts: { whileBehind?: (ahead: ScheduledRun) => Promise<void>; appearMs?: number } = {},
): Promise<ScheduledRun | null> {
  let d = await handle.describe();
  for (let polls = 0; ; polls++) {
    const ahead = (await runsInFlight(client, d))[0];
    if (!ahead) break;
    if (polls % 5 === 0) await opts.whileBehind?.(ahead);
    await new Promise((r) => setTimeout(r, 1000));
    d = await handle.describe();
  }
  const known = runIdsOf(d);
  // BUFFER_ONE: a run started between that check and this trigger keeps ours queued, not lost.
  await handle.trigger(ScheduleOverlapPolicy.BUFFER_ONE);
  const appearBy = Date.now() + (opts.appearMs ?? 15_000);
  for (;;) {
    const mine = (await handle.describe()).info.recentActions
      .filter((a) => !known.has(a.action.workflow.firstExecutionRunId))
      .sort((a, b) => a.takenAt.getTime() - b.takenAt.getTime())[0];
    if (mine)
      return {
        workflowId: mine.action.workflow.workflowId,
        runId: mine.action.workflow.firstExecutionRunId,
        startedAt: mine.takenAt,
      };
    if (Date.now() > appearBy) return null;
    await new Promise((r) => setTimeout(r, 300));
  }
}
