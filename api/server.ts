/**
 * The HTTP API (fastify). Health and readiness for orchestrators, pool levels for operators;
 * every /v1 route needs a bearer API key from the configuration. The key is checked by the
 * routes themselves (an encapsulated plugin's hook), never by matching the raw URL: the router
 * decodes `%76`, folds nothing else, and whatever it routes to a /v1 handler is authenticated.
 * Each key then has a request budget (rate-limit.ts). Every route carries its request and
 * response schemas, published as GET /openapi.json (openapi.ts).
 */
import { setMaxListeners } from 'node:events';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Client } from '@temporalio/client';
import type { AppConfig } from '../lib/config/load';
import type { Db } from '../lib/pool-state/db';
import { currentLevels } from '../lib/pool-state/levels';
import { backlogProbe } from '../lib/temporal/backlog';
import { timingSafeEqual } from 'node:crypto';
import { claimReply, registerClaimRoutes } from './claims';
import { registerDashboardData, registerDashboardPage } from './dashboard';
import { createMetrics } from './metrics';
import { registerOpenApi } from './openapi';
import { registerKeyRateLimit } from './rate-limit';
import { addSharedSchemas, health, readiness, v1Errors } from './schemas';
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

/** An onRequest hook: 401 unless the request carries one of `keys` as its bearer token. */
function bearerCheck(keys: string[], what: string) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m)
      return reply
        .status(401)
        .send({ error: `missing bearer ${what} (Authorization: Bearer <key>)` });
    if (!keyMatches(m[1] as string, keys))
      return reply.status(401).send({ error: `unknown ${what}` });
  };
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

  addSharedSchemas(app, [claimReply]);
  // Before any route: the OpenAPI document lists the routes registered after it.
  registerOpenApi(app, { metricsKeyed: deps.config.api.metricsKey !== undefined });

  const metrics = createMetrics(deps.config, deps.db);
  // The claim queue's backlog, read at most once a second for all requests (Retry-After, 429).
  const backlog = backlogProbe(deps.temporal, deps.config, { timeoutMs: 1000 });
  // Closing (SIGTERM): waiting claims are answered 202 at once, then in-flight requests finish.
  const closing = new AbortController();
  // Every waiting claim listens for the close: a burst is hundreds, none of them a leak.
  setMaxListeners(0, closing.signal);
  app.addHook('preClose', async () => closing.abort());

  // In a plugin, so that the OpenAPI builder above is loaded when these routes are registered.
  void app.register(async (api) => {
    api.get('/healthz', { schema: { response: { 200: health } } }, async () => ({
      status: 'ok' as const,
    }));
    registerDashboardPage(api);

    api.get(
      '/readyz',
      {
        schema: {
          response: {
            200: { description: 'PostgreSQL and Temporal answer.', ...readiness },
            503: { description: 'Something is down (named, never why).', ...readiness },
          },
        },
      },
      async (req, reply) => {
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
      },
    );

    const metricsKey = deps.config.api.metricsKey;
    api.get(
      '/metrics',
      {
        // With a metrics key, a scraper must send it (Prometheus: `authorization: {credentials}`).
        onRequest: metricsKey ? bearerCheck([metricsKey], 'metrics key') : undefined,
        schema: {
          response: {
            200: {
              description: 'Prometheus text format.',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
            401: {
              ...v1Errors[401],
              description: 'With [api] metrics_key set: no or another key.',
            },
            500: { ...v1Errors[500], description: 'PostgreSQL could not be read.' },
          },
        },
      },
      async (_req, reply) => {
        void reply.header('content-type', metrics.registry.contentType);
        return metrics.registry.metrics();
      },
    );

    // Every route registered in here is behind the API key, however its URL was spelled.
    void api.register(async (v1) => {
      v1.addHook('onRequest', bearerCheck(deps.config.api.apiKeys, 'API key'));
      await registerKeyRateLimit(v1, deps.config); // after the key check: known keys only
      registerClaimRoutes(v1, { ...deps, metrics, backlog, closing: closing.signal });
      registerDashboardData(v1, deps);
      v1.get(
        '/v1/pool',
        {
          schema: {
            response: {
              200: {
                description: 'Levels per volume type × OS.',
                type: 'object',
                required: ['levels'],
                properties: { levels: { type: 'array', items: { $ref: 'PoolLevel#' } } },
              },
              ...v1Errors,
            },
          },
        },
        async () => {
          const levels = await currentLevels(deps.config, deps.db);
          return { levels };
        },
      );
    });
  });

  return app;
}
