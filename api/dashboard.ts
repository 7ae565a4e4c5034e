/**
 * The operator's dashboard. GET /dashboard is a static page (no data, no key needed: nothing
 * outside the machine is loaded, its script and styles are inline); the page reads
 * GET /v1/dashboard with the API key the operator gives it in the URL's fragment
 * (`/dashboard#key=…`, never sent to a server or written in a log) and refreshes itself.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Client } from '@temporalio/client';
import type { AppConfig } from '../lib/config/load';
import type { Db } from '../lib/pool-state/db';
import { currentLevels } from '../lib/pool-state/levels';
import { ClaimLog } from '../lib/pool-state/claim-log';
import { RunRepository } from '../lib/pool-state/runs';
import { historyUrl } from '../lib/temporal/workflows';
import { describeQueueWorkers, describeServing, served } from '../lib/temporal/pollers';
import type { FillProgress } from '../contracts/fill';
import { dashboardDataRoute, dashboardPageRoute } from './schemas';

const PAGE = readFileSync(resolve(__dirname, 'dashboard.html'), 'utf8');

/** The page itself (outside the key check: it holds no data). */
export function registerDashboardPage(app: FastifyInstance): void {
  app.get('/dashboard', dashboardPageRoute, async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('Cache-Control', 'no-store')
      // Inline script and styles only; data from this origin only.
      .header(
        'Content-Security-Policy',
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
      )
      .send(PAGE),
  );
}

/** How long the data route waits for Temporal's answer on the workers before it says so. */
const WORKERS_DEADLINE_MS = 1500;

/**
 * Whether a worker polls the task queue, from the server's poller list (never a query, which
 * would wait for a worker); `polling: null` when Temporal did not answer in time.
 */
async function workersView(config: AppConfig, temporal: Client | undefined) {
  const { namespace, taskQueue } = config.temporal;
  if (!temporal) return { polling: null, text: 'workers unknown: no Temporal client' };
  try {
    const q = await temporal.connection.withDeadline(Date.now() + WORKERS_DEADLINE_MS, () =>
      describeQueueWorkers(temporal, namespace, taskQueue),
    );
    const polling = served(q);
    return {
      polling,
      text: polling ? describeServing(q) : `no worker polling: ${describeServing(q)}`,
    };
  } catch (err) {
    return {
      polling: null,
      text: `workers unknown: Temporal did not answer (${(err as Error).message})`,
    };
  }
}

/** What the page shows, in one read (behind the API key). */
export function registerDashboardData(
  app: FastifyInstance,
  deps: { config: AppConfig; db: Db; temporal?: Client },
): void {
  const { config, db, temporal } = deps;
  const log = new ClaimLog(db);
  const runs = new RunRepository(db);
  app.get('/v1/dashboard', dashboardDataRoute, async () => {
    const [levels, stats, recent, fills, workers] = await Promise.all([
      currentLevels(config, db),
      log.stats(),
      log.recent(20),
      runs.recent<Partial<FillProgress>>('fill', 5),
      workersView(config, temporal),
    ]);
    return {
      at: new Date().toISOString(),
      levels,
      workers,
      hitRatio: stats.hitRatio,
      latency: stats.latency,
      counts: stats.counts,
      fills: fills.map((f) => ({
        workflowId: f.workflowId,
        startedAt: f.startedAt,
        finishedAt: f.finishedAt,
        available: f.summary.available ?? 0,
        failed: f.summary.failed ?? 0,
        drained: f.summary.drained ?? 0,
        stoppedBy: f.summary.stoppedBy ?? null,
        link: historyUrl(config.temporal, f.workflowId),
      })),
      claims: recent.map((c) => ({
        ...c,
        link: historyUrl(config.temporal, c.workflowId),
      })),
    };
  });
}
