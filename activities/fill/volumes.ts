/**
 * Creating, watching and deleting pool volumes. Each activity is idempotent, so Temporal may
 * retry it after any crash:
 * - the row is written (by its unique name) before Cinder is asked, and Cinder is asked only after
 *   looking the name up, so a retried create finds the first attempt's volume instead of making a
 *   second one, and a crash between Cinder's answer and the row update loses nothing;
 * - known-permanent Cinder errors become non-retryable ApplicationFailures with their type.
 */
import { Context, heartbeat, log, sleep } from '@temporalio/activity';
import { CinderError, type CinderClient, type Volume } from '../../lib/cinder';
import { deletePoolVolume, refusedForGood } from '../cinder/volumes';
import { pollVolume } from '../cinder/poll';
import { PoolRepository } from '../../lib/pool-state/repository';
import { poolTags } from '../../lib/pool-state/naming';
import { failpoint } from '../../lib/failpoints';
import type { Deps } from '../deps';
import { exclusive } from '../guard';
import type { AwaitOutcome, CreatePoolVolumeInput } from '../../contracts/fill';

export const CREATE_RATE_LIMIT = 'pool-create';

async function sleepWithHeartbeat(ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    heartbeat();
    await sleep(Math.min(5_000, until - Date.now()));
  }
}

/** Deletes a pool volume in Cinder (when given) and then its row. */
export async function removePoolVolume(
  cinder: CinderClient,
  repo: PoolRepository,
  rowId: number,
  volume: Volume | null | undefined,
): Promise<void> {
  if (volume) await deletePoolVolume(cinder, volume);
  await repo.delete(rowId);
}

/**
 * Deletes a row's volume and then the row. Cinder refusing for good (attached, a state it will
 * not leave) flags the row with Cinder's message instead of failing: the operator sees it, the
 * status check tries again, and nothing else waits on it.
 */
export async function deleteOrFlag(
  cinder: CinderClient,
  repo: PoolRepository,
  rowId: number,
  volumeId: string | null,
): Promise<boolean> {
  try {
    const v = volumeId ? await cinder.findVolume(volumeId) : null;
    if (v) await deletePoolVolume(cinder, v);
  } catch (err) {
    if (refusedForGood(err)) {
      log.warn(`pool volume ${volumeId} cannot be deleted, flagged: ${err.message}`);
      await repo.flag(rowId, err.message);
      return false;
    }
    throw err;
  }
  await repo.delete(rowId);
  return true;
}

