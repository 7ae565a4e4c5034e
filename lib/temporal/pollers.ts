/**
 * Who serves a task queue, read from the server (DescribeTaskQueue's pollers, workflow and
 * activity tasks), never by asking a workflow: a query waits for a worker, so the operator's view
 * would hang exactly when no worker runs.
 *
 * The server lists a poller for minutes after it is gone, with the time of its last poll; a live
 * worker renews that time at least once per long poll (about a minute, measured on the dev server
 * 1.32), so an entry older than POLL_FRESH_MS is a worker gone. A worker that shuts down cleanly
 * says so at once (its last heartbeat, ListWorkers): its entry counts as gone from then.
 *
 * Worker Versioning: each poller carries its build id (`deploymentOptions`). A new workflow goes to
 * the deployment's current version (`versioningInfo` of the queue); a pinned run stays on the
 * build it started on, so "a worker polls" means one of that build.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { optionalTsToMs } from '@temporalio/common/lib/time';

/** A live worker renews its poller entry at least this often (one long poll, plus margin). */
export const POLL_FRESH_MS = 70_000;
/** A poll this soon after a worker's shutdown heartbeat is that worker's last (clock skew). */
const SHUTDOWN_SLACK_MS = 5_000;

export type TaskKind = 'workflow' | 'activity';

export interface Poller {
  identity: string;
  kind: TaskKind;
  /** The worker's build (Worker Versioning); null: an unversioned worker. */
  buildId: string | null;
  lastSeen: Date;
}

/** A worker's clean stop, as its last heartbeat tells. */
export interface Shutdown {
  identity: string;
  at: Date;
}

export interface QueueWorkers {
  taskQueue: string;
  /** Where new workflows go: the deployment's current build; null: to unversioned workers. */
  currentBuild: string | null;
  /** Pollers that poll now: seen within POLL_FRESH_MS and not shut down since. */
  live: Poller[];
  /** The last poll of any worker, gone or not; null: the server lists none. */
  lastPoll: Date | null;
}

/** The pollers still polling at `now`: recently seen, and not shut down since their last poll. */
export function livePollers(pollers: Poller[], shutdowns: Shutdown[], now: Date): Poller[] {
  return pollers.filter(
    (p) =>
      now.getTime() - p.lastSeen.getTime() <= POLL_FRESH_MS &&
      !shutdowns.some(
        (s) =>
          s.identity === p.identity && p.lastSeen.getTime() <= s.at.getTime() + SHUTDOWN_SLACK_MS,
      ),
  );
}

const KINDS: [TaskKind, temporal.api.enums.v1.TaskQueueType][] = [
  ['workflow', temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW],
  ['activity', temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY],
];

/** Reads the queue's pollers (both kinds) and the clean stops of its workers: three calls. */
export async function describeQueueWorkers(
  client: Client,
  namespace: string,
  taskQueue: string,
  now = new Date(),
): Promise<QueueWorkers> {
  const service = client.workflowService;
  const [described, shutdowns] = await Promise.all([
    Promise.all(
      KINDS.map(async ([kind, taskQueueType]) => ({
        kind,
        r: await service.describeTaskQueue({
          namespace,
          taskQueue: {
            name: taskQueue,
            kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
          },
          taskQueueType,
        }),
      })),
    ),
    cleanStops(client, namespace, taskQueue),
  ]);
  const pollers: Poller[] = described.flatMap(({ kind, r }) =>
    (r.pollers ?? []).map((p) => ({
      identity: p.identity ?? '',
      kind,
      buildId: p.deploymentOptions?.buildId || null,
      lastSeen: new Date(optionalTsToMs(p.lastAccessTime) ?? 0),
    })),
  );
  const routing = described[0]?.r.versioningInfo;
  const lastPoll = pollers.reduce<Date | null>(
    (a, p) => (a && a >= p.lastSeen ? a : p.lastSeen),
    null,
  );
  return {
    taskQueue,
    currentBuild: routing?.currentDeploymentVersion?.buildId || null,
    live: livePollers(pollers, shutdowns, now),
    lastPoll,
  };
}

