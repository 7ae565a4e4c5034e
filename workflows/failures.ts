/** What an activity failure says, unwrapped from Temporal's ActivityFailure envelope. */
import { ActivityFailure, ApplicationFailure } from '@temporalio/workflow';

const causeOf = (err: unknown): unknown =>
  err instanceof ActivityFailure && err.cause ? err.cause : err;

/** The ApplicationFailure type (e.g. 'CinderOverLimit'), if any. */
export function failureType(err: unknown): string | undefined {
  const cause = causeOf(err);
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

export function failureMessage(err: unknown): string {
  const cause = causeOf(err);
  return cause instanceof Error ? cause.message : String(cause);
}

/** `Type: message`, for reasons shown to callers. */
export function failureReason(err: unknown): string {
  const type = failureType(err);
  return `${type ? `${type}: ` : ''}${failureMessage(err)}`;
}
