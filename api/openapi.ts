/**
 * The API's machine-readable contract: GET /openapi.json, an OpenAPI 3.1 document that
 * @fastify/swagger builds from the routes' own request and response schemas (no second copy to
 * drift). Unauthenticated, like /healthz: it holds no data, and a caller needs it before it has
 * a key. Shared schemas (schemas.ts) appear as named components.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';

export const OPENAPI_PATH = '/openapi.json';

const { version } = JSON.parse(readFileSync(resolve(__dirname, '../package.json'), 'utf8')) as {
  version: string;
};

/** Registers the document's builder; every route registered after it is in the document. */
export function registerOpenApi(app: FastifyInstance, opts: { metricsKeyed: boolean }): void {
  const bearer = [{ bearer: [] }];
  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'cinder-warm-pool API',
        version,
        description:
          'Claims of system and data volumes from the warm pool, their status, and the pool levels. Every /v1 route needs `Authorization: Bearer <API key>` and is limited per key (429 with Retry-After); /metrics needs the metrics key when `[api] metrics_key` is set.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    // Shared schemas keep their ids as component names (ClaimReply, not def-0).
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
    // The key check is a hook, not part of a route's schema: the document says it here.
    transform: ({ schema, url }) => {
      const keyed = url.startsWith('/v1/') || (url === '/metrics' && opts.metricsKeyed);
      return { schema: keyed ? { ...schema, security: bearer } : schema, url };
    },
  });
  app.get(OPENAPI_PATH, { schema: { hide: true } }, async () => app.swagger());
}
