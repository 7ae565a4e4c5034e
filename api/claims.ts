/**
 * Claims over HTTP. POST starts (or joins) the claim workflow `claim-<requestId>` and waits a
 * bounded time: 201 with the volume when done, else 202 with Location. The same requestId with a
 * different body is a 409 (the body's hash is the workflow's memo). GET reads the workflow:
 * a query while it runs, its result or failure once closed. Temporal unreachable → 503.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import type { AppConfig } from '../lib/config/load';
import type { ApiMetrics } from './metrics';
import { withTimeout } from './timeout';
import {
  claimVolumeWorkflow,
  type ClaimInput,
  type ClaimResult,
  claimStatusQuery,
  type ClaimStatus,
} from '../workflows/claim';

export const claimWorkflowId = (requestId: string) => `claim-${requestId}`;

const claimBody = {
  type: 'object',
  additionalProperties: false,
  required: ['requestId', 'projectId', 'name', 'volumeType'],
  properties: {
    requestId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$' },
    projectId: { type: 'string', pattern: '^[0-9a-f]{32}$' },
    // An id (Keystone's are 32 hex digits): noauth builds its token as `user:project`.
    userId: { type: 'string', pattern: '^[A-Za-z0-9_.@-]{1,64}$' },
    name: { type: 'string', minLength: 1, maxLength: 255 },
    os: { type: 'string', minLength: 1, maxLength: 255 },
    volumeType: { type: 'string', minLength: 1, maxLength: 255 },
    sizeGb: { type: 'integer', minimum: 1, maximum: 16384 },
    systemDisk: { type: 'boolean', default: true },
  },
} as const;

interface ClaimBody {
  requestId: string;
  projectId: string;
  userId?: string;
  name: string;
  os?: string;
  volumeType: string;
  sizeGb?: number;
  systemDisk: boolean;
}

class TemporalDown extends Error {}

/** A gRPC error meaning the server is not there, as TemporalDown; anything else unchanged. */
function asTemporalDown(err: unknown): unknown {
  if (err instanceof TemporalDown) return err;
  // The client wraps gRPC errors (ServiceError): look through the causes for the status code.
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: number }).code;
    // gRPC UNAVAILABLE (14) / DEADLINE_EXCEEDED (4): the server is not there.
    if (code === 14 || code === 4 || /UNAVAILABLE|connect|transport/i.test(e.message))
      return new TemporalDown(`Temporal unreachable: ${e.message}`);
  }
  return err;
}

/** Temporal calls are bounded: a dead server is a 503 within seconds, never a hanging request. */
async function bounded<T>(p: Promise<T>, ms = 5000): Promise<T> {
  try {
    return await withTimeout(
      p,
      ms,
      () => new TemporalDown(`Temporal did not answer within ${ms} ms`),
    );
  } catch (err) {
    throw asTemporalDown(err);
  }
}

/**
 * The claim's result if it ends within `ms`, else null. The long poll behind result() is
 * cancelled at the deadline (nothing keeps running after a 202), and its timer cleared.
 */
async function resultWithin(
  temporal: Client,
  handle: WorkflowHandle<typeof claimVolumeWorkflow>,
  ms: number,
): Promise<ClaimResult | null> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), ms);
  try {
    return await temporal.withAbortSignal(stop.signal, () => handle.result());
  } catch (err) {
    if (stop.signal.aborted && !(err instanceof WorkflowFailedError)) return null;
    throw asTemporalDown(err);
  } finally {
    clearTimeout(timer);
  }
}

/** Text Cinder would choke on (a NUL, a lone surrogate): refused up front, not retried later. */
function badText(field: string, value: string | undefined): string | null {
  if (value === undefined) return null;
  if (/[\u0000-\u001f\u007f]/.test(value)) return `${field} must not contain control characters`;
  if (!(value as unknown as { isWellFormed(): boolean }).isWellFormed())
    return `${field} is not well-formed Unicode (a lone surrogate)`;
  return null;
}

function failureReason(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause) e = e.cause; // the innermost cause says what went wrong
  return e instanceof Error ? e.message : String(e);
}

