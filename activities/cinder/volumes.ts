/**
 * Cinder helpers both domains use (fill and claim): deleting a volume whatever state it is in,
 * and turning Cinder's errors into Temporal failures — done once, where the activities are built
 * (`asActivities`), so no activity wraps its own calls.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { CinderError, CinderOverLimit, type CinderClient, type Volume } from '../../lib/cinder';

/** A delete Cinder refuses for good (e.g. `in-use`: someone attached it): flag, do not retry. */
export const refusedForGood = (err: unknown): err is CinderError =>
  err instanceof CinderError && !err.retryable && err.status !== 404 && (err.status ?? 500) < 500;

/** States Cinder refuses to delete from: a stuck volume is first reset to `error` (admin). */
const UNDELETABLE = new Set([
  'error_deleting',
  'creating',
  'downloading',
  'extending',
  'attaching',
  'detaching',
  'maintenance',
]);

/**
 * Deletes a pool volume in Cinder whatever state it is stuck in: a pending transfer is cancelled,
 * an undeletable state is reset to `error` first; already deleting or gone is fine.
 */
export async function deletePoolVolume(cinder: CinderClient, v: Volume): Promise<void> {
  if (v.status === 'deleting') return;
  try {
    if (v.status === 'awaiting-transfer') {
      for (const t of await cinder.listTransfers({ volumeId: v.id }))
        await cinder.deleteTransfer(t.id);
    } else if (UNDELETABLE.has(v.status)) {
      await cinder.resetVolumeStatus(v.id, 'error');
    }
    await cinder.deleteVolume(v.id, { cascade: true });
  } catch (err) {
    if (!(err instanceof CinderError && err.status === 404)) throw err;
  }
}

/** A Cinder error as a Temporal failure: permanent ones are not retried. */
function toFailure(err: unknown): unknown {
  if (!(err instanceof CinderError)) return err;
  if (err instanceof CinderOverLimit) {
    return ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: true });
  }
  return ApplicationFailure.create({
    message: err.message,
    type: err.type,
    nonRetryable: !err.retryable && (err.status ?? 500) < 500,
  });
}

/**
 * The activities with every Cinder error thrown out of them turned into a Temporal failure
 * (permanent ones non-retryable, Cinder's error type as the failure type). Other errors pass
 * unchanged.
 */
export function asActivities<T extends Record<string, (...args: never[]) => Promise<unknown>>>(
  activities: T,
): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw toFailure(err);
      }
    };
  }
  return wrapped as T;
}
