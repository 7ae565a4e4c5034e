/**
 * Keeping the table and Cinder in agreement (the seed's check_volume_state, and more):
 * - status check: `creating` rows follow Cinder; idle `available` stock that vanished or broke is
 *   removed, so it is never handed out;
 * - leaks: a pool-tagged volume in the admin project that no row knows is adopted (available,
 *   current image, pool short) or deleted, but only when seen in two consecutive passes;
 * - rows whose volume vanished are removed.
 * One volume list per pass (by the pool tag), not one GET per row.
 */
import { log } from '@temporalio/activity';
import {
  OsImageRepository,
  PoolRepository,
  type PoolVolume,
} from '../../lib/pool-state/repository';
import { TAGS } from '../../lib/pool-state/naming';
import type { Volume } from '../../lib/cinder';
import type { Deps } from '../deps';
import { workflowRunning } from '../../lib/temporal/workflows';
import { CinderError } from '../../lib/cinder';
import { deleteOrFlag, removePoolVolume } from './volumes';
import { deletePoolVolume } from '../cinder/volumes';

export interface CheckResult {
  releasedOrphans: number;
  madeAvailable: number;
  removedFailed: number;
  removedTimedOut: number;
  removedVanished: number;
  stillCreating: number;
  /** Rows left `deleting` by a drain that died or failed, or flagged, deleted this pass. */
  retriedDeletes?: number;
  /** Rows whose volume Cinder refuses to delete (kept out of stock, retried every pass). */
  flagged?: number;
  /** Rows skipped because Cinder did not answer about their volume (never taken as vanished). */
  unreachable?: number;
}

export interface ReconcileResult {
  pass: number;
  tagged: number;
  unknownSeenOnce: number;
  adopted: string[];
  deletedLeaks: string[];
  /** Leaks Cinder refused to delete: kept sighted, tried again next pass. */
  undeletableLeaks?: string[];
  rowsWithoutVolume: number;
}

/** A `deleting` row untouched this long lost its drain (died or failed): the check retries it. */
export const STUCK_DELETING_MS = 2 * 60_000;

const BROKEN = new Set([
  'error',
  'error_deleting',
  'error_extending',
  'error_restoring',
  'deleting',
]);

/** A reservation older than this whose claim workflow is no longer running is recovered. */
export const ORPHANED_RESERVATION_MS = 10 * 60_000;

