/**
 * Claims over HTTP. POST starts (or joins) the claim workflow `claim-<requestId>` with
 * update-with-start and waits a bounded time: 201 with the volume as soon as the tenant has it
 * (the workflow's bookkeeping goes on after the answer), else 202 with Location. The same requestId with a
 * different body is a 409 (the body's hash is the workflow's memo). GET reads the workflow:
 * a query while it runs, its result or failure once closed. Temporal unreachable → 503.
 *
 * Backpressure (lib/temporal/backlog.ts): a 202, and a GET of a running claim, carry a
 * Retry-After from the task queue's backlog and dispatch rate. While the backlog is above
 * `[api] max_claim_backlog`, a new claim (no workflow of its requestId yet) is refused 429 before
 * anything starts; a claim already started is never refused, it is joined as always.
 */
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FromSchema } from 'json-schema-to-ts';
import {
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowUpdateFailedError,
  type WorkflowStartOptions,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  WorkflowNotFoundError,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import type { AppConfig } from '../lib/config/load';
import type { Db } from '../lib/pool-state/db';
import { ClaimLog } from '../lib/pool-state/claim-log';
import type { ApiMetrics } from './metrics';
import { v1Errors } from './schemas';
import { withTimeout } from './timeout';
import { RecentStarts, STATS_LAG_MS } from './admission';
import { historyUrl } from '../lib/temporal/workflows';
import {
  UNKNOWN_RETRY_SECONDS,
  retryAfterSeconds,
  type BacklogProbe,
  type BacklogStats,
} from '../lib/temporal/backlog';
import { claimVolumeWorkflow } from '../workflows/claim';
import {
  CLAIM_FAILURES,
  claimDeliveredUpdate,
  claimStatusQuery,
  claimWorkflowId,
  type ClaimInput,
  type ClaimResult,
  type ClaimStatus,
} from '../contracts/claim';

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
    /** The VM's availability zone (one of the pool's); absent: the pool's default zone. */
    availabilityZone: { type: 'string', minLength: 1, maxLength: 255 },
    /** The answer's block device mapping deletes the volume with the server. */
    deleteOnTermination: { type: 'boolean', default: false },
  },
} as const;

const nullable = (type: string) => ({ type: [type, 'null'] }) as const;

/** Every claim reply: POST (201, 202, 422) and GET (200); what is unknown yet is null or absent. */
export const claimReply = {
  $id: 'ClaimReply',
  type: 'object',
  required: ['requestId', 'status'],
  properties: {
    requestId: { type: 'string' },
    /** running | completed | failed (or Temporal's other end states, lower-cased) */
    status: { type: 'string' },
    volumeId: nullable('string'),
    outcome: { type: ['string', 'null'], enum: ['existing', 'pool', 'created', null] },
    fallbackReason: nullable('string'),
    extendError: nullable('string'),
    timingsMs: { type: 'object', additionalProperties: { type: 'number' } },
    /** The volume's availability zone. */
    availabilityZone: { type: 'string' },
    /** Nova's `block_device_mapping_v2` entry for this volume, ready for a server create. */
    blockDeviceMapping: {
      type: 'object',
      required: ['uuid', 'source_type', 'destination_type', 'boot_index', 'delete_on_termination'],
      properties: {
        uuid: { type: 'string' },
        source_type: { type: 'string', enum: ['volume'] },
        destination_type: { type: 'string', enum: ['volume'] },
        boot_index: { type: 'integer' },
        delete_on_termination: { type: 'boolean' },
      },
    },
    /** The running claim's step (from its status query), null when no worker answered. */
    step: nullable('string'),
    note: { type: 'string' },
    error: { type: 'string' },
    startedAt: { type: 'string' },
    closedAt: nullable('string'),
    historyUrl: { type: 'string' },
  },
} as const;

const ref = (id: string, description: string) => ({ $ref: `${id}#`, description });

