/**
 * The pool table and the OS table. Every state change is one SQL statement, so it is atomic by
 * itself; reservation uses FOR UPDATE SKIP LOCKED so concurrent claims never get the same row
 * and never wait on each other.
 */
import type pg from 'pg';
import type { ResolvedImage } from '../../contracts/fill';

export type PoolStatus = 'creating' | 'available' | 'reserved' | 'deleting' | 'flagged';

export interface PoolVolume {
  id: number;
  volumeId: string | null;
  name: string;
  type: string;
  os: string;
  /** The availability zone of the pool ('' when the pool names no zones). */
  zone: string;
  snapshotId: string;
  volumeType: string | null;
  sizeGb: number | null;
  status: PoolStatus;
  reservedBy: string | null;
  reservedAt: Date | null;
  /** How far the holder's hand-off got (lib/pool-state/handoff.ts); null while not reserved. */
  handoffState: 'reserved' | 'transferring' | 'accepted' | null;
  /** The fencing token of the latest hand-off or compensation attempt. */
  epoch: number;
  createdAt: Date;
  updatedAt: Date;
  requestedAt: Date | null;
  readyAt: Date | null;
  deleteAttempts: number;
  lastError: string | null;
}

/** An OS table row: the resolved image, and when sync-os or a fill recorded it. */
export interface OsImage extends ResolvedImage {
  syncedAt: Date;
}

export interface PoolCount {
  type: string;
  os: string;
  zone: string;
  status: PoolStatus;
  /** Made from the OS's current snapshot (false: stale stock, never handed out). */
  current: boolean;
  count: number;
}

export type Queryable = Pick<pg.Pool, 'query'>;

const POOL_COLUMNS = `id, volume_id, name, type, os, zone, snapshot_id, volume_type, size_gb, status,
  reserved_by, reserved_at, handoff_state, epoch, created_at, updated_at, requested_at, ready_at, delete_attempts, last_error`;

function toPoolVolume(r: Record<string, unknown>): PoolVolume {
  return {
    id: Number(r.id),
    volumeId: (r.volume_id as string | null) ?? null,
    name: r.name as string,
    type: r.type as string,
    os: r.os as string,
    zone: (r.zone as string | undefined) ?? '',
    snapshotId: r.snapshot_id as string,
    volumeType: (r.volume_type as string | null) ?? null,
    sizeGb: (r.size_gb as number | null) ?? null,
    status: r.status as PoolStatus,
    reservedBy: (r.reserved_by as string | null) ?? null,
    reservedAt: (r.reserved_at as Date | null) ?? null,
    handoffState: (r.handoff_state as PoolVolume['handoffState']) ?? null,
    epoch: Number(r.epoch ?? 0),
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
    requestedAt: (r.requested_at as Date | null) ?? null,
    readyAt: (r.ready_at as Date | null) ?? null,
    deleteAttempts: Number(r.delete_attempts ?? 0),
    lastError: (r.last_error as string | null) ?? null,
  };
}

function toOsImage(r: Record<string, unknown>): OsImage {
  return {
    os: r.os as string,
    type: r.type as string,
    zone: (r.zone as string | undefined) ?? '',
    snapshotId: r.snapshot_id as string,
    snapshotName: r.snapshot_name as string,
    version: r.version as string,
    volumeType: r.volume_type as string,
    sizeGb: r.size_gb as number,
    syncedAt: r.synced_at as Date,
  };
}

export interface NewPoolVolume {
  name: string;
  type: string;
  os: string;
  zone?: string;
  snapshotId: string;
  volumeType?: string | null;
  sizeGb?: number | null;
  volumeId?: string | null;
  status?: PoolStatus;
}

export class PoolRepository {
  constructor(private readonly db: Queryable) {}

  /**
   * Counts per (type, os, zone, status), split by whether the stock is made from the current
   * image of its zone.
   */
  async countByTypeOsStatus(): Promise<PoolCount[]> {
    const { rows } = await this.db.query(
      `SELECT p.type, p.os, p.zone, p.status,
              (i.snapshot_id IS NULL OR i.snapshot_id = p.snapshot_id) AS current,
              count(*)::int AS count
         FROM pool_volumes p
         LEFT JOIN os_images i ON i.os = p.os AND i.type = p.type AND i.zone = p.zone
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5`,
    );
    return rows.map((r) => ({
      type: r.type,
      os: r.os,
      zone: r.zone,
      status: r.status,
      current: r.current,
      count: r.count,
    }));
  }

