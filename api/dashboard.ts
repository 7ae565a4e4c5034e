/**
 * The operator's dashboard. GET /dashboard is a static page (no data, no key needed: nothing
 * outside the machine is loaded, its script and styles are inline); the page reads
 * GET /v1/dashboard with the API key the operator gives it in the URL's fragment
 * (`/dashboard#key=…`, never sent to a server or written in a log) and refreshes itself.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { AppConfig } from '../lib/config/load';
import type { Db } from '../lib/pool-state/db';
import { currentLevels } from '../lib/pool-state/levels';
import { ClaimLog } from '../lib/pool-state/claim-log';
import { RunRepository } from '../lib/pool-state/runs';
import { historyUrl } from '../lib/temporal/workflows';
import type { FillProgress } from '../contracts/fill';

const PAGE = readFileSync(resolve(__dirname, 'dashboard.html'), 'utf8');

/** The page itself (outside the key check: it holds no data). */
export function registerDashboardPage(app: FastifyInstance): void {
  app.get('/dashboard', async (_req, reply) =>
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

/** What the page shows, in one read (behind the API key). */
export function registerDashboardData(
  app: FastifyInstance,
  deps: { config: AppConfig; db: Db },
): void {
  const { config, db } = deps;
  const log = new ClaimLog(db);
  const runs = new RunRepository(db);
  app.get('/v1/dashboard', async () => {
    const [levels, stats, recent, fills] = await Promise.all([
      currentLevels(config, db),
      log.stats(),
      log.recent(20),
      runs.recent<Partial<FillProgress>>('fill', 5),
    ]);
    return {
      at: new Date().toISOString(),
      levels,
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