export function registerClaimRoutes(
  app: FastifyInstance,
  deps: { config: AppConfig; temporal: Client; metrics: ApiMetrics },
): void {
  const { config, temporal, metrics } = deps;
  const location = (requestId: string) => `/v1/claims/${encodeURIComponent(requestId)}`;
  const knownOs = [...new Set(config.pool.targets.map((t) => t.os))];

  const serviceUnavailable = (reply: FastifyReply, err: TemporalDown) =>
    reply.status(503).send({ error: err.message });

  app.post<{ Body: ClaimBody }>(
    '/v1/claims',
    { schema: { body: claimBody } },
    async (req, reply) => {
      const b = req.body;
      const textError =
        badText('name', b.name) ?? badText('os', b.os) ?? badText('volumeType', b.volumeType);
      if (textError) return reply.status(400).send({ error: textError });
      if (b.systemDisk && !b.os)
        return reply.status(400).send({ error: 'os is required for a system disk' });
      if (b.systemDisk && b.os && !knownOs.includes(b.os)) {
        return reply
          .status(400)
          .send({ error: `unknown os ${JSON.stringify(b.os)}; known: ${knownOs.join(', ')}` });
      }
      if (b.systemDisk && !config.pool.volumeTypes.includes(b.volumeType)) {
        return reply.status(400).send({
          error: `unknown volumeType ${JSON.stringify(b.volumeType)}; known: ${config.pool.volumeTypes.join(', ')}`,
        });
      }
      if (!b.systemDisk && !b.sizeGb)
        return reply.status(400).send({ error: 'sizeGb is required for a data disk' });

      const input: ClaimInput = {
        requestId: b.requestId,
        projectId: b.projectId,
        userId: b.userId ?? 'warm-pool-claim',
        name: b.name,
        os: b.systemDisk ? (b.os as string) : null,
        volumeType: b.volumeType,
        sizeGb: b.sizeGb ?? null,
        systemDisk: b.systemDisk,
        createTimeoutMs: config.api.plainCreateTimeoutMs,
      };
      const bodyHash = createHash('sha256')
        .update(JSON.stringify({ ...input, createTimeoutMs: undefined }))
        .digest('hex');
      const workflowId = claimWorkflowId(b.requestId);

      let handle: WorkflowHandle<typeof claimVolumeWorkflow>;
      try {
        try {
          handle = await bounded(
            temporal.workflow.start(claimVolumeWorkflow, {
              taskQueue: config.temporal.taskQueue,
              workflowId,
              args: [input],
              memo: { bodyHash },
              workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
              workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
            }),
          );
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
          handle = temporal.workflow.getHandle(workflowId); // done before: answer with its outcome
        }
        const desc = await bounded(handle.describe());
        if (desc.memo?.bodyHash !== bodyHash) {
          return reply
            .status(409)
            .send({ error: `requestId ${b.requestId} was already used with a different body` });
        }
        reply.header('Location', location(b.requestId));
        const result = await resultWithin(temporal, handle, config.api.claimWaitMs);
        if (result === null) {
          metrics.claims.inc({ outcome: 'running', status: '202' });
          return reply.status(202).send({ requestId: b.requestId, status: 'running' });
        }
        metrics.claims.inc({ outcome: result.outcome, status: '201' });
        metrics.claimSeconds.observe(
          { outcome: result.outcome },
          (result.timingsMs.total ?? 0) / 1000,
        );
        return reply.status(201).send({ requestId: b.requestId, status: 'completed', ...result });
      } catch (err) {
        if (err instanceof TemporalDown) return serviceUnavailable(reply, err);
        if (err instanceof WorkflowFailedError) {
          metrics.claims.inc({ outcome: 'failed', status: '422' });
          return reply
            .status(422)
            .send({ requestId: b.requestId, status: 'failed', error: failureReason(err) });
        }
        throw err;
      }
    },
  );

  app.get<{ Params: { requestId: string } }>(
    '/v1/claims/:requestId',
    {
      schema: {
        params: {
          type: 'object',
          properties: {
            requestId: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$' },
          },
        },
      },
    },
    async (req, reply) => {
      const handle = temporal.workflow.getHandle<typeof claimVolumeWorkflow>(
        claimWorkflowId(req.params.requestId),
      );
      try {
        const desc = await bounded(handle.describe());
        const base = {
          requestId: req.params.requestId,
          startedAt: desc.startTime.toISOString(),
          closedAt: desc.closeTime?.toISOString() ?? null,
          historyUrl: `${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/workflows/${desc.workflowId}`,
        };
        if (desc.status.name === 'RUNNING') {
          // The step comes from a query, which needs a worker; that it runs comes from the
          // server. No worker answering (restarting, all busy) is still "running".
          const s: ClaimStatus | null = await bounded(handle.query(claimStatusQuery), 3000).catch(
            (err: unknown) => {
              req.log.warn({ err }, `claim ${req.params.requestId}: status query unanswered`);
              return null;
            },
          );
          return s
            ? { ...base, status: 'running', ...s }
            : { ...base, status: 'running', step: null, note: 'no worker answered the query yet' };
        }
        if (desc.status.name === 'COMPLETED') {
          const r: ClaimResult = await bounded(handle.result());
          return { ...base, status: 'completed', ...r };
        }
        try {
          await bounded(handle.result());
        } catch (err) {
          return { ...base, status: 'failed', error: failureReason(err) };
        }
        return { ...base, status: desc.status.name.toLowerCase() };
      } catch (err) {
        if (err instanceof TemporalDown) return serviceUnavailable(reply, err);
        if (
          err instanceof WorkflowNotFoundError ||
          (err as { name?: string }).name === 'WorkflowNotFoundError'
        ) {
          return reply.status(404).send({ error: `unknown claim ${req.params.requestId}` });
        }
        throw err;
      }
    },
  );
}