  /**
   * Records a pool volume (seed step 6): a row with this volume id is updated, else a row with
   * this name is updated (a create recorded before Cinder answered), else one is inserted.
   */
  async upsert(v: NewPoolVolume): Promise<PoolVolume> {
    const { rows } = await this.db.query(
      `INSERT INTO pool_volumes (volume_id, name, type, os, snapshot_id, volume_type, size_gb, status, zone)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (name) DO UPDATE SET
         volume_id   = COALESCE(EXCLUDED.volume_id, pool_volumes.volume_id),
         type        = EXCLUDED.type,
         os          = EXCLUDED.os,
         zone        = EXCLUDED.zone,
         snapshot_id = EXCLUDED.snapshot_id,
         volume_type = COALESCE(EXCLUDED.volume_type, pool_volumes.volume_type),
         size_gb     = COALESCE(EXCLUDED.size_gb, pool_volumes.size_gb),
         status      = CASE WHEN pool_volumes.status = 'reserved' THEN pool_volumes.status
                            ELSE EXCLUDED.status END,
         updated_at  = now()
       RETURNING ${POOL_COLUMNS}`,
      [
        v.volumeId ?? null,
        v.name,
        v.type,
        v.os,
        v.snapshotId,
        v.volumeType ?? null,
        v.sizeGb ?? null,
        v.status ?? 'creating',
        v.zone ?? '',
      ],
    );
    return toPoolVolume(rows[0]);
  }

  async get(id: number): Promise<PoolVolume | null> {
    const { rows } = await this.db.query(`SELECT ${POOL_COLUMNS} FROM pool_volumes WHERE id = $1`, [
      id,
    ]);
    return rows[0] ? toPoolVolume(rows[0]) : null;
  }

  async findByVolumeId(volumeId: string): Promise<PoolVolume | null> {
    const { rows } = await this.db.query(
      `SELECT ${POOL_COLUMNS} FROM pool_volumes WHERE volume_id = $1`,
      [volumeId],
    );
    return rows[0] ? toPoolVolume(rows[0]) : null;
  }

  async findByName(name: string): Promise<PoolVolume | null> {
    const { rows } = await this.db.query(
      `SELECT ${POOL_COLUMNS} FROM pool_volumes WHERE name = $1`,
      [name],
    );
    return rows[0] ? toPoolVolume(rows[0]) : null;
  }

  async listByStatus(status: PoolStatus): Promise<PoolVolume[]> {
    const { rows } = await this.db.query(
      `SELECT ${POOL_COLUMNS} FROM pool_volumes WHERE status = $1 ORDER BY created_at, id`,
      [status],
    );
    return rows.map(toPoolVolume);
  }

  async listAll(): Promise<PoolVolume[]> {
    const { rows } = await this.db.query(`SELECT ${POOL_COLUMNS} FROM pool_volumes ORDER BY id`);
    return rows.map(toPoolVolume);
  }

