/**
 * The hand-off of a reserved pool row as one fenced state machine (see the migration
 * 1764200000000_fenced-handoff and ARCHITECTURE.md):
 *
 *   available ─reserve─> reserved ─> transferring ─> accepted ─> delivered (row deleted)
 *                           ^             │
 *                           └─ undone ────┘   (transfer dropped, volume back in the pool)
 *
 * Every (re)start of a step takes a new epoch (`take`); every Cinder mutation is preceded by a
 * compare-and-set on (row, holder, epoch, expected state). A `false` or `null` answer means the
 * fence was lost: another attempt (or a compensation, or another claim after a release) owns the
 * row now, and the caller makes no further Cinder mutation.
 */
import type { Queryable } from './repository';

export type HandOffState = 'reserved' | 'transferring' | 'accepted';

/** One attempt's hold on a reserved row. */
export interface Fence {
  rowId: number;
  claimId: string;
  epoch: number;
}

export interface HeldRow {
  fence: Fence;
  /** The state the row was in when this attempt took it. */
  was: HandOffState;
  /** The state it is in now (`begin` moves reserved → transferring in the same statement). */
  state: HandOffState;
  transferId: string | null;
}

export class HandOffRows {
  constructor(private readonly db: Queryable) {}

  /**
   * Takes the row for a new attempt of `claimId` (a new epoch); null when the claim does not
   * hold it (released, delivered, or another claim's by now). With `begin`, a row still in
   * `reserved` moves to `transferring` at once: the fenced licence for the first transfer.
   */
  async take(rowId: number, claimId: string, begin = false): Promise<HeldRow | null> {
    const { rows } = await this.db.query<{
      epoch: string;
      was: HandOffState;
      state: HandOffState;
      transfer_id: string | null;
    }>(
      `WITH old AS (
         SELECT id, handoff_state AS was FROM pool_volumes
          WHERE id = $1 AND reserved_by = $2 AND status = 'reserved'
          FOR UPDATE)
       UPDATE pool_volumes p
          SET epoch = p.epoch + 1, updated_at = now(),
              handoff_state = CASE WHEN $3 AND old.was = 'reserved' THEN 'transferring'
                                   ELSE p.handoff_state END
         FROM old WHERE p.id = old.id
       RETURNING p.epoch, old.was, p.handoff_state AS state, p.transfer_id`,
      [rowId, claimId, begin],
    );
    const r = rows[0];
    if (!r) return null;
    return {
      fence: { rowId, claimId, epoch: Number(r.epoch) },
      was: r.was,
      state: r.state,
      transferId: r.transfer_id,
    };
  }

  /**
   * Compare-and-set: `from` → `to` (the same state to only confirm the fence), recording the
   * transfer's id when given (`null` clears it). False: the fence was lost.
   */
  async advance(
    f: Fence,
    from: HandOffState,
    to: HandOffState,
    transferId?: string | null,
  ): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE pool_volumes
          SET handoff_state = $5, updated_at = now(),
              transfer_id = CASE WHEN $6 THEN $7 ELSE transfer_id END
        WHERE id = $1 AND reserved_by = $2 AND epoch = $3 AND handoff_state = $4`,
      [f.rowId, f.claimId, f.epoch, from, to, transferId !== undefined, transferId ?? null],
    );
    return rowCount === 1;
  }

  /** Gives the row back to the pool (its volume is available there); false: fence lost. */
  async release(f: Fence, from: HandOffState): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE pool_volumes
          SET status = 'available', reserved_by = NULL, reserved_at = NULL,
              handoff_state = NULL, transfer_id = NULL, updated_at = now()
        WHERE id = $1 AND reserved_by = $2 AND epoch = $3 AND handoff_state = $4`,
      [f.rowId, f.claimId, f.epoch, from],
    );
    return rowCount === 1;
  }

  /**
   * Delivered: the accepted (and renamed) volume's row goes, and the claim is recorded as a pool
   * hit of the tenant (the demand that sizes the pool, the fair share) — one statement, so a
   * delivery is never counted twice or lost. False: fence lost.
   */
  async deliver(f: Fence, projectId: string): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `WITH gone AS (
         DELETE FROM pool_volumes
          WHERE id = $1 AND reserved_by = $2 AND epoch = $3 AND handoff_state = 'accepted'
          RETURNING type, os, zone)
       INSERT INTO claim_demand (claim_id, type, os, zone, project_id, hit)
       SELECT $2, type, os, zone, $4, true FROM gone
       ON CONFLICT (claim_id) DO UPDATE SET hit = true
       RETURNING 1`,
      [f.rowId, f.claimId, f.epoch, projectId],
    );
    return rowCount === 1;
  }

  /** Quarantined: the row goes from whatever state it was in. False: fence lost. */
  async remove(f: Fence, from: HandOffState): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `DELETE FROM pool_volumes
        WHERE id = $1 AND reserved_by = $2 AND epoch = $3 AND handoff_state = $4`,
      [f.rowId, f.claimId, f.epoch, from],
    );
    return rowCount === 1;
  }
}
