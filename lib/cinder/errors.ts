/**
 * Typed Cinder/Keystone errors. Each carries Cinder's own message and request id, so an operator
 * can find the request in Cinder's logs. `type` is a stable string used as the Temporal
 * ApplicationFailure type by activities (e.g. retry on CinderServerError, not on CinderBadRequest);
 * the names come from the contract (contracts/cinder.ts) that workflows read them from.
 */
import { CINDER_FAILURES } from '../../contracts/cinder';

export interface CinderErrorDetails {
  status?: number;
  method: string;
  path: string;
  requestId?: string;
  cause?: unknown;
}

export class CinderError extends Error {
  override name: string = CINDER_FAILURES.error;
  /** Stable type name, also used as the ApplicationFailure type. */
  readonly type: string = CINDER_FAILURES.error;
  readonly status?: number;
  readonly method: string;
  readonly path: string;
  readonly requestId?: string;
  /** Whether repeating the same call later may succeed. */
  readonly retryable: boolean = false;

  constructor(message: string, details: CinderErrorDetails) {
    const where = `${details.method} ${details.path}`;
    const rid = details.requestId ? ` [${details.requestId}]` : '';
    super(`${message} (${where}${details.status ? ` → ${details.status}` : ''}${rid})`, {
      cause: details.cause,
    });
    this.status = details.status;
    this.method = details.method;
    this.path = details.path;
    this.requestId = details.requestId;
  }
}

export class CinderNotFound extends CinderError {
  override name = CINDER_FAILURES.notFound;
  override readonly type = CINDER_FAILURES.notFound;
}
export class CinderBadRequest extends CinderError {
  override name = CINDER_FAILURES.badRequest;
  override readonly type = CINDER_FAILURES.badRequest;
}
export class CinderUnauthorized extends CinderError {
  override name = CINDER_FAILURES.unauthorized;
  override readonly type = CINDER_FAILURES.unauthorized;
}
export class CinderForbidden extends CinderError {
  override name = CINDER_FAILURES.forbidden;
  override readonly type = CINDER_FAILURES.forbidden;
}
export class CinderConflict extends CinderError {
  override name = CINDER_FAILURES.conflict;
  override readonly type = CINDER_FAILURES.conflict;
}
/** 413: quota exceeded or rate limited. `retryAfterSeconds` comes from Retry-After when sent. */
export class CinderOverLimit extends CinderError {
  override name = CINDER_FAILURES.overLimit;
  override readonly type = CINDER_FAILURES.overLimit;
  readonly retryAfterSeconds?: number;
  constructor(message: string, details: CinderErrorDetails & { retryAfterSeconds?: number }) {
    super(message, details);
    this.retryAfterSeconds = details.retryAfterSeconds;
  }
}
export class CinderServerError extends CinderError {
  override name = CINDER_FAILURES.serverError;
  override readonly type = CINDER_FAILURES.serverError;
  override readonly retryable = true;
}
/** No answer: connection refused/reset, DNS, or our own timeout. */
export class CinderUnavailable extends CinderError {
  override name = CINDER_FAILURES.unavailable;
  override readonly type = CINDER_FAILURES.unavailable;
  override readonly retryable = true;
}

/** Cinder error bodies look like {"itemNotFound": {"message": "...", "code": 404}}. */
export function cinderMessage(body: unknown): string | undefined {
  if (typeof body === 'string') return body.trim().slice(0, 500) || undefined;
  if (!body || typeof body !== 'object') return undefined;
  for (const v of Object.values(body as Record<string, unknown>)) {
    if (v && typeof v === 'object' && typeof (v as { message?: unknown }).message === 'string') {
      return (v as { message: string }).message;
    }
  }
  const top = (body as { message?: unknown; error?: { message?: unknown } }).message;
  if (typeof top === 'string') return top;
  const ks = (body as { error?: { message?: unknown } }).error?.message; // Keystone's shape
  return typeof ks === 'string' ? ks : undefined;
}

export function errorForStatus(
  status: number,
  message: string,
  details: CinderErrorDetails & { retryAfterSeconds?: number },
): CinderError {
  const d = { ...details, status };
  if (status === 400) return new CinderBadRequest(message, d);
  if (status === 401) return new CinderUnauthorized(message, d);
  if (status === 403) return new CinderForbidden(message, d);
  if (status === 404) return new CinderNotFound(message, d);
  if (status === 409) return new CinderConflict(message, d);
  if (status === 413 || status === 429) return new CinderOverLimit(message, d);
  if (status >= 500) return new CinderServerError(message, d);
  return new CinderError(message, d);
}
