/**
 * Guards for activities whose attempts must never overlap. Temporal starts a retry when an
 * attempt misses its heartbeat or start-to-close timeout, even though that attempt may still be
 * running (a slow Cinder call, a stalled event loop, a worker cut off from Temporal). Then two
 * attempts of one step ("twins") race each other: two tenant volumes of one name, a retry
 * deleting the transfer its twin is accepting. Three layers keep that from happening:
 * - heartbeats on a timer while the attempt is alive, so a slow call is not taken for a dead one;
 * - Cinder calls tied to the attempt's cancellation signal, so a cancelled attempt stops;
 * - a PostgreSQL advisory lock per step: a twin that starts anyway fails (retryably) until the
 *   first attempt is over. The lock is tied to the database session, so a killed worker's lock
 *   goes away with its connection.
 */
import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import pg from 'pg';
import type { CinderClient } from '../lib/cinder';
import { survivingServerLoss, type Db } from '../lib/pool-state/db';
import { STEP_BUSY } from '../contracts/cinder';

/**
 * Lock sessions per database pool. A session holds its lock for a whole step (seconds of Cinder
 * calls under load), so they come from a pool of their own, apart from the short queries. The
 * locks only keep twin attempts from racing (a latency measure): what keeps a pool volume from
 * two claims is the row's fence (lib/pool-state/handoff.ts). With the query pool's 10, a worker
 * holds at most 30 PostgreSQL connections, so two workers and the API stay well under the
 * server's default limit of 100; a step waits for a free session rather than fail.
 */
export const LOCK_SESSIONS = 20;
const lockPools = new WeakMap<Db, Db>();

function lockPool(db: Db): Db {
  let pool = lockPools.get(db);
  if (!pool) {
    pool = survivingServerLoss(
      new pg.Pool({
        ...db.options,
        max: LOCK_SESSIONS,
        idleTimeoutMillis: 5_000,
        connectionTimeoutMillis: 60_000,
        // Idle sessions never keep a stopping worker alive.
        allowExitOnIdle: true,
      }),
    );
    lockPools.set(db, pool);
  }
  return pool;
}

const HEARTBEAT_EVERY_MS = 3_000;

/**
 * Runs `fn` heartbeating every few seconds (Temporal throttles what it sends). The first beat
 * comes after one interval, not at once: the heartbeat timeout counts from the attempt's start
 * anyway, and a step that is over within seconds (a pool hit) sends none, one server call less.
 */
export async function withHeartbeats<T>(fn: () => Promise<T>): Promise<T> {
  const timer = setInterval(() => heartbeat(), HEARTBEAT_EVERY_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** This attempt's Cinder client: its calls are aborted when the attempt is cancelled. */
export function cinderForAttempt(cinder: CinderClient): CinderClient {
  return cinder.withSignal(Context.current().cancellationSignal);
}

/**
 * Runs `fn` holding the advisory lock `key` (for the whole call, on one database session), with
 * heartbeats. If another attempt holds it, fails retryably: Temporal tries again after backoff.
 */
export async function exclusive<T>(db: Db, key: string, fn: () => Promise<T>): Promise<T> {
  const session = await lockPool(db).connect();
  let locked = false;
  try {
    const { rows } = await session.query<{ ok: boolean }>(
      `SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok`,
      [key],
    );
    locked = rows[0]?.ok === true;
    if (!locked) {
      throw ApplicationFailure.create({
        type: STEP_BUSY,
        message: `another attempt of ${key} is still running`,
      });
    }
    return await withHeartbeats(fn);
  } finally {
    if (locked) {
      // Not awaited: the step is over, so its result need not wait for the unlock (a twin that
      // starts in between fails retryably, as it would a moment earlier).
      void session
        .query(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, [key])
        .then(() => session.release())
        // A session whose unlock failed is dropped: closing it releases the lock.
        .catch((err: Error) => session.release(err));
    } else session.release();
  }
}
