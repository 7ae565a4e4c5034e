/**
 * What bench:burst watches around a burst: its worker processes (each with its SDK metrics on a
 * port of its own), the task queue's backlog, pollers and free slots, where the claims' first
 * workflow task waited, and PostgreSQL's connections.
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { tsToMs } from '@temporalio/common/lib/time';
import type { AppConfig } from '../../lib/config/load';
import type { Db } from '../../lib/pool-state/db';
import { claimWorkflowId } from '../../contracts/claim';
import { exited, spawnWorker } from '../../test/support/pool';
import { sleep, waitFor } from '../../test/support/env';

export const quantile = (ms: number[], p: number) => {
  const s = [...ms].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)] as number;
};
export const describe = (ms: number[]) =>
  `p50 ${quantile(ms, 0.5).toFixed(0)} ms, p99 ${quantile(ms, 0.99).toFixed(0)} ms`;

/** Runs `fn` over `items`, `limit` at a time. */
export async function eachLimited<T>(items: T[], limit: number, fn: (t: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** The first port of the workers' metrics endpoints (one port each). */
export const METRICS_PORT = Number(process.env.BENCH_METRICS_PORT ?? 9480);

/**
 * Worker processes on the bench's task queue; resolves once all of them poll it. With
 * `metrics`, worker i serves the SDK's metrics on 127.0.0.1:METRICS_PORT+i (its task slots).
 */
export async function startWorkers(
  client: Client,
  config: AppConfig,
  env: NodeJS.ProcessEnv,
  count: number,
  metrics = false,
) {
  const since = Date.now();
  const envOf = (i: number): NodeJS.ProcessEnv =>
    metrics
      ? { ...env, POOL__TEMPORAL__WORKER_METRICS_ADDRESS: `127.0.0.1:${METRICS_PORT + i}` }
      : env;
  const children = Array.from({ length: count }, (_, i) => ({ i, child: spawnWorker(envOf(i)) }));
  await waitFor(
    `${count} worker(s) polling`,
    async () => {
      for (const { child } of children)
        if (child.exitCode !== null) throw new Error(`worker exited: ${child.output()}`);
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
    pids: () => children.map(({ child }) => child.pid).filter((p): p is number => !!p),
    metricsUrls: () =>
      metrics ? children.map(({ i }) => `http://127.0.0.1:${METRICS_PORT + i}/metrics`) : [],
    /** SIGKILL the first worker and start a new one in its place (on its metrics port). */
    async restartOne() {
      const [victim] = children.splice(0, 1);
      if (!victim) return;
      victim.child.kill('SIGKILL');
      await exited(victim.child);
      children.push({ i: victim.i, child: spawnWorker(envOf(victim.i)) });
    },
    async stop() {
      for (const { child } of children) child.kill('SIGTERM');
      await Promise.all(children.map(({ child }) => exited(child)));
    },
  };
}

/**
 * Samples the claim task queue every second during a burst: its backlog (the server's task
 * queue stats), its pollers, and the workers' free workflow-task slots (their SDK metrics).
 */
export function queueWatch(
  client: Client,
  config: AppConfig,
  metricsUrls: string[],
  workerPids: () => number[],
) {
  let running = true;
  let peakBacklog = 0;
  let maxAgeMs = 0;
  let minPollers = Infinity;
  let minFreeSlots = Infinity;
  let samples = 0;
  const slots = async (url: string) => {
    const text = await fetch(url).then((r) => r.text());
    const m = /worker_task_slots_available\{[^}]*worker_type="WorkflowWorker"[^}]*\} (\d+)/.exec(
      text,
    );
    return m ? Number(m[1]) : NaN;
  };
  const loop = (async () => {
    while (running) {
      try {
        const res = await client.workflowService.describeTaskQueue({
          namespace: config.temporal.namespace,
          taskQueue: { name: config.temporal.taskQueue },
          taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
          reportStats: true,
        });
        const stats = res.stats;
        peakBacklog = Math.max(peakBacklog, Number(stats?.approximateBacklogCount ?? 0));
        maxAgeMs = Math.max(maxAgeMs, Number(stats?.approximateBacklogAge?.seconds ?? 0) * 1000);
        // The fleet's pollers seen in the last 10 s (a poller's identity is pid@host).
        const pids = new Set(workerPids().map(String));
        const fresh = (res.pollers ?? []).filter(
          (p) =>
            Date.now() - Number(p.lastAccessTime?.seconds ?? 0) * 1000 < 10_000 &&
            pids.has(String(p.identity).split('@')[0] as string),
        );
        minPollers = Math.min(minPollers, new Set(fresh.map((p) => p.identity)).size);
        for (const url of metricsUrls) {
          const free = await slots(url).catch(() => NaN);
          if (!Number.isNaN(free)) minFreeSlots = Math.min(minFreeSlots, free);
        }
        samples++;
      } catch {
        // A sample lost under load says nothing; the next one comes in a second.
      }
      await sleep(1000);
    }
  })();
  return {
    async stop(): Promise<string> {
      running = false;
      await loop;
      return (
        `${samples} samples: backlog peak ${peakBacklog} workflow tasks, oldest ${(maxAgeMs / 1000).toFixed(0)} s; ` +
        `worker processes polling: min ${minPollers === Infinity ? '?' : minPollers}; ` +
        `free workflow-task slots: min ${minFreeSlots === Infinity ? '?' : minFreeSlots} of 100 per worker`
      );
    },
  };
}

const EV = temporal.api.enums.v1.EventType;

/**
 * Where a claim's first workflow task waited, from the histories of (up to 300 of) the claims:
 * the server scheduling it after the start, the task waiting in the queue for a worker's poll
 * (all slots busy or too few pollers), and the task itself on the worker (the hand-off's Cinder
 * calls run inside it, as a local activity).
 */
export async function firstTaskWait(client: Client, requestIds: string[]): Promise<string> {
  const step = Math.max(1, Math.floor(requestIds.length / 300));
  const parts: Record<string, number[]> = {
    'start → scheduled': [],
    'scheduled → picked up (queue wait)': [],
    'picked up → completed (on the worker)': [],
  };
  const sample = requestIds.filter((_, i) => i % step === 0);
  await eachLimited(sample, 8, async (requestId) => {
    const events =
      (await client.workflow.getHandle(claimWorkflowId(requestId)).fetchHistory()).events ?? [];
    type Event = (typeof events)[number];
    const at = (e: Event | undefined) => (e?.eventTime ? tsToMs(e.eventTime) : NaN);
    const first = (t: number) => events.find((e) => e.eventType === t);
    const started = at(events[0]);
    const scheduled = at(first(EV.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED));
    const picked = at(first(EV.EVENT_TYPE_WORKFLOW_TASK_STARTED));
    const done = at(first(EV.EVENT_TYPE_WORKFLOW_TASK_COMPLETED));
    parts['start → scheduled']?.push(scheduled - started);
    parts['scheduled → picked up (queue wait)']?.push(picked - scheduled);
    parts['picked up → completed (on the worker)']?.push(done - picked);
  });
  return Object.entries(parts)
    .map(([k, v]) => `${k} ${describe(v.filter((x) => !Number.isNaN(x)))}`)
    .join('; ');
}

/** Samples PostgreSQL's open connections until stopped; the peak and the server's limit. */
export function connectionWatch(db: Db) {
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