const STOPPED = new Set<number>([
  temporal.api.enums.v1.WorkerStatus.WORKER_STATUS_SHUTTING_DOWN,
  temporal.api.enums.v1.WorkerStatus.WORKER_STATUS_SHUTDOWN,
]);

/**
 * The queue's workers that said they stop, with the time they said it. Servers without worker
 * heartbeats (ListWorkers unimplemented or off) give none: then only the poll's age counts.
 */
async function cleanStops(
  client: Client,
  namespace: string,
  taskQueue: string,
): Promise<Shutdown[]> {
  const service = client.workflowService;
  const listed = await service
    .listWorkers({
      namespace,
      pageSize: 100,
      query: `TaskQueue = '${taskQueue.replace(/'/g, "\\'")}'`,
    })
    .catch(() => null);
  const stopped = (listed?.workers ?? []).filter((w) => STOPPED.has(w.status ?? 0));
  const described = await Promise.all(
    stopped.map((w) =>
      service
        .describeWorker({ namespace, workerInstanceKey: w.workerInstanceKey ?? '' })
        .then((d) => ({
          identity: w.workerIdentity ?? '',
          at: optionalTsToMs(d.workerInfo?.workerHeartbeat?.heartbeatTime),
        }))
        .catch(() => null),
    ),
  );
  return described.flatMap((s) =>
    s?.at === undefined ? [] : [{ identity: s.identity, at: new Date(s.at) }],
  );
}

/**
 * Live pollers of each kind for a build: `buildId` undefined means where new workflows go (the
 * current build, or any worker on an unversioned queue); a string, one pinned run's build.
 */
export function pollersFor(q: QueueWorkers, buildId?: string | null): Record<TaskKind, number> {
  const build = buildId === undefined ? q.currentBuild : buildId;
  const of = (kind: TaskKind) =>
    new Set(
      q.live
        .filter((p) => p.kind === kind && (build === null || p.buildId === build))
        .map((p) => p.identity),
    ).size;
  return { workflow: of('workflow'), activity: of('activity') };
}

/** Whether some worker takes both kinds of tasks for that build (see pollersFor). */
export function served(q: QueueWorkers, buildId?: string | null): boolean {
  const n = pollersFor(q, buildId);
  return n.workflow > 0 && n.activity > 0;
}

const ago = (from: Date, now: Date) => {
  const s = Math.max(0, Math.round((now.getTime() - from.getTime()) / 1000));
  return s < 120
    ? `${s} s ago`
    : s < 7200
      ? `${Math.round(s / 60)} min ago`
      : `${Math.round(s / 3600)} h ago`;
};

/**
 * One line for an operator: who polls, or plainly that nobody does (and when a worker last
 * polled). `buildId` as in pollersFor.
 */
export function describeServing(
  q: QueueWorkers,
  buildId?: string | null,
  now = new Date(),
): string {
  const n = pollersFor(q, buildId);
  const build = buildId === undefined ? q.currentBuild : buildId;
  const of = build ? ` of build ${build}` : '';
  if (n.workflow > 0 && n.activity > 0)
    return `${Math.max(n.workflow, n.activity)} worker(s)${of} poll task queue ${q.taskQueue}`;
  const what =
    n.workflow === 0 && n.activity === 0
      ? 'polls'
      : `takes ${n.workflow === 0 ? 'workflow' : 'activity'} tasks from`;
  const others = [...new Set(q.live.map((p) => p.buildId ?? 'unversioned'))].filter(
    (b) => b !== build,
  );
  return (
    `NO WORKER${of} ${what} task queue ${q.taskQueue}` +
    (q.lastPoll ? ` (last seen ${ago(q.lastPoll, now)})` : ' (none in the last minutes)') +
    (others.length ? `; workers of build ${others.join(', ')} do` : '')
  );
}