export function reconcileActivities(deps: Pick<Deps, 'config' | 'cinder' | 'db' | 'temporal'>) {
  const { config, cinder, db, temporal } = deps;
  const repo = new PoolRepository(db);
  const images = new OsImageRepository(db);
  const prefix = config.pool.volumeNamePrefix;

  async function taggedVolumes(): Promise<Map<string, Volume>> {
    const list = await cinder.listVolumes({ metadata: { [TAGS.pool]: prefix } });
    return new Map(list.map((v) => [v.id, v]));
  }

  const removeRow = (rowId: number, volume: Volume | undefined) =>
    removePoolVolume(cinder, repo, rowId, volume);

  /**
   * A claim that ended without finishing (terminated, or failed after its retries) leaves its row
   * reserved. Once the claim workflow is no longer running: a volume still ours and available goes
   * back to the pool; one the tenant already has, or that is gone, loses its row.
   */
  async function recoverOrphanedReservation(
    row: PoolVolume,
    volumes: Map<string, Volume>,
  ): Promise<boolean> {
    if (!temporal || !row.reservedBy || !row.reservedAt) return false;
    if (Date.now() - row.reservedAt.getTime() < ORPHANED_RESERVATION_MS) return false;
    if (await workflowRunning(temporal, row.reservedBy)) return false;
    const v = row.volumeId
      ? (volumes.get(row.volumeId) ?? (await cinder.findVolume(row.volumeId)))
      : null;
    if (v && v.status === 'awaiting-transfer') {
      for (const t of await cinder.listTransfers({ volumeId: v.id }))
        await cinder.deleteTransfer(t.id);
      v.status = 'available';
    }
    if (v && v.projectId !== undefined && v.projectId !== (await cinder.projectId())) {
      await repo.delete(row.id); // handed over: the tenant's volume now
    } else if (v && v.status === 'available') {
      await repo.release(row.id, row.reservedBy);
    } else {
      if (v) await deletePoolVolume(cinder, v).catch(() => undefined);
      await repo.delete(row.id);
    }
    log.warn(`recovered the reservation of ${row.volumeId} left by ${row.reservedBy}`);
    return true;
  }

  /** The seed's check_volume_state, plus idle-stock health. */
  async function checkPoolState(): Promise<CheckResult> {
    const result: CheckResult = {
      releasedOrphans: 0,
      madeAvailable: 0,
      removedFailed: 0,
      removedTimedOut: 0,
      removedVanished: 0,
      stillCreating: 0,
    };
    const volumes = await taggedVolumes();
    const timeoutMs = config.pool.creatingTimeoutMinutes * 60_000;
    await retryDeleteBacklog(result);
    for (const row of await repo.listAll()) {
      if (row.status === 'reserved') {
        if (await recoverOrphanedReservation(row, volumes)) result.releasedOrphans++;
        continue;
      }
      if (row.status === 'deleting' || row.status === 'flagged') continue; // the backlog's
      let v = row.volumeId ? volumes.get(row.volumeId) : undefined;
      if (row.volumeId && !v) {
        try {
          v = (await cinder.findVolume(row.volumeId)) ?? undefined;
        } catch (err) {
          // No answer is not "gone": only a 404 removes a row.
          log.warn(`no answer about pool volume ${row.volumeId}: ${(err as Error).message}`);
          result.unreachable = (result.unreachable ?? 0) + 1;
          continue;
        }
      }
      const age = Date.now() - row.createdAt.getTime();
      if (!row.volumeId) {
        // A create whose Cinder answer was never recorded: adopt by name, or drop once old.
        const byName = [...volumes.values()].find((x) => x.name === row.name);
        if (byName) await repo.setVolume(row.id, byName.id, null);
        else if (age > timeoutMs) {
          await repo.delete(row.id);
          result.removedVanished++;
        } else result.stillCreating++;
        continue;
      }
      if (!v) {
        log.warn(
          `pool volume ${row.volumeId} (${row.name}) vanished from Cinder: removing its row`,
        );
        await repo.delete(row.id);
        result.removedVanished++;
      } else if (row.status === 'creating') {
        if (v.status === 'available') {
          if (await repo.markAvailable(row.id)) result.madeAvailable++;
        } else if (v.status === 'creating' || v.status === 'downloading') {
          if (age > timeoutMs) {
            await removeRow(row.id, v);
            result.removedTimedOut++;
          } else result.stillCreating++;
        } else {
          log.warn(`pool volume ${v.id} (${v.name}) is ${v.status}: deleting it`);
          await removeRow(row.id, v);
          result.removedFailed++;
        }
      } else if (row.status === 'available' && v.status !== 'available') {
        if (BROKEN.has(v.status)) {
          log.warn(`idle pool volume ${v.id} (${v.name}) turned ${v.status}: deleting it`);
          if (await repo.transition(row.id, 'available', 'deleting')) {
            // Refused for good → flagged; a transient failure leaves it to the backlog.
            await deleteOrFlag(cinder, repo, row.id, v.id).then(
              (deleted) =>
                deleted ? result.removedFailed++ : (result.flagged = (result.flagged ?? 0) + 1),
              (e: Error) => log.warn(`delete of ${v?.id} failed, retried later: ${e.message}`),
            );
          }
        } else {
          // Not ours to fix blindly (e.g. attached by someone): never hand it out meanwhile.
          log.warn(
            `idle pool volume ${v.id} (${v.name}) is ${v.status}: taking it out of the pool`,
          );
          if (await repo.transition(row.id, 'available', 'deleting')) {
            await repo.delete(row.id);
            result.removedVanished++;
          }
        }
      }
    }
    return result;
  }

  /**
   * Rows a drain left in `deleting` (it died, or its delete failed) and flagged rows get another
   * delete: gone → row removed; refused for good → flagged with Cinder's message. Each row is
   * taken by stamping it, so two checks at once never work on the same row.
   */
  async function retryDeleteBacklog(result: CheckResult): Promise<void> {
    for (const row of await repo.listDeleteBacklog(STUCK_DELETING_MS)) {
      if (!(await repo.retakeForDelete(row.id, row.updatedAt))) continue;
      try {
        if (await deleteOrFlag(cinder, repo, row.id, row.volumeId))
          result.retriedDeletes = (result.retriedDeletes ?? 0) + 1;
        else result.flagged = (result.flagged ?? 0) + 1;
      } catch (err) {
        log.warn(`retrying the delete of ${row.volumeId} failed: ${(err as Error).message}`);
      }
    }
  }

  async function reconcile(): Promise<ReconcileResult> {
    const { rows } = await db.query<{ pass: string }>(`SELECT nextval('reconcile_pass') AS pass`);
    const pass = Number(rows[0]?.pass);
    const volumes = await taggedVolumes();
    const poolRows = await repo.listAll();
    const knownIds = new Set(poolRows.map((r) => r.volumeId).filter((x): x is string => !!x));
    // A name is enough to know a volume only while its row waits for Cinder's answer; once the row
    // names its volume, another volume with the same name is a duplicate (a leak).
    const knownNames = new Set(poolRows.filter((r) => !r.volumeId).map((r) => r.name));
    const result: ReconcileResult = {
      pass,
      tagged: volumes.size,
      unknownSeenOnce: 0,
      adopted: [],
      deletedLeaks: [],
      rowsWithoutVolume: 0,
    };

    for (const v of volumes.values()) {
      if (knownIds.has(v.id) || knownNames.has(v.name)) continue;
      const prev = await db.query<{ last_pass: string }>(
        `SELECT last_pass FROM leak_sightings WHERE volume_id = $1`,
        [v.id],
      );
      // Acted on only when the previous pass saw it too; otherwise (first sighting, or a pass
      // without it in between) the sighting (re)starts here.
      if (Number(prev.rows[0]?.last_pass ?? -1) !== pass - 1) {
        await db.query(
          `INSERT INTO leak_sightings (volume_id, name, first_pass, last_pass) VALUES ($1, $2, $3, $3)
           ON CONFLICT (volume_id) DO UPDATE SET first_pass = $3, last_pass = $3, seen_at = now()`,
          [v.id, v.name, pass],
        );
        result.unknownSeenOnce++;
        continue;
      }
      const os = v.metadata[TAGS.os];
      const type = v.metadata[TAGS.type];
      const image = os && type ? await images.get(os, type) : null;
      const target =
        config.pool.targets.find((t) => t.os === os && t.volumeType === type)?.target ?? 0;
      const have = poolRows.filter(
        (r) =>
          r.os === os &&
          r.type === type &&
          (r.status === 'available' || r.status === 'creating') &&
          r.snapshotId === image?.snapshotId,
      ).length;
      if (
        v.status === 'available' &&
        image &&
        v.snapshotId === image.snapshotId &&
        have < target &&
        os &&
        type
      ) {
        await repo.upsert({
          name: v.name,
          type,
          os,
          snapshotId: image.snapshotId,
          volumeType: v.volumeType,
          sizeGb: v.size,
          volumeId: v.id,
          status: 'available',
        });
        poolRows.push({
          os,
          type,
          status: 'available',
          snapshotId: image.snapshotId,
        } as (typeof poolRows)[number]);
        log.info(`adopted leaked pool volume ${v.id} (${v.name})`);
        result.adopted.push(v.id);
      } else {
        try {
          await deletePoolVolume(cinder, v);
        } catch (err) {
          // One undeletable leak (attached by someone…) must not stop the pass nor the fill: it
          // stays sighted and is tried again on the next pass.
          if (!(err instanceof CinderError)) throw err;
          log.warn(`could not delete leaked pool volume ${v.id}: ${err.message}`);
          await db.query(`UPDATE leak_sightings SET last_pass = $2 WHERE volume_id = $1`, [
            v.id,
            pass,
          ]);
          (result.undeletableLeaks ??= []).push(v.id);
          continue;
        }
        log.warn(`deleted leaked pool volume ${v.id} (${v.name}, ${v.status})`);
        result.deletedLeaks.push(v.id);
      }
      // Forgotten only once acted on: a failed delete keeps its sighting.
      await db.query(`DELETE FROM leak_sightings WHERE volume_id = $1`, [v.id]);
    }
    await db.query(`DELETE FROM leak_sightings WHERE last_pass < $1`, [pass]);

    // Rows whose volume is gone from Cinder (not just from the tagged list: a claim may have
    // untagged it while the row is reserved).
    for (const r of poolRows) {
      if (
        !r.volumeId ||
        r.status === 'reserved' ||
        r.status === 'deleting' ||
        r.status === 'flagged' ||
        volumes.has(r.volumeId)
      )
        continue;
      if (!(await cinder.findVolume(r.volumeId).catch(() => 'unknown'))) {
        await repo.delete(r.id);
        result.rowsWithoutVolume++;
      }
    }
    return result;
  }

  /** Rows an operator asked to drain: `available` ones of the given OS/type (all when unset). */
  async function listDrainable(filter: {
    os?: string;
    type?: string;
    staleOnly?: boolean;
  }): Promise<number[]> {
    const current = new Map(
      (await images.list()).map((i) => [`${i.os}\u0000${i.type}`, i.snapshotId]),
    );
    return (await repo.listByStatus('available'))
      .filter((r) => (!filter.os || r.os === filter.os) && (!filter.type || r.type === filter.type))
      .filter((r) => !filter.staleOnly || current.get(`${r.os}\u0000${r.type}`) !== r.snapshotId)
      .map((r) => r.id);
  }

  return { checkPoolState, reconcile, listDrainable };
}