  /** Moves a row from one status to another; false when it was not in `from` (someone else won). */
  async transition(
    id: number,
    from: PoolStatus,
    to: Exclude<PoolStatus, 'reserved'>,
  ): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE pool_volumes SET status = $3, updated_at = now() WHERE id = $1 AND status = $2`,
      [id, from, to],
    );
    return rowCount === 1;
  }

  /**
   * Reserves one `available` row of (type, os, zone) for `claimId`, oldest first, only from the
   * given snapshot when one is named (stale stock is never handed out). Idempotent per claim: a
   * claim that already holds a row gets the same row back.
   */
  async reserve(
    pool: { type: string; os: string; zone: string },
    claimId: string,
    snapshotId?: string,
  ): Promise<PoolVolume | null> {
    // The row this claim already holds, else a fresh one, with the claim's twin attempts
    // serialized (migration 1764200000001_reserve-serialized): a twin finds its twin's row.
    const { rows } = await this.db.query(
      `SELECT ${POOL_COLUMNS} FROM reserve_pool_volume($1, $2, $3, $4, $5)`,
      [pool.type, pool.os, pool.zone, claimId, snapshotId ?? null],
    );
    return rows[0] ? toPoolVolume(rows[0]) : null;
  }

  async heldBy(claimId: string): Promise<PoolVolume | null> {
    const { rows } = await this.db.query(
      `SELECT ${POOL_COLUMNS} FROM pool_volumes WHERE reserved_by = $1`,
      [claimId],
    );
    return rows[0] ? toPoolVolume(rows[0]) : null;
  }

  /**
   * A row whose volume Cinder refused to delete: out of stock, with Cinder's message, until the
   * status check manages to delete it.
   */
  async flag(id: number, error: string): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE pool_volumes SET status = 'flagged', last_error = $2,
              delete_attempts = delete_attempts + 1, updated_at = now()
        WHERE id = $1 AND status IN ('deleting', 'flagged')`,
      [id, error.slice(0, 1000)],
    );
    return rowCount === 1;
  }

  /** Rows in `deleting` untouched for `olderThanMs` (their drain died or failed), and flagged rows. */
  async listDeleteBacklog(olderThanMs: number): Promise<PoolVolume[]> {
    const { rows } = await this.db.query(
      `SELECT ${POOL_COLUMNS} FROM pool_volumes
        WHERE status = 'flagged'
           OR (status = 'deleting' AND updated_at < now() - make_interval(secs => $1))
        ORDER BY id`,
      [olderThanMs / 1000],
    );
    return rows.map(toPoolVolume);
  }

  /** Takes a backlog row for one more delete attempt (stamps it, so concurrent checks skip it). */
  async retakeForDelete(id: number, seen: Date): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE pool_volumes SET status = 'deleting', updated_at = now()
        WHERE id = $1 AND status IN ('deleting', 'flagged')
          AND date_trunc('milliseconds', updated_at) = $2`,
      [id, seen],
    );
    return rowCount === 1;
  }

  /**
   * Records the Cinder volume of a row once Cinder accepted the create. False when the row already
   * names another volume (a zombie attempt raced a retry): the caller's volume is a duplicate.
   */
  async setVolume(id: number, volumeId: string, requestedAt: Date | null): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE pool_volumes SET volume_id = $2, requested_at = COALESCE(requested_at, $3), updated_at = now()
        WHERE id = $1 AND (volume_id IS NULL OR volume_id = $2)`,
      [id, volumeId, requestedAt],
    );
    return rowCount === 1;
  }

  /** creating → available, stamping when it became ready and keeping the refill's lead time. */
  async markAvailable(id: number): Promise<boolean> {
    const { rows } = await this.db.query<{ n: number }>(
      `WITH up AS (
         UPDATE pool_volumes SET status = 'available', ready_at = now(), updated_at = now()
          WHERE id = $1 AND status = 'creating'
          RETURNING type, os, zone, requested_at, ready_at),
       lead AS (
         INSERT INTO pool_lead_times (type, os, zone, seconds)
         SELECT type, os, zone, extract(epoch FROM ready_at - requested_at) FROM up
          WHERE requested_at IS NOT NULL)
       SELECT count(*)::int AS n FROM up`,
      [id],
    );
    return rows[0]?.n === 1;
  }

  /**
   * Takes the next creation slot of a global rate limit: at least `intervalSeconds` after the
   * previous slot, never in the past. Returns how long to wait for it and the slot's time.
   */
  async takeSlot(name: string, intervalSeconds: number): Promise<{ waitMs: number; at: Date }> {
    await this.db.query(
      `INSERT INTO rate_limits (name, last_at) VALUES ($1, '-infinity') ON CONFLICT (name) DO NOTHING`,
      [name],
    );
    const { rows } = await this.db.query(
      `UPDATE rate_limits SET last_at = greatest(last_at + make_interval(secs => $2), clock_timestamp())
        WHERE name = $1
      RETURNING last_at, extract(epoch FROM (last_at - clock_timestamp())) * 1000 AS wait_ms`,
      [name, intervalSeconds],
    );
    return { waitMs: Math.max(0, Number(rows[0].wait_ms)), at: rows[0].last_at as Date };
  }

  async delete(id: number): Promise<boolean> {
    const { rowCount } = await this.db.query(`DELETE FROM pool_volumes WHERE id = $1`, [id]);
    return rowCount === 1;
  }

  async deleteByVolumeId(volumeId: string): Promise<boolean> {
    const { rowCount } = await this.db.query(`DELETE FROM pool_volumes WHERE volume_id = $1`, [
      volumeId,
    ]);
    return rowCount === 1;
  }
}

