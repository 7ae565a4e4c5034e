/**
 * The API's shared reply schemas. Routes carry their request and response schemas; these are the
 * ones several routes share, registered once by id (`app.addSchema`) and referenced as
 * `{ $ref: 'Name#' }`. Fastify serializes every reply through its schema (fields not listed are
 * not sent), and /openapi.json publishes the same schemas as named components: one definition
 * serves the wire and the contract.
 */
import type { FastifyInstance } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import type { PoolLevel } from '../lib/pool-state/levels';

export const errorReply = {
  $id: 'Error',
  type: 'object',
  required: ['error'],
  properties: {
    error: { type: 'string', description: 'What went wrong, for a person to read.' },
    /** Only on a 500: ties the answer to the server's log line, which has the cause. */
    requestId: { type: 'string' },
  },
} as const;

export const poolLevel = {
  $id: 'PoolLevel',
  type: 'object',
  additionalProperties: false,
  required: [
    'volumeType',
    'os',
    'zone',
    'floor',
    'target',
    'why',
    'creating',
    'available',
    'reserved',
    'stale',
    'deleting',
    'flagged',
    'missing',
  ],
  properties: {
    volumeType: { type: 'string' },
    os: { type: 'string' },
    zone: {
      type: 'string',
      description: "The availability zone ('' when the pool names no zones).",
    },
    floor: { type: 'integer', description: "The configured count: the target's floor." },
    target: { type: 'integer', description: 'What the fill keeps: the floor raised by demand.' },
    why: { type: 'string', description: 'Which rule set the target (floor, demand, cap).' },
    creating: { type: 'integer' },
    available: { type: 'integer', description: 'Ready to hand out (current image).' },
    reserved: { type: 'integer' },
    stale: { type: 'integer', description: 'Made from an older snapshot: drained, replaced.' },
    deleting: { type: 'integer' },
    flagged: { type: 'integer', description: 'Cinder refused to delete them.' },
    missing: { type: 'integer', description: 'How many more the next fill creates.' },
  },
} as const;

// Compile-time: the schema and PoolLevel name the same fields (a field added to one only is a
// type error here, not a field silently left out of the reply).
type SameKeys<A, B> = [keyof A] extends [keyof B]
  ? [keyof B] extends [keyof A]
    ? true
    : never
  : never;
const poolLevelMatches: SameKeys<FromSchema<typeof poolLevel>, PoolLevel> = true;
void poolLevelMatches;

/** Errors every /v1 route can answer besides its own: no or unknown key, too many, a bug. */
export const v1Errors = {
  401: { description: 'No bearer API key, or an unknown one.', $ref: 'Error#' },
  429: {
    description: "Over this API key's request limit; the Retry-After header says when to retry.",
    $ref: 'Error#',
    headers: { 'Retry-After': { type: 'integer', description: 'Seconds until the limit resets.' } },
  },
  500: { description: 'Internal error (requestId ties it to the log).', $ref: 'Error#' },
} as const;

/** GET /healthz: the process answers. */
export const health = {
  description: 'The process is up (no dependency checked).',
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string', enum: ['ok'] } },
} as const;

/** GET /readyz: 200 when every check is ok, else 503 with the same shape. */
export const readiness = {
  type: 'object',
  required: ['ready', 'checks'],
  properties: {
    ready: { type: 'boolean' },
    checks: {
      type: 'object',
      additionalProperties: { type: 'string', enum: ['ok', 'unavailable'] },
      properties: {
        postgres: { type: 'string', enum: ['ok', 'unavailable'] },
        temporal: { type: 'string', enum: ['ok', 'unavailable'] },
      },
    },
  },
} as const;

/** GET /dashboard: the operator's page itself (its data: GET /v1/dashboard). */
const dashboardPage = {
  description:
    "The operator's page (HTML, no data; it reads /v1/dashboard with the key in its URL's fragment).",
  content: { 'text/html': { schema: { type: 'string' } } },
} as const;

const nullableNumber = { type: ['number', 'null'] } as const;

/**
 * GET /v1/dashboard: what the operator's page shows. Its items may grow new fields (the page is
 * their only reader), so they are passed through rather than dropped.
 */
const dashboardReply = {
  type: 'object',
  additionalProperties: true,
  required: ['at', 'levels', 'hitRatio', 'latency', 'counts', 'fills', 'claims'],
  properties: {
    at: { type: 'string', format: 'date-time' },
    levels: { type: 'array', items: { $ref: 'PoolLevel#' } },
    workers: {
      type: 'object',
      description: 'Whether a worker polls the task queue (polling null: Temporal did not say).',
      additionalProperties: true,
      required: ['polling', 'text'],
      properties: { polling: { type: ['boolean', 'null'] }, text: { type: 'string' } },
    },
    hitRatio: {
      type: 'object',
      description: 'Pool hits / (hits + plain creations) of system disks; null without claims.',
      required: ['hour', 'day'],
      properties: { hour: nullableNumber, day: nullableNumber },
    },
    latency: {
      type: 'array',
      description: 'Seconds to answer, over the last day, by outcome.',
      items: {
        type: 'object',
        additionalProperties: true,
        required: ['outcome', 'claims', 'p50', 'p99'],
        properties: {
          outcome: { type: 'string' },
          claims: { type: 'integer' },
          p50: { type: 'number' },
          p99: { type: 'number' },
        },
      },
    },
    counts: { type: 'object', additionalProperties: { type: 'integer' } },
    fills: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: true,
        required: ['workflowId', 'startedAt', 'finishedAt', 'link'],
        properties: {
          workflowId: { type: 'string' },
          startedAt: { type: 'string', format: 'date-time' },
          finishedAt: { type: ['string', 'null'], format: 'date-time' },
          available: { type: 'number' },
          failed: { type: 'number' },
          drained: { type: 'number' },
          stoppedBy: { type: ['string', 'null'] },
          link: { type: 'string' },
        },
      },
    },
    claims: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: true,
        required: ['requestId', 'outcome', 'at', 'link'],
        properties: {
          requestId: { type: 'string' },
          workflowId: { type: 'string' },
          projectId: { type: 'string' },
          os: { type: ['string', 'null'] },
          volumeType: { type: 'string' },
          zone: { type: ['string', 'null'] },
          outcome: { type: 'string' },
          httpStatus: { type: 'integer' },
          seconds: nullableNumber,
          fallbackReason: { type: ['string', 'null'] },
          at: { type: 'string', format: 'date-time' },
          link: { type: 'string' },
        },
      },
    },
  },
} as const;

/**
 * Registers the shared schemas, and `more` (a route module's own, e.g. ClaimReply), on the root
 * instance before any route refers to them: the OpenAPI document lists the root's schemas.
 */
export function addSharedSchemas(app: FastifyInstance, more: { $id: string }[] = []): void {
  for (const schema of [errorReply, poolLevel, ...more]) app.addSchema(schema);
}

/** The dashboard's routes' options (api/dashboard.ts): their answers, documented. */
export const dashboardPageRoute = { schema: { response: { 200: dashboardPage } } };
export const dashboardDataRoute = { schema: { response: { 200: dashboardReply, ...v1Errors } } };