const retryAfterHeader = {
  type: 'integer',
  minimum: 1,
  description:
    "Seconds to wait before asking again, from the task queue's backlog and dispatch rate (1–60).",
} as const;

/** The body as validated: the schema above is its only definition. */
type ClaimBody = FromSchema<typeof claimBody>;

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

class BodyMismatch extends Error {
  constructor(requestId: string) {
    super(`requestId ${requestId} was already used with a different body`);
  }
}

/** The claim itself failed (its `delivered` update says why). */
class ClaimFailed extends Error {}

type ClaimStart = WorkflowStartOptions<typeof claimVolumeWorkflow> & {
  workflowId: string;
  memo: { bodyHash: string };
  workflowIdConflictPolicy: WorkflowIdConflictPolicy;
};

/** How long the API waits for its first answer before it makes sure the claim exists. */
const FIRST_ANSWER_MS = 5000;

/**
 * Starts (or joins) the claim and waits up to `waitMs` for its answer, with update-with-start:
 * the `delivered` update answers as soon as the tenant has the volume (early return), while the
 * workflow finishes its bookkeeping. Before any 202 the claim is known to exist: without an
 * answer within a few seconds (no worker yet, a queue, or Temporal gone), a plain idempotent
 * start confirms it, checks the body, and tells Temporal down (503) from busy (202).
 * `closed`: the claim ended before this request (update-with-start cannot join it).
 */
async function deliveredWithin(
  temporal: Client,
  start: ClaimStart,
  bodyHash: string,
  waitMs: number,
  closing: AbortSignal,
): Promise<{ result?: ClaimResult; closed?: boolean }> {
  const began = Date.now();
  const stop = new AbortController();
  // Each of the update's long polls (and their retries under load) listens on it until the
  // request ends; Node would warn past 10.
  setMaxListeners(0, stop.signal);
  const update = temporal
    .withAbortSignal(stop.signal, () =>
      temporal.workflow.executeUpdateWithStart(claimDeliveredUpdate, {
        args: [{ bodyHash }],
        startWorkflowOperation: new WithStartWorkflowOperation(claimVolumeWorkflow, start),
      }),
    )
    .then(
      (result) => ({ result }),
      (err: unknown) => ({ err }),
    );
  const within = async (ms: number) => {
    const late = waitOrClosing(ms, closing);
    try {
      return await Promise.race([update, late.done]);
    } finally {
      late.cancel();
    }
  };
  try {
    let outcome = await within(Math.min(waitMs, FIRST_ANSWER_MS));
    if (outcome === null) {
      // No answer yet: make sure the claim exists and is this body's (proves Temporal is up).
      if ((await startOrJoin(temporal, start)) === 'closed') return { closed: true };
      outcome = await within(waitMs - (Date.now() - began));
      if (outcome === null) return {};
    }
    if ('result' in outcome) return { result: outcome.result };
    throw outcome.err;
  } catch (err) {
    // startOrJoin found the claim started with another body: a 409, not a lost update.
    if (err instanceof BodyMismatch) throw err;
    // Ended before this request, or while it waited (terminated): answered from its close.
    if (err instanceof WorkflowExecutionAlreadyStartedError || err instanceof WorkflowNotFoundError)
      return { closed: true };
    if (err instanceof WorkflowUpdateFailedError) {
      const cause = err.cause as { type?: string; message?: string } | undefined;
      if (cause?.type === CLAIM_FAILURES.bodyMismatch)
        throw new BodyMismatch(start.args[0].requestId);
      throw new ClaimFailed(cause?.message ?? err.message);
    }
    const down = asTemporalDown(err);
    if (down instanceof TemporalDown) throw down;
    // The update was lost, not the claim: its workflow task failed or timed out (a worker died
    // on it, or took too long), and the claim goes on with the next task. Its result answers.
    const left = waitMs - (Date.now() - began);
    return await resultWithin(temporal, start.workflowId, left, stop, closing);
  } finally {
    stop.abort(); // no update poll outlives the request
  }
}