export function poolVolumeActivities({
  config,
  cinder,
  db,
}: Pick<Deps, 'config' | 'cinder' | 'db'>) {
  const repo = new PoolRepository(db);
  const prefix = config.pool.volumeNamePrefix;

  /** One attempt at a time per pool volume name: a twin waits (retryably) instead of racing. */
  function createPoolVolume(
    input: CreatePoolVolumeInput,
  ): Promise<{ rowId: number; volumeId: string }> {
    return exclusive(db, `pool-create:${input.name}`, () => createPoolVolumeOnce(input));
  }

  async function createPoolVolumeOnce(
    input: CreatePoolVolumeInput,
  ): Promise<{ rowId: number; volumeId: string }> {
    const row = await repo.upsert({
      name: input.name,
      type: input.type,
      os: input.os,
      zone: input.zone ?? '',
      snapshotId: input.snapshotId,
      volumeType: input.volumeType,
      sizeGb: input.sizeGb,
      status: 'creating',
    });
    if (row.volumeId) return { rowId: row.id, volumeId: row.volumeId };
    try {
      // A previous attempt may have reached Cinder before dying: its volume carries our name.
      // The first attempt has no predecessor, so it skips the lookup (one Cinder call less).
      const retried = Context.current().info.attempt > 1;
      const existing = retried ? (await cinder.listVolumes({ name: input.name }))[0] : undefined;
      if (existing) {
        await repo.setVolume(row.id, existing.id, null);
        log.info(`found volume ${existing.id} of an earlier attempt for ${input.name}`);
        return { rowId: row.id, volumeId: existing.id };
      }
      const slot = await repo.takeSlot(CREATE_RATE_LIMIT, config.pool.createIntervalSeconds);
      if (slot.waitMs > 0) await sleepWithHeartbeat(slot.waitMs);
      const v = await cinder.createVolume({
        name: input.name,
        size: input.sizeGb,
        snapshotId: input.snapshotId,
        volumeType: input.volumeType,
        // The snapshot's zone already; named so that Cinder refuses rather than misplaces.
        availabilityZone: input.zone || undefined,
        metadata: poolTags(prefix, input.os, input.type, input.snapshotId, input.zone),
        description: `warm pool stock: ${input.type} / ${input.os}${input.zone ? ` / ${input.zone}` : ''}`,
      });
      failpoint('fill.after-cinder-create'); // the volume exists, the table does not know it yet
      if (!(await repo.setVolume(row.id, v.id, slot.at))) {
        // Another attempt of this same create won the row: ours is a duplicate, remove it.
        // Still `creating`, which Cinder refuses to delete: deletePoolVolume resets it first.
        log.warn(`duplicate create for ${input.name}: deleting ${v.id}`);
        await deletePoolVolume(cinder, v).catch((e: Error) =>
          log.warn(`could not delete duplicate ${v.id} (reconcile will): ${e.message}`),
        );
        const winner = await repo.get(row.id);
        return { rowId: row.id, volumeId: winner?.volumeId ?? v.id };
      }
      return { rowId: row.id, volumeId: v.id };
    } catch (err) {
      if (err instanceof CinderError && !err.retryable && (err.status ?? 500) < 500) {
        // Nothing was created (quota, bad snapshot…): the row must not count as stock.
        await repo.delete(row.id);
      }
      throw err;
    }
  }

  /** Removes a pool volume from Cinder (if still there) and its row. */
  async function destroy(rowId: number, volumeId: string | null): Promise<void> {
    const v = volumeId ? await cinder.findVolume(volumeId) : null;
    await removePoolVolume(cinder, repo, rowId, v);
  }

  /**
   * Watches a `creating` pool volume until it is `available` (row marked available) or not
   * (volume and row removed, so the next fill replaces it). Heartbeats while it waits.
   */
  async function awaitPoolVolume(input: {
    rowId: number;
    volumeId: string;
  }): Promise<AwaitOutcome> {
    const timeoutMs = config.pool.creatingTimeoutMinutes * 60_000;
    let createdAt = 0;
    const overdue = () => Date.now() - createdAt > timeoutMs;
    return pollVolume<AwaitOutcome>(cinder, input.volumeId, {
      pollMs: config.pool.pollIntervalSeconds * 1000,
      creatingUntil: () => createdAt + timeoutMs,
      before: async () => {
        const row = await repo.get(input.rowId);
        if (!row) return 'vanished'; // removed meanwhile (drain, status check)
        if (row.status !== 'creating') return row.status === 'available' ? 'available' : 'vanished';
        createdAt = row.createdAt.getTime();
        return undefined;
      },
      decide: async (v) => {
        if (!v) {
          await repo.delete(input.rowId);
          return 'vanished';
        }
        if (v.status === 'available') {
          await repo.markAvailable(input.rowId);
          return 'available';
        }
        if (v.status !== 'creating' && v.status !== 'downloading') {
          log.warn(`pool volume ${v.id} (${v.name}) is ${v.status}: deleting it`);
          await destroy(input.rowId, v.id);
          return 'failed';
        }
        if (overdue()) {
          log.warn(
            `pool volume ${v.id} (${v.name}) still creating after ${config.pool.creatingTimeoutMinutes} min: deleting it`,
          );
          await destroy(input.rowId, v.id);
          return 'timeout';
        }
        return undefined;
      },
    });
  }

  /**
   * Drains one stale or unwanted row: only if it is still `available` (a claim may have won it).
   * A delete Cinder refuses for good flags the row (false); a transient failure throws and leaves
   * the row `deleting`, which the status check retries.
   */
  async function drainPoolVolume(rowId: number): Promise<boolean> {
    const row = await repo.get(rowId);
    if (!row) return false;
    if (row.status !== 'deleting' && !(await repo.transition(rowId, 'available', 'deleting')))
      return false;
    return deleteOrFlag(cinder, repo, row.id, row.volumeId);
  }

  return { createPoolVolume, awaitPoolVolume, drainPoolVolume };
}
