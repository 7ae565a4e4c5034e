/**
 * The claim task queue's backlog, read from the server (DescribeTaskQueue with `reportStats`):
 * how many workflow tasks wait, how old the oldest is, and how fast the queue dispatches. The
 * API turns it into a Retry-After (when a running claim is worth asking about again) and into
 * admission control (`[api] max_claim_backlog`: past it, a new claim is refused before it starts).
 *
 * Read at most once per `ttlMs` however many requests ask (single flight: callers within the
 * period, or while a read runs, share it), and served stale for a while after that, while one
 * read refreshes it in the background: a burst of claims costs about one describe per second
 * and never waits on one. A failed read is kept for the period too (a burst during an outage
 * makes one call per period, not one per request), then tried again.
 *
 * What the server says (measured on the dev server, Temporal 1.32, default API mode): `stats` of
 * the WORKFLOW type counts the workflow tasks waiting in the normal queue, unversioned or routed
 * to a Worker Deployment's current version alike (the ENHANCED mode's per-version figures matched
 * it), with the age of the oldest and the add and dispatch rates (averaged over about
 * 30 s, so a rate lingers for a while after the workers stop). The server refreshes these about
 * every 5 s: a backlog shows up to 5 s late, in steps. `statsByPriorityKey` repeats them per
 * priority (one key, 3, without priorities); the ACTIVITY type's stats count activity tasks only;
 * the deprecated `taskQueueStatus.backlogCountHint` is one partition's and undercounts. Sticky
 * queues are not counted: a claim's later workflow tasks go to its worker's sticky queue, so the
 * count is, near enough, the claims whose first workflow task has not been dispatched.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { optionalTsToMs } from '@temporalio/common/lib/time';

export interface BacklogStats {
  /** Tasks waiting in the queue (approximate). */
  count: number;
  /** Age of the oldest waiting task, ms (0: none waits). */
  ageMs: number;
  /** Tasks dispatched per second, over the last 30 s (0: none, or the server did not say). */
  dispatchPerSecond: number;
  /** Tasks added per second, over the last 30 s. */
  addPerSecond: number;
}

export interface BacklogProbe {
  /** The queue's stats: cached, shared, at most one read per period (see the module's note). */
  get(): Promise<BacklogStats>;
}

/** What the probe reads with: the client's workflow service, or a stub of it (unit tests). */
export type DescribeTaskQueue = Pick<Client['workflowService'], 'describeTaskQueue'>;

export interface BacklogProbeOptions {
  /** How long one read answers every caller (default 1 s). */
  ttlMs?: number;
  /** Past the period, a read this young still answers at once while one refreshes it (5 s). */
  maxStaleMs?: number;
  /** A read that takes longer fails (default 2 s): a slow server never holds a claim. */
  timeoutMs?: number;
  now?: () => number;
}

/** A count or rate as a number ≥ 0 (approximateBacklogCount is a protobuf Long). */
const num = (v: unknown) => {
  const n =
    typeof (v as { toNumber?: unknown } | null)?.toNumber === 'function'
      ? (v as { toNumber(): number }).toNumber()
      : Number(v ?? 0);
  return Number.isFinite(n) && n > 0 ? n : 0;
};

/** The stats of one DescribeTaskQueue answer (none: an empty queue). */
export function statsOf(
  r: Awaited<ReturnType<DescribeTaskQueue['describeTaskQueue']>>,
): BacklogStats {
  const s = r.stats;
  return {
    count: num(s?.approximateBacklogCount),
    ageMs: num(optionalTsToMs(s?.approximateBacklogAge)),
    dispatchPerSecond: num(s?.tasksDispatchRate),
    addPerSecond: num(s?.tasksAddRate),
  };
}

/** Reads the workflow task queue's stats once. */
export async function readBacklog(
  service: DescribeTaskQueue,
  namespace: string,
  taskQueue: string,
): Promise<BacklogStats> {
  return statsOf(
    await service.describeTaskQueue({
      namespace,
      taskQueue: {
        name: taskQueue,
        kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
      },
      taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      reportStats: true,
    }),
  );
}

/**
 * The probe of one task queue, created once per process (api/server.ts). `client`: a Client or
 * anything with its `workflowService.describeTaskQueue`.
 */
export function backlogProbe(
  client: { workflowService: DescribeTaskQueue },
  config: { temporal: { namespace: string; taskQueue: string } },
  opts: BacklogProbeOptions = {},
): BacklogProbe {
  const ttlMs = opts.ttlMs ?? 1000;
  const maxStaleMs = Math.max(ttlMs, opts.maxStaleMs ?? 5000);
  const timeoutMs = opts.timeoutMs ?? 2000;
  const now = opts.now ?? Date.now;
  const { namespace, taskQueue } = config.temporal;

  /** The last read that ended (its value or its failure), and when it began. */
  let last: { at: number; value: Promise<BacklogStats>; ok: boolean } | undefined;
  /** The read under way, if any: every caller that needs one joins it. */
  let inFlight: Promise<BacklogStats> | undefined;

  const read = (): Promise<BacklogStats> => {
    if (inFlight) return inFlight;
    const at = now();
    let timer: NodeJS.Timeout | undefined;
    const p = Promise.race([
      readBacklog(client.workflowService, namespace, taskQueue),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`DescribeTaskQueue did not answer within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    inFlight = p;
    // Registered before any caller's: when a caller resumes, the read is the last one, not in flight.
    const ended = (ok: boolean) => () => {
      last = { at, value: p, ok };
      if (inFlight === p) inFlight = undefined;
    };
    p.then(ended(true), ended(false)); // also: a background refresh's failure is never unhandled
    return p;
  };

  return {
    get() {
      const age = last ? now() - last.at : Infinity;
      if (last && age < ttlMs) return last.value;
      if (last?.ok && age < maxStaleMs) {
        void read(); // refresh in the background; this caller takes the stale answer
        return last.value;
      }
      return read();
    },
  };
}

/** The Retry-After when the backlog is unknown, or tasks wait and nothing is dispatched. */
export const UNKNOWN_RETRY_SECONDS = 5;

export interface RetryAfterBounds {
  /** Never less (default 1 s). */
  minSeconds?: number;
  /** Never more (default 60 s): a caller asks again within a minute, whatever the estimate. */
  maxSeconds?: number;
  /** Tasks wait but nothing is dispatched (no worker polls) or the rate is unknown (5 s). */
  unknownSeconds?: number;
}

/**
 * Seconds until `tasks` waiting tasks have been dispatched at the queue's dispatch rate: when a
 * claim in that backlog has likely had its first workflow task. Bounded; with tasks waiting and
 * no known rate (no worker dispatches, or a fresh queue), a small default.
 */
export function retryAfterSeconds(
  tasks: number,
  dispatchPerSecond: number,
  bounds: RetryAfterBounds = {},
): number {
  const min = bounds.minSeconds ?? 1;
  const max = Math.max(min, bounds.maxSeconds ?? 60);
  const clamp = (s: number) => Math.min(max, Math.max(min, Math.ceil(s)));
  if (!(tasks > 0)) return min;
  if (!(dispatchPerSecond > 0) || !Number.isFinite(dispatchPerSecond))
    return clamp(bounds.unknownSeconds ?? UNKNOWN_RETRY_SECONDS);
  return clamp(tasks / dispatchPerSecond);
}