/** The claim's result if it ends within `ms` ({} while it runs on); its failure is thrown. */
async function resultWithin(
  temporal: Client,
  workflowId: string,
  ms: number,
  stop: AbortController,
  closing: AbortSignal,
): Promise<{ result?: ClaimResult }> {
  const handle = temporal.workflow.getHandle<typeof claimVolumeWorkflow>(workflowId);
  // Aborted with the request (no long poll outlives it); the race below reports its failure.
  const ended = temporal.withAbortSignal(stop.signal, () => handle.result());
  ended.catch(() => undefined);
  const late = waitOrClosing(ms, closing);
  try {
    const result = await Promise.race([ended, late.done]);
    return result ? { result } : {};
  } finally {
    late.cancel();
  }
}

/**
 * Resolves null after `ms`, or at once when the server begins to close: a stopping API answers
 * its waiting claims 202 (they go on in Temporal) instead of holding them past the orchestrator's
 * grace period.
 */
function waitOrClosing(ms: number, closing: AbortSignal) {
  let timer: NodeJS.Timeout | undefined;
  let onClose = () => {};
  const done = new Promise<null>((r) => {
    onClose = () => r(null);
    if (closing.aborted) return r(null);
    timer = setTimeout(onClose, Math.max(0, ms));
    closing.addEventListener('abort', onClose, { once: true });
  });
  const cancel = () => {
    clearTimeout(timer);
    closing.removeEventListener('abort', onClose);
  };
  return { done, cancel };
}

/** A 409 unless the claim was started with this body (its hash is the workflow's memo). */
function assertSameBody(
  memo: Record<string, unknown> | undefined,
  bodyHash: string,
  requestId: string,
) {
  if (memo?.bodyHash !== bodyHash) throw new BodyMismatch(requestId);
}

/**
 * Makes sure the claim exists and is this body's: 'closed' if it ended before. Under a burst most
 * claims are already running when this is asked, so it reads first (one call) and starts only
 * when there is nothing to read.
 */
