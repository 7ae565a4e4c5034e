/**
 * Keeping the table and Cinder in agreement (the seed's check_volume_state, and more):
 * - status check: `creating` rows follow Cinder; idle `available` stock that vanished or broke is
 *   removed, so it is never handed out;
 * - leaks: a pool-tagged volume in the admin project that no row knows is adopted (available,
 *   current image, pool short) or deleted, but only when seen in two consecutive passes;
 * - rows whose volume vanished are removed;
 * - the status check prunes the tables that only grow (claim_log, claim_demand) to their retention.
 * One volume list per pass (by the pool tag), not one GET per row.
 */
import { log } from '@temporalio/activity';
import {
  OsImageRepository,
  PoolRepository,
  type PoolVolume,
} from '../../lib/pool-state/repository';
import { TAGS } from '../../lib/pool-state/naming';
import { LeakSightings } from '../../lib/pool-state/leaks';
import { pruneHistory } from '../../lib/pool-state/prune';
import type { Volume } from '../../lib/cinder';
import type { Deps } from '../deps';
import type { CheckResult, ReconcileResult } from '../../contracts/fill';
import { workflowRunning } from '../../lib/temporal/workflows';
import { CinderError } from '../../lib/cinder';
import { deleteOrFlag, removePoolVolume } from './volumes';
import { deletePoolVolume } from '../cinder/volumes';
import { HandOffRows } from '../../lib/pool-state/handoff';
import { claimContext } from '../claim/context';
import { rowSettler } from '../claim/compensate';

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
  const leaks = new LeakSightings(db);
  const prefix = config.pool.volumeNamePrefix;

  async function taggedVolumes(): Promise<Map<string, Volume>> {
    const list = await cinder.listVolumes({ metadata: { [TAGS.pool]: prefix } });
    return new Map(list.map((v) => [v.id, v]));
  }

  const handOffRows = new HandOffRows(db);
  const settleHeldRow = rowSettler(deps, claimContext(deps));

  const removeRow = (rowId: number, volume: Volume | undefined) =>
    removePoolVolume(cinder, repo, rowId, volume);

  /**
   * A claim that ended without finishing (terminated, or failed after its retries) leaves its row
   * reserved. Once the claim workflow is no longer running, the row is taken under a new epoch
   * and settled by the same decision as a compensation: back to the pool if the volume is
   * available there, else quarantined (a volume outside the pool's project is left alone).
   */
  async function recoverOrphanedReservation(row: PoolVolume): Promise<boolean> {
    if (!temporal || !row.reservedBy || !row.reservedAt) return false;
    if (Date.now() - row.reservedAt.getTime() < ORPHANED_RESERVATION_MS) return false;
    if (await workflowRunning(temporal, row.reservedBy)) return false;
    const held = await handOffRows.take(row.id, row.reservedBy);
    if (!held) return false; // settled meanwhile
    if (!row.volumeId) {
      await handOffRows.remove(held.fence, held.state);
    } else if ((await settleHeldRow(held, row.volumeId, null)) === 'lost') return false;
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
    await retryDeleteBacklog(result);
    for (const row of await repo.listAll()) await checkRow(row, volumes, result);
    result.pruned = await pruneTables();
    return result;
  }

  /**
   * The tables that only grow are pruned here, on the check's schedule, so that they stay
   * bounded while the fill (which also prunes claim_demand) is paused.
   */
  async function pruneTables(): Promise<CheckResult['pruned']> {
    const { retention } = config.pool;
    const pruned = await pruneHistory(db, retention);
    if (pruned.claimLog || pruned.claimDemand)
      log.info(
        `pruned ${pruned.claimLog} claim_log rows older than ${retention.claimLogDays} days and ` +
          `${pruned.claimDemand} claim_demand rows older than ${retention.claimDemandMinutes} min`,
      );
    return pruned;
  }

  async function checkRow(
    row: PoolVolume,
    volumes: Map<string, Volume>,
    result: CheckResult,
  ): Promise<void> {
    if (row.status === 'reserved') {
      // One row's trouble (a Cinder error on a transfer) does not end the whole pass.
      const recovered = await recoverOrphanedReservation(row).catch((err: Error) => {
        log.warn(`recovering the reservation of ${row.volumeId} failed: ${err.message}`);
        return false;
      });
      if (recovered) result.releasedOrphans++;
      return;
    }
    if (row.status === 'deleting' || row.status === 'flagged') return; // the backlog's
    if (!row.volumeId) return checkUnanswered(row, volumes, result);
    let v = volumes.get(row.volumeId);
    if (!v) {
      try {
        v = (await cinder.findVolume(row.volumeId)) ?? undefined;
      } catch (err) {
        // No answer is not "gone": only a 404 removes a row.
        log.warn(`no answer about pool volume ${row.volumeId}: ${(err as Error).message}`);
        result.unreachable = (result.unreachable ?? 0) + 1;
        return;
      }
    }
    if (!v) {
      log.warn(`pool volume ${row.volumeId} (${row.name}) vanished from Cinder: removing its row`);
      await repo.delete(row.id);
      result.removedVanished++;
    } else if (row.status === 'creating') await checkCreating(row, v, result);
    else if (row.status === 'available' && v.status !== 'available')
      await checkIdle(row, v, result);
  }

  /** A create whose Cinder answer was never recorded: adopt the volume by name, or drop once old. */
  async function checkUnanswered(
    row: PoolVolume,
    volumes: Map<string, Volume>,
    result: CheckResult,
  ): Promise<void> {
    const byName = [...volumes.values()].find((x) => x.name === row.name);
    if (byName) await repo.setVolume(row.id, byName.id, null);
    else if (Date.now() - row.createdAt.getTime() > creatingTimeoutMs()) {
      await repo.delete(row.id);
      result.removedVanished++;
    } else result.stillCreating++;
  }

  /** A `creating` row follows Cinder: available, still creating (until the timeout), or failed. */
  async function checkCreating(row: PoolVolume, v: Volume, result: CheckResult): Promise<void> {
    if (v.status === 'available') {
      if (await repo.markAvailable(row.id)) result.madeAvailable++;
    } else if (v.status === 'creating' || v.status === 'downloading') {
      if (Date.now() - row.createdAt.getTime() > creatingTimeoutMs()) {
        await removeRow(row.id, v);
        result.removedTimedOut++;
      } else result.stillCreating++;
    } else {
      log.warn(`pool volume ${v.id} (${v.name}) is ${v.status}: deleting it`);
      await removeRow(row.id, v);
      result.removedFailed++;
    }
  }

  /** Idle stock that is no longer `available` in Cinder leaves the pool; never handed out. */
  async function checkIdle(row: PoolVolume, v: Volume, result: CheckResult): Promise<void> {
    if (BROKEN.has(v.status)) {
      log.warn(`idle pool volume ${v.id} (${v.name}) turned ${v.status}: deleting it`);
      if (await repo.transition(row.id, 'available', 'deleting')) {
        // Refused for good → flagged; a transient failure leaves it to the backlog.
        await deleteOrFlag(cinder, repo, row.id, v.id).then(
          (deleted) =>
            deleted ? result.removedFailed++ : (result.flagged = (result.flagged ?? 0) + 1),
          (e: Error) => log.warn(`delete of ${v.id} failed, retried later: ${e.message}`),
        );
      }
    } else {
      // Not ours to fix blindly (e.g. attached by someone): never hand it out meanwhile.
      log.warn(`idle pool volume ${v.id} (${v.name}) is ${v.status}: taking it out of the pool`);
      if (await repo.transition(row.id, 'available', 'deleting')) {
        await repo.delete(row.id);
        result.removedVanished++;
      }
    }
  }

  const creatingTimeoutMs = () => config.pool.creatingTimeoutMinutes * 60_000;

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

  /**
   * One leak pass: unknown pool-tagged volumes are sighted, and acted on (adopted or deleted)
   * when the previous pass saw them too; then rows whose volume is gone are removed.
   */
  async function reconcile(): Promise<ReconcileResult> {
    const pass = await leaks.nextPass();
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
    const stock = stockCounter(poolRows);
    for (const v of volumes.values()) {
      if (knownIds.has(v.id) || knownNames.has(v.name)) continue;
      // Acted on only when the previous pass saw it too; otherwise (first sighting, or a pass
      // without it in between) the sighting (re)starts here.
      if (((await leaks.lastSeen(v.id)) ?? -1) !== pass - 1) {
        await leaks.firstSeen(v.id, v.name, pass);
        result.unknownSeenOnce++;
        continue;
      }
      if (await adoptIfWanted(v, stock)) result.adopted.push(v.id);
      else if (await deleteLeak(v, pass, result)) result.deletedLeaks.push(v.id);
      else continue; // undeletable: stays sighted
      await leaks.forget(v.id); // forgotten only once acted on
    }
    await leaks.forgetOlderThan(pass);
    result.rowsWithoutVolume = await removeRowsWithoutVolume(poolRows, volumes);
    return result;
  }

  /** Current stock per (type, OS, zone), counting what this pass adopts. */
  function stockCounter(rows: PoolVolume[]) {
    const adopted = new Map<string, number>();
    const key = (os: string, type: string, zone: string) => `${type}\u0000${os}\u0000${zone}`;
    return {
      count: (os: string, type: string, zone: string, snapshotId: string) =>
        rows.filter(
          (r) =>
            r.os === os &&
            r.type === type &&
            r.zone === zone &&
            (r.status === 'available' || r.status === 'creating') &&
            r.snapshotId === snapshotId,
        ).length + (adopted.get(key(os, type, zone)) ?? 0),
      add: (os: string, type: string, zone: string) =>
        adopted.set(key(os, type, zone), (adopted.get(key(os, type, zone)) ?? 0) + 1),
    };
  }

  /** A leak worth keeping (available, current image, its pool short) becomes stock. */
  async function adoptIfWanted(
    v: Volume,
    stock: ReturnType<typeof stockCounter>,
  ): Promise<boolean> {
    const os = v.metadata[TAGS.os];
    const type = v.metadata[TAGS.type];
    if (!os || !type || v.status !== 'available') return false;
    // The pool's zone: the volume's own (where its snapshot put it), '' when no zones are named.
    const zone = config.pool.zones.length > 0 ? v.availabilityZone : '';
    const image = await images.get(os, type, zone);
    if (!image || v.snapshotId !== image.snapshotId) return false;
    const target =
      config.pool.targets.find((t) => t.os === os && t.volumeType === type && t.zone === zone)
        ?.target ?? 0;
    if (stock.count(os, type, zone, image.snapshotId) >= target) return false;
    await repo.upsert({
      name: v.name,
      type,
      os,
      zone,
      snapshotId: image.snapshotId,
      volumeType: v.volumeType,
      sizeGb: v.size,
      volumeId: v.id,
      status: 'available',
    });
    stock.add(os, type, zone);
    log.info(`adopted leaked pool volume ${v.id} (${v.name})`);
    return true;
  }

  /**
   * Deletes a leak. One Cinder refuses to delete (attached by someone…) must not stop the pass
   * nor the fill: it stays sighted and is tried again on the next pass.
   */
  async function deleteLeak(v: Volume, pass: number, result: ReconcileResult): Promise<boolean> {
    try {
      await deletePoolVolume(cinder, v);
    } catch (err) {
      if (!(err instanceof CinderError)) throw err;
      log.warn(`could not delete leaked pool volume ${v.id}: ${err.message}`);
      await leaks.seenAgain(v.id, pass);
      (result.undeletableLeaks ??= []).push(v.id);
      return false;
    }
    log.warn(`deleted leaked pool volume ${v.id} (${v.name}, ${v.status})`);
    return true;
  }

  /**
   * Rows whose volume is gone from Cinder (not just from the tagged list: a claim may have
   * untagged it while the row is reserved). Returns how many were removed.
   */
  async function removeRowsWithoutVolume(
    rows: PoolVolume[],
    volumes: Map<string, Volume>,
  ): Promise<number> {
    let removed = 0;
    for (const r of rows) {
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
        removed++;
      }
    }
    return removed;
  }

  /** Rows an operator asked to drain: `available` ones of the given OS/type/zone (all when unset). */
  async function listDrainable(filter: {
    os?: string;
    type?: string;
    zone?: string;
    staleOnly?: boolean;
  }): Promise<number[]> {
    const pool = (r: { os: string; type: string; zone: string }) =>
      `${r.os}\u0000${r.type}\u0000${r.zone}`;
    const current = new Map((await images.list()).map((i) => [pool(i), i.snapshotId]));
    return (await repo.listByStatus('available'))
      .filter(
        (r) =>
          (!filter.os || r.os === filter.os) &&
          (!filter.type || r.type === filter.type) &&
          (filter.zone === undefined || r.zone === filter.zone),
      )
      .filter((r) => !filter.staleOnly || current.get(pool(r)) !== r.snapshotId)
      .map((r) => r.id);
  }

  return { checkPoolState, reconcile, listDrainable };
}
