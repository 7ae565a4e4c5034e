/**
 * The tables that only grow, pruned to their retention by the status check (and claim_demand by
 * the fill too): claim_log (the dashboard's claims) and claim_demand (demand and fair share).
 *
 * A delete takes one batch of rows per statement, each its own transaction: locks stay on the
 * batch and last milliseconds, so claims writing these tables never wait behind a prune of a big
 * backlog. Rows another session holds are skipped (SKIP LOCKED) and taken by a later pass. One
 * call deletes at most `maxBatches` batches, so a pass stays well within its activity's timeout;
 * the rest goes in the next pass.
 */
import type { AppConfig } from '../config/load';
import type { Db } from './db';

/** Each prunable table with its primary key (the batch's handle) and its time column `at`. */
const PRUNABLE = { claim_log: 'request_id', claim_demand: 'claim_id' } as const;
export type PrunableTable = keyof typeof PRUNABLE;

export interface PruneLimits {
  /** Rows per statement. */
  batch: number;
  /** Statements per call. */
  maxBatches: number;
}

export const PRUNE_LIMITS: PruneLimits = { batch: 5000, maxBatches: 200 };

/** Deletes the table's rows older than `olderThanSeconds` in batches; returns how many went. */
export async function deleteOlderThan(
  db: Db,
  table: PrunableTable,
  olderThanSeconds: number,
  limits: PruneLimits = PRUNE_LIMITS,
): Promise<number> {
  const key = PRUNABLE[table];
  const statement = `DELETE FROM ${table} WHERE ${key} IN (
      SELECT ${key} FROM ${table} WHERE at < now() - make_interval(secs => $1)
       LIMIT $2 FOR UPDATE SKIP LOCKED)`;
  let removed = 0;
  for (let i = 0; i < limits.maxBatches; i++) {
    const { rowCount } = await db.query(statement, [olderThanSeconds, limits.batch]);
    removed += rowCount ?? 0;
    if ((rowCount ?? 0) < limits.batch) break;
  }
  return removed;
}

/** Rows removed by one prune, per table. */
export interface PruneCounts {
  claimLog: number;
  claimDemand: number;
}

/** Both tables pruned to the configured retention. */
export async function pruneHistory(
  db: Db,
  retention: AppConfig['pool']['retention'],
  limits: PruneLimits = PRUNE_LIMITS,
): Promise<PruneCounts> {
  return {
    claimLog: await deleteOlderThan(db, 'claim_log', retention.claimLogDays * 86_400, limits),
    claimDemand: await deleteOlderThan(
      db,
      'claim_demand',
      retention.claimDemandMinutes * 60,
      limits,
    ),
  };
}
