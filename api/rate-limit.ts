/**
 * A request limit per API key on /v1 (`[api] rate_limit_max` per `rate_limit_window_second`):
 * one runaway caller cannot load PostgreSQL and Temporal for everyone. Keyed by the API key, not
 * the address (callers share NATs and proxies), through a hash: the raw key is never stored or
 * logged. Runs after the key check, so unknown keys never get a bucket. Past the limit: 429, a
 * Retry-After header (seconds) and a JSON error saying the limit.
 */
import { createHash } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AppConfig } from '../lib/config/load';

/** A short, stable name for an API key that cannot be turned back into the key. */
export function keyId(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

const bearerKey = (req: FastifyRequest) =>
  /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';

/** Registers the limit on `v1`'s routes; must run before they are registered. */
export async function registerKeyRateLimit(v1: FastifyInstance, config: AppConfig): Promise<void> {
  const { max, windowMs } = config.api.rateLimit;
  if (max === 0) return;
  const window = `${windowMs / 1000} s`;
  await v1.register(rateLimit, {
    max,
    timeWindow: windowMs,
    keyGenerator: (req) => keyId(bearerKey(req)),
    onExceeded: (req, key) => req.log.warn({ apiKey: key }, 'API key over its request limit'),
    // Thrown: the API's error handler answers it as { error } with this status.
    errorResponseBuilder: (_req, ctx) =>
      Object.assign(
        new Error(
          `request limit exceeded: at most ${ctx.max} requests per ${window} per API key; retry in ${ctx.after}`,
        ),
        { statusCode: ctx.statusCode },
      ),
  });
}
