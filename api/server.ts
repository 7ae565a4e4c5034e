/**
 * The HTTP API (fastify). Health and readiness for orchestrators, pool levels for operators;
 * every /v1 route needs a bearer API key from the configuration. The key is checked by the
 * routes themselves (an encapsulated plugin's hook), never by matching the raw URL: the router
 * decodes `%76`, folds nothing else, and whatever it routes to a /v1 handler is authenticated.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Client } from '@temporalio/client';
import type { AppConfig } from '../lib/config/load';
import type { Db } from '../lib/pool-state/db';
import { currentLevels } from '../lib/pool-state/levels';
import { timingSafeEqual } from 'node:crypto';
import { registerClaimRoutes } from './claims';
import { registerDashboardData, registerDashboardPage } from './dashboard';
import { createMetrics } from './metrics';
import { withTimeout } from './timeout';

export interface ApiDeps {
  config: AppConfig;
  db: Db;
  temporal: Client;
}

function keyMatches(given: string, keys: string[]): boolean {
  const g = Buffer.from(given);
  // Constant-time per key, so a caller cannot learn a key byte by byte from timings.
  return keys.some((k) => {
    const b = Buffer.from(k);
    return b.length === g.length && timingSafeEqual(b, g);
  });
}

export function buildApi(deps: ApiDeps, opts: { logger?: boolean } = {}): FastifyInstance {
  const app = Fastify({
    // Reject what is wrong instead of quietly fixing it: no stripped extra fields, no "3" → 3.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true } },
    logger: opts.logger
      ? { redact: { paths: ['req.headers.authorization'], censor: '<redacted>' } }
      : false,
  });

  app.setErrorHandler(
    (err: { statusCode?: number; message: string; validation?: unknown }, req, reply) => {
      const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
      if (status >= 500) req.log.error({ err }, 'request failed');
      // The request id ties a 500 to its log line (which has the cause).
      void reply
        .status(status)
        .send(
          status >= 500 ? { error: 'internal error', requestId: req.id } : { error: err.message },
        );
    },
  );
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send({ error: `no route ${req.method} ${req.url}` });
  });

  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(header);
    if (!m)
      return reply
        .status(401)
        .send({ error: 'missing bearer API key (Authorization: Bearer <key>)' });
    if (!keyMatches(m[1] as string, deps.config.api.apiKeys)) {
      return reply.status(401).send({ error: 'unknown API key' });
    }
  };

  app.get('/healthz', async () => ({ status: 'ok' }));
  registerDashboardPage(app);

  app.get('/readyz', async (req, reply) => {
    // Unauthenticated: says what is down, never why (the reason goes to the log).
    const checks: Record<string, string> = {};
    const down = (name: string) => (e: Error) => {
      req.log.warn({ err: e }, `readiness: ${name} unavailable`);
      checks[name] = 'unavailable';
    };
    await Promise.all([
      deps.db.query('SELECT 1').then(() => (checks.postgres = 'ok'), down('postgres')),
      withTimeout(deps.temporal.workflowService.getSystemInfo({}), 3000).then(
        () => (checks.temporal = 'ok'),
        down('temporal'),
      ),
    ]);
    const ready = Object.values(checks).every((v) => v === 'ok');
    return reply.status(ready ? 200 : 503).send({ ready, checks });
  });

  const metrics = createMetrics(deps.config, deps.db);

  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  // Every route registered in here is behind the API key, however its URL was spelled.
  void app.register(async (v1) => {
    v1.addHook('onRequest', authenticate);
    registerClaimRoutes(v1, { ...deps, metrics });
    registerDashboardData(v1, deps);
    v1.get('/v1/pool', async () => {
      const levels = await currentLevels(deps.config, deps.db);
      return { levels };
    });
  });

  return app;
}