/**
 * The claim-name lock: one running claim per (tenant project, volume name). Another claim for the
 * same name waits until the holder has finished, then finds its volume by name.
 */
export class ClaimNameRepository {
  constructor(private readonly db: Queryable) {}

  /** Takes the name for `claimId`, or returns the claim that holds it. */
  async lock(projectId: string, name: string, claimId: string): Promise<string> {
    const { rows } = await this.db.query<{ claim_id: string }>(
      `INSERT INTO claim_names (project_id, name, claim_id) VALUES ($1, $2, $3)
       ON CONFLICT (project_id, name) DO UPDATE SET claim_id = claim_names.claim_id
       RETURNING claim_id`,
      [projectId, name, claimId],
    );
    return rows[0]?.claim_id as string;
  }

  /** Takes the name over from a holder that is no longer running; false if someone else did. */
  async takeOver(projectId: string, name: string, from: string, to: string): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE claim_names SET claim_id = $4, locked_at = now()
        WHERE project_id = $1 AND name = $2 AND claim_id = $3`,
      [projectId, name, from, to],
    );
    return rowCount === 1;
  }

  async release(projectId: string, name: string, claimId: string): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `DELETE FROM claim_names WHERE project_id = $1 AND name = $2 AND claim_id = $3`,
      [projectId, name, claimId],
    );
    return rowCount === 1;
  }
}

export class OsImageRepository {
  constructor(private readonly db: Queryable) {}

  async list(): Promise<OsImage[]> {
    const { rows } = await this.db.query(`SELECT * FROM os_images ORDER BY os, type, zone`);
    return rows.map(toOsImage);
  }

  async get(os: string, type: string, zone: string): Promise<OsImage | null> {
    const { rows } = await this.db.query(
      `SELECT * FROM os_images WHERE os = $1 AND type = $2 AND zone = $3`,
      [os, type, zone],
    );
    return rows[0] ? toOsImage(rows[0]) : null;
  }

  async upsert(img: Omit<OsImage, 'syncedAt'>): Promise<void> {
    await this.db.query(
      `INSERT INTO os_images (os, type, zone, snapshot_id, snapshot_name, version, volume_type, size_gb, synced_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
       ON CONFLICT (os, type, zone) DO UPDATE SET snapshot_id = EXCLUDED.snapshot_id,
         snapshot_name = EXCLUDED.snapshot_name, version = EXCLUDED.version,
         volume_type = EXCLUDED.volume_type, size_gb = EXCLUDED.size_gb, synced_at = now()`,
      [
        img.os,
        img.type,
        img.zone,
        img.snapshotId,
        img.snapshotName,
        img.version,
        img.volumeType,
        img.sizeGb,
      ],
    );
  }

  /** Deletes the images of every (os, type, zone) not in `pools`. */
  async keepOnly(pools: { os: string; type: string; zone: string }[]): Promise<number> {
    const { rowCount } = await this.db.query(
      `DELETE FROM os_images i
        WHERE NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::text[], $3::text[]) AS k(os, type, zone)
                           WHERE k.os = i.os AND k.type = i.type AND k.zone = i.zone)`,
      [pools.map((p) => p.os), pools.map((p) => p.type), pools.map((p) => p.zone)],
    );
    return rowCount ?? 0;
  }

  /** sync-os: replaces the whole table in one transaction (readers see old or new, never empty). */
  async replaceAll(pool: pg.Pool, images: Omit<OsImage, 'syncedAt'>[]): Promise<void> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('DELETE FROM os_images');
      const repo = new OsImageRepository(client);
      for (const img of images) await repo.upsert(img);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
  }
}
