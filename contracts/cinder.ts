/**
 * Failure types any activity that reaches Cinder can end with (ApplicationFailure.type): Cinder's
 * typed errors (lib/cinder/errors.ts), the guard's busy step, a bad configuration. Workflow
 * profiles name them as non-retryable; workflows tell them apart. Imported by workflow code: no
 * imports here.
 */

/** Cinder's and Keystone's errors, one type per answer (lib/cinder/errors.ts sets them). */
export const CINDER_FAILURES = {
  /** Any other Cinder error (no more specific type fits its status). */
  error: 'CinderError',
  /** 400: the request itself is wrong. */
  badRequest: 'CinderBadRequest',
  /** 401: the credentials are refused. */
  unauthorized: 'CinderUnauthorized',
  /** 403: the credentials may not do this. */
  forbidden: 'CinderForbidden',
  /** 404: the volume, snapshot or transfer is not there. */
  notFound: 'CinderNotFound',
  /** 409: the resource is in a state that forbids the call. */
  conflict: 'CinderConflict',
  /** 413/429: over quota or rate limited. */
  overLimit: 'CinderOverLimit',
  /** 5xx: Cinder failed (retryable). */
  serverError: 'CinderServerError',
  /** No answer: refused, reset, DNS, or the client's own timeout (retryable). */
  unavailable: 'CinderUnavailable',
} as const;

export type CinderFailure = (typeof CINDER_FAILURES)[keyof typeof CINDER_FAILURES];

/**
 * A step whose twin attempt still holds its lock (activities/guard.ts): retryable, so the retry
 * waits the twin out.
 */
export const STEP_BUSY = 'StepBusy';

/** A configuration an activity cannot work with (lib/config's ConfigError, by its class name). */
export const CONFIG_ERROR = 'ConfigError';