async function startOrJoin(temporal: Client, start: ClaimStart): Promise<'running' | 'closed'> {
  const requestId = start.args[0].requestId;
  try {
    const desc = await bounded(temporal.workflow.getHandle(start.workflowId).describe());
    assertSameBody(desc.memo, start.memo.bodyHash, requestId);
    return desc.status.name === 'RUNNING' ? 'running' : 'closed';
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
  let handle: WorkflowHandle<typeof claimVolumeWorkflow>;
  try {
    handle = await bounded(temporal.workflow.start(claimVolumeWorkflow, start));
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return 'closed';
    throw err;
  }
  assertSameBody((await bounded(handle.describe())).memo, start.memo.bodyHash, requestId);
  return 'running';
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
  deps: {
    config: AppConfig;
    temporal: Client;
    metrics: ApiMetrics;
    db: Db;
    /** The claim task queue's backlog (one per process: its reads are shared). */
    backlog: BacklogProbe;
    /** Aborted when the server begins to close (its preClose hook). */
    closing: AbortSignal;
  },
): void {
  const { config, temporal, metrics } = deps;
  const maxBacklog = config.api.maxClaimBacklog;
  const recentStarts = new RecentStarts();
  const claimLog = new ClaimLog(deps.db);
  const location = (requestId: string) => `/v1/claims/${encodeURIComponent(requestId)}`;
  const knownOs = [...new Set(config.pool.targets.map((t) => t.os))];
  const { zones, defaultZone } = config.pool;

  const serviceUnavailable = (reply: FastifyReply, err: TemporalDown) =>
    reply.status(503).send({ error: err.message });

  /**
   * The queue's backlog as last read (a second or so old, one read shared by every request), or
   * null when Temporal did not say (the probe gives up after a second): then nobody is refused
   * for it, and a Retry-After is the default. A failed read is shared too: logged once.
   */
  let lastFailure: unknown;
  const backlogNow = (req: FastifyRequest) =>
    deps.backlog.get().catch((err: unknown) => {
      if (err !== lastFailure) req.log.warn({ err }, 'task queue backlog unknown');
      lastFailure = err;
      return null;
    });
  /** When a running claim is worth asking about again: once the backlog has been dispatched. */
  const pollAfter = (s: BacklogStats | null) =>
    String(s ? retryAfterSeconds(s.count, s.dispatchPerSecond) : UNKNOWN_RETRY_SECONDS);

  /** Whether the claim's workflow exists (running or closed): a retry, never refused. */
  const started = async (workflowId: string) => {
    try {
      await bounded(temporal.workflow.getHandle(workflowId).describe());
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  };

  app.post<{ Body: ClaimBody }>(
    '/v1/claims',
    {
      schema: {
        body: claimBody,
        response: {
          201: ref('ClaimReply', 'The tenant has the volume (Location: the claim).'),
          202: {
            ...ref(
              'ClaimReply',
              'Still running: poll Location (GET /v1/claims/{requestId}) after Retry-After.',
            ),
            headers: { 'Retry-After': retryAfterHeader },
          },
          400: ref('Error', 'A bad request body (the error names the field).'),
          409: ref('Error', 'This requestId was used with a different body.'),
          422: ref('ClaimReply', 'The claim failed; `error` says why.'),
          503: ref('Error', 'Temporal did not answer: retry with the same requestId.'),
          ...v1Errors,
          429: {
            ...ref(
              'Error',
              "Over this API key's request limit, or (`[api] max_claim_backlog`) too many claims wait for a worker: this new claim was not started. Retry with the same requestId after Retry-After; a claim already started is never refused.",
            ),
            headers: {
              'Retry-After': {
                type: 'integer',
                minimum: 1,
                description:
                  "Seconds until a retry may be admitted: the key's limit resets, or (1–60) the backlog is expected back at the bound.",
              },
            },
          },
        },
      },
    },
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
      const zoneError = badText('availabilityZone', b.availabilityZone);
      if (zoneError) return reply.status(400).send({ error: zoneError });
      if (b.availabilityZone !== undefined && !zones.includes(b.availabilityZone)) {
        return reply.status(400).send({
          error:
            zones.length > 0
              ? `unknown availabilityZone ${JSON.stringify(b.availabilityZone)}; known: ${zones.join(', ')}`
              : `availabilityZone ${JSON.stringify(b.availabilityZone)}: this pool serves no zones (availability_zones is empty), leave it out`,
        });
      }
      const zone = b.availabilityZone ?? defaultZone;

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
        // Only when set, so that a claim's hash stays what it was for pools without zones.
        ...(zone ? { zone } : {}),
        ...(b.deleteOnTermination ? { deleteOnTermination: true } : {}),
      };
      // The body as asked: a zone only when named, so that a claim started before zones (or
      // before a change of the default zone) and retried after keeps its hash.
      const bodyHash = createHash('sha256')
        .update(JSON.stringify({ ...input, createTimeoutMs: undefined, zone: b.availabilityZone }))
        .digest('hex');
      const workflowId = claimWorkflowId(b.requestId);

      const startOptions = {
        taskQueue: config.temporal.taskQueue,
        workflowId,
        args: [input] as [ClaimInput],
        memo: { bodyHash },
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      };
      // For the dashboard, after the answer: a slow or failed write never delays a claim.
      const logClaim = (outcome: string, httpStatus: number, result?: ClaimResult) =>
        void claimLog
          .record({
            requestId: b.requestId,
            workflowId,
            projectId: b.projectId,
            os: input.os,
            volumeType: b.volumeType,
            zone: result?.availabilityZone ?? (zone || null),
            outcome,
            httpStatus,
            seconds: result ? (result.timingsMs.total ?? 0) / 1000 : null,
            fallbackReason: result?.fallbackReason ?? null,
          })
          .catch((err: Error) => req.log.warn(`claim log: ${err.message}`));
      const answered = (result: ClaimResult) => {
        metrics.claims.inc({ outcome: result.outcome, status: '201' });
        metrics.claimSeconds.observe(
          { outcome: result.outcome },
          (result.timingsMs.total ?? 0) / 1000,
        );
        logClaim(result.outcome, 201, result);
        return reply
          .header('Location', location(b.requestId))
          .status(201)
          .send({ requestId: b.requestId, status: 'completed', ...result });
      };
      const running = async () => {
        metrics.claims.inc({ outcome: 'running', status: '202' });
        return reply
          .header('Location', location(b.requestId))
          .header('Retry-After', pollAfter(await backlogNow(req)))
          .status(202)
          .send({ requestId: b.requestId, status: 'running' });
      };
      try {
        // Admission: only past the bound does it cost a call (is this claim already started?).
        // What waits: the queue's backlog as the server last told it, plus the claims this
        // process started since (the stats lag a burst by seconds: api/admission.ts).
        if (maxBacklog > 0) {
          const s = await backlogNow(req);
          const queued = s?.count ?? 0;
          const recent = recentStarts.count();
          const waiting = queued + recent;
          // Counted and taken in one step (no await between): a burst's requests, all past the
          // same read of the stats, are admitted up to the bound and no further.
          if (waiting < maxBacklog) recentStarts.add();
          else if (!(await started(workflowId))) {
            metrics.claims.inc({ outcome: 'refused_backlog', status: '429' });
            const after = retryAfterSeconds(waiting - maxBacklog + 1, s?.dispatchPerSecond ?? 0);
            return reply
              .header('Retry-After', String(after))
              .status(429)
              .send({
                error: `claim backlog: about ${waiting} claims wait for a worker (${queued} queued in Temporal, ${recent} started by this API in the last ${STATS_LAG_MS / 1000} s), max_claim_backlog is ${maxBacklog}; this claim was not started: retry with the same requestId in ${after} s`,
              });
          }
        }
        const early = await deliveredWithin(
          temporal,
          startOptions,
          bodyHash,
          config.api.claimWaitMs,
          deps.closing,
        );
        if (early.result) return answered(early.result);
        if (!early.closed) return await running();
        // A claim that ended before: its outcome (the same body's) is the answer.
        const handle = temporal.workflow.getHandle<typeof claimVolumeWorkflow>(workflowId);
        assertSameBody((await bounded(handle.describe())).memo, bodyHash, b.requestId);
        return answered(await bounded(handle.result()));
      } catch (err) {
        if (err instanceof TemporalDown) return serviceUnavailable(reply, err);
        if (err instanceof BodyMismatch) return reply.status(409).send({ error: err.message });
        if (err instanceof WorkflowFailedError || err instanceof ClaimFailed) {
          metrics.claims.inc({ outcome: 'failed', status: '422' });
          logClaim('failed', 422);
          return reply
            .header('Location', location(b.requestId))
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
        response: {
          200: ref(
            'ClaimReply',
            'The claim: running (its step; a Retry-After header says when to ask again), completed or failed.',
          ),
          400: ref('Error', 'A malformed requestId.'),
          404: ref('Error', 'No claim with this requestId.'),
          503: ref('Error', 'Temporal did not answer.'),
          ...v1Errors,
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
          historyUrl: historyUrl(config.temporal, desc.workflowId),
        };
        if (desc.status.name === 'RUNNING') {
          const backlog = backlogNow(req); // meanwhile
          // The step comes from a query, which needs a worker; that it runs comes from the
          // server. No worker answering (restarting, all busy) is still "running".
          const s: ClaimStatus | null = await bounded(handle.query(claimStatusQuery), 3000).catch(
            (err: unknown) => {
              req.log.warn({ err }, `claim ${req.params.requestId}: status query unanswered`);
              return null;
            },
          );
          void reply.header('Retry-After', pollAfter(await backlog));
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
