/**
 * A pool hit consumed stock: ask for a fill soon. Claims go first: a fill's listing, creates and
 * polling compete with hand-offs for Cinder, so during a burst the request waits until claims
 * have been quiet for REFILL_QUIET_MS, at most REFILL_MAX_DELAY_MS after the first claim that
 * asked (a steady stream still gets its refill). One request per worker covers every claim
 * before it. BUFFER_ONE makes a request during a running fill queue exactly one more run (a SKIP
 * would lose it, and the stock would wait for the next tick); further requests while one is
 * queued add nothing.
 */
import { log } from '@temporalio/activity';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { scheduleIds } from '../../contracts/fill';
import type { Deps } from '../deps';

/** A refill is requested once claims were quiet this long… */
export const REFILL_QUIET_MS = 1_500;
/** …and at most this long after the first claim that asked for it. */
export const REFILL_MAX_DELAY_MS = 10_000;

export type RefillRequester = ReturnType<typeof refillRequester>;

/** One per worker: the timer state of the coalesced refill request. */
export function refillRequester({ config, temporal }: Pick<Deps, 'config' | 'temporal'>) {
  let firstAskedAt: number | null = null;
  let pending: NodeJS.Timeout | undefined;

  async function request(): Promise<void> {
    if (!temporal) return;
    try {
      const fill = temporal.schedule.getHandle(scheduleIds(config.temporal.schedulePrefix).fill);
      // trigger() runs even a paused schedule: an operator's pause must stop refills too.
      if ((await fill.describe()).state.paused) return;
      await fill.trigger(ScheduleOverlapPolicy.BUFFER_ONE);
    } catch (err) {
      log.warn(`refill trigger failed (the next tick will refill): ${(err as Error).message}`);
    }
  }

  /** Asks for a refill; the timer sends it once the claims around this one are served. */
  function ask(): void {
    const now = Date.now();
    firstAskedAt ??= now;
    const at = Math.min(now + REFILL_QUIET_MS, firstAskedAt + REFILL_MAX_DELAY_MS);
    clearTimeout(pending);
    pending = setTimeout(
      () => {
        pending = undefined;
        firstAskedAt = null;
        void request();
      },
      Math.max(0, at - now),
    ).unref();
  }

  return { ask };
}
