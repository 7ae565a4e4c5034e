/**
 * The claim's activities (the seed's create_volume_if_absent). Every one is idempotent, so a
 * worker killed at any point resumes cleanly:
 * - handOff: transfer (admin) + accept (tenant) in ONE activity, so the transfer's auth key never
 *   leaves this process: not in workflow history, not in logs. A retry finds the volume already
 *   in the tenant's project (done), or a pending transfer of a dead attempt (deleted: its key is
 *   lost) and starts over. If accept fails, the transfer is deleted before the error propagates,
 *   so the volume is `available` in the admin project again, never left `awaiting-transfer`.
 * - finishHandOff: rename, drop the pool tags, extend if asked, delete the pool row.
 * - plain creation: looked up by name in the tenant's project first, so a retried create never
 *   makes a second volume.
 */
import { ApplicationFailure, heartbeat, log, sleep } from '@temporalio/activity';
import { CinderError, CinderOverLimit, type Volume } from '../../lib/cinder';
import { OsImageRepository, PoolRepository } from '../../lib/pool-state/repository';
import { TAGS } from '../../lib/pool-state/naming';
import { failpoint } from '../../lib/failpoints';
import { scheduleIds } from '../../lib/temporal/schedules';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { Deps } from '../deps';
import { deletePoolVolume, toFailure } from '../fill/volumes';

export interface ClaimTarget {
  claimId: string;
  projectId: string;
  userId: string;
  name: string;
  os: string | null;
  volumeType: string;
  sizeGb: number | null;
}

export interface ReservedVolume {
  rowId: number;
  volumeId: string;
  sizeGb: number | null;
  snapshotId: string;
}

export interface CurrentImage {
  snapshotId: string;
  volumeType: string;
  sizeGb: number;
}

const nonRetryable = (type: string, message: string) =>
  ApplicationFailure.create({ type, message, nonRetryable: true });

export function claimActivities({ config, cinder, db, temporal }: Deps) {
  const repo = new PoolRepository(db);
  const images = new OsImageRepository(db);
  const tenant = (t: Pick<ClaimTarget, 'projectId' | 'userId'>) =>
    cinder.asProject(t.projectId, t.userId);

  /** A volume of that name already in the tenant's project (the seed's idempotent lookup). */
  async function findTenantVolume(
    t: ClaimTarget,
  ): Promise<{ volumeId: string; status: string } | null> {
    try {
      const found = (await tenant(t).listVolumes({ name: t.name })).filter(
        (v) => v.status !== 'deleting' && v.status !== 'error',
      );
      const v = found[0];
      return v ? { volumeId: v.id, status: v.status } : null;
    } catch (err) {
      throw toFailure(err);
    }
  }

  async function currentImage(input: {
    os: string;
    volumeType: string;
  }): Promise<CurrentImage | null> {
    const img = await images.get(input.os, input.volumeType);
    return img
      ? { snapshotId: img.snapshotId, volumeType: img.volumeType, sizeGb: img.sizeGb }
      : null;
  }

  /** Reserves one current pool volume for this claim (the same one again on a retry). */
  async function reservePoolVolume(input: {
    claimId: string;
    os: string;
    volumeType: string;
    snapshotId: string;
  }): Promise<ReservedVolume | null> {
    const row = await repo.reserve(input.volumeType, input.os, input.claimId, input.snapshotId);
    if (!row || !row.volumeId) return null;
    return {
      rowId: row.id,
      volumeId: row.volumeId,
      sizeGb: row.sizeGb,
      snapshotId: row.snapshotId,
    };
  }

  async function inTenant(t: ClaimTarget, volumeId: string): Promise<Volume | null> {
    const v = await cinder.findVolume(volumeId);
    return v && v.projectId === t.projectId ? v : null;
  }

  async function handOff(input: {
    target: ClaimTarget;
    reserved: ReservedVolume;
  }): Promise<{ volumeId: string }> {
    const { target: t, reserved } = input;
    try {
      if (await inTenant(t, reserved.volumeId)) return { volumeId: reserved.volumeId }; // accepted before a crash
      for (const stale of await cinder.listTransfers({ volumeId: reserved.volumeId })) {
        log.info(`deleting pending transfer ${stale.id} of an earlier attempt`);
        await cinder.deleteTransfer(stale.id);
      }
      const v = await cinder.findVolume(reserved.volumeId);
      if (!v)
        throw nonRetryable('PoolVolumeGone', `pool volume ${reserved.volumeId} no longer exists`);
      if (v.status !== 'available') {
        throw nonRetryable(
          'PoolVolumeUnusable',
          `pool volume ${reserved.volumeId} is ${v.status}, not available`,
        );
      }
      const transfer = await cinder.createTransfer(
        reserved.volumeId,
        `warm pool claim ${t.claimId}`.slice(0, 255),
      );
      failpoint('claim.after-transfer-create');
      try {
        await tenant(t).acceptTransfer(transfer.id, transfer.authKey);
      } catch (err) {
        // Give the volume back to the admin project's `available` state before failing.
        await cinder
          .deleteTransfer(transfer.id)
          .catch((e: Error) => log.warn(`could not delete transfer ${transfer.id}: ${e.message}`));
        if (err instanceof CinderOverLimit) {
          throw nonRetryable(
            'AcceptRefused',
            `the tenant's project cannot take the volume: ${err.message}`,
          );
        }
        throw err;
      }
      failpoint('claim.after-accept');
      return { volumeId: reserved.volumeId };
    } catch (err) {
      throw toFailure(err);
    }
  }

  /** After accept: the requested name, no pool tags, the requested size; then the row goes. */
  async function finishHandOff(input: {
    target: ClaimTarget;
    reserved: ReservedVolume;
  }): Promise<{ volumeId: string; sizeGb: number }> {
    const { target: t, reserved } = input;
    try {
      const client = tenant(t);
      let v = await client.getVolume(reserved.volumeId);
      if (v.name !== t.name) v = await client.updateVolume(v.id, { name: t.name });
      const meta = Object.fromEntries(
        Object.entries(v.metadata).filter(([k]) => !Object.values(TAGS).includes(k as never)),
      );
      if (Object.keys(meta).length !== Object.keys(v.metadata).length)
        await client.replaceVolumeMetadata(v.id, meta);
      if (t.sizeGb && t.sizeGb > v.size) {
        if (v.status === 'available') await client.extendVolume(v.id, t.sizeGb);
        v = await waitStatus(client, v.id, ['available'], 10 * 60_000);
      }
      await repo.delete(reserved.rowId);
      return { volumeId: v.id, sizeGb: v.size };
    } catch (err) {
      throw toFailure(err);
    }
  }

  /** A hand-off that did not happen: the row goes back to the pool if the volume is fine, else it is quarantined (deleted). */
  async function returnToPool(input: {
    claimId: string;
    reserved: ReservedVolume;
  }): Promise<'released' | 'quarantined'> {
    const { reserved } = input;
    for (const t of await cinder.listTransfers({ volumeId: reserved.volumeId }).catch(() => [])) {
      await cinder.deleteTransfer(t.id).catch(() => undefined);
    }
    const v = await cinder.findVolume(reserved.volumeId);
    const row = await repo.get(reserved.rowId);
    if (!row) return 'quarantined';
    if (v && v.status === 'available' && v.projectId === config.auth.projectId) {
      await repo.release(reserved.rowId, input.claimId);
      return 'released';
    }
    log.warn(`pool volume ${reserved.volumeId} is ${v?.status ?? 'gone'}: quarantined (deleted)`);
    if (v && v.projectId === config.auth.projectId) {
      await deletePoolVolume(cinder, v).catch((e: Error) =>
        log.warn(`quarantine delete failed: ${e.message}`),
      );
    }
    await repo.delete(reserved.rowId);
    return 'quarantined';
  }

  /** Plain creation in the tenant's project (system disk from the OS snapshot, or a blank data disk). */
  async function createTenantVolume(input: {
    target: ClaimTarget;
    image: CurrentImage | null;
  }): Promise<{ volumeId: string }> {
    const { target: t, image } = input;
    try {
      const existing = await findTenantVolume(t);
      if (existing) return { volumeId: existing.volumeId };
      const size = Math.max(t.sizeGb ?? 0, image?.sizeGb ?? 0);
      if (size <= 0) throw nonRetryable('BadClaim', 'a data disk needs sizeGb');
      const v = await tenant(t).createVolume({
        name: t.name,
        size,
        snapshotId: image?.snapshotId,
        volumeType: image?.volumeType ?? t.volumeType,
        description: `created by warm pool claim ${t.claimId}`,
      });
      failpoint('claim.after-plain-create');
      return { volumeId: v.id };
    } catch (err) {
      if (err instanceof CinderOverLimit) throw nonRetryable('TenantOverQuota', err.message);
      throw toFailure(err);
    }
  }

  /** Waits (heartbeating) until the tenant's new volume is available; an `error` volume is deleted. */
  async function awaitTenantVolume(input: {
    target: ClaimTarget;
    volumeId: string;
    timeoutMs: number;
  }): Promise<{ sizeGb: number }> {
    const client = tenant(input.target);
    try {
      const v = await waitStatus(client, input.volumeId, ['available'], input.timeoutMs);
      return { sizeGb: v.size };
    } catch (err) {
      if (
        err instanceof ApplicationFailure &&
        (err.type === 'VolumeFailed' || err.type === 'VolumeTimeout')
      ) {
        // Leave the tenant nothing broken or half-made under the requested name.
        const v = await cinder.findVolume(input.volumeId).catch(() => null);
        if (v)
          await deletePoolVolume(cinder, v).catch((e: Error) =>
            log.warn(`cleanup of ${v.id} failed: ${e.message}`),
          );
      }
      throw err instanceof CinderError ? toFailure(err) : err;
    }
  }

  async function waitStatus(
    client: typeof cinder,
    id: string,
    want: string[],
    timeoutMs: number,
  ): Promise<Volume> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await client.getVolume(id);
      if (want.includes(v.status)) return v;
      if (v.status.startsWith('error'))
        throw nonRetryable('VolumeFailed', `volume ${id} went to ${v.status}`);
      if (Date.now() > deadline)
        throw nonRetryable(
          'VolumeTimeout',
          `volume ${id} still ${v.status} after ${Math.round(timeoutMs / 1000)} s`,
        );
      heartbeat(v.status);
      await sleep(Math.min(1000, config.pool.pollIntervalSeconds * 1000));
    }
  }

  /** A pool hit consumed stock: start a fill now rather than at the next tick (skipped if one runs). */
  async function triggerRefill(): Promise<boolean> {
    if (!temporal) return false;
    try {
      const fill = temporal.schedule.getHandle(scheduleIds(config).fill);
      // trigger() runs even a paused schedule: an operator's pause must stop refills too.
      if ((await fill.describe()).state.paused) return false;
      await fill.trigger(ScheduleOverlapPolicy.SKIP);
      return true;
    } catch (err) {
      log.warn(`refill trigger failed (the next tick will refill): ${(err as Error).message}`);
      return false;
    }
  }

  return {
    findTenantVolume,
    currentImage,
    reservePoolVolume,
    handOff,
    finishHandOff,
    returnToPool,
    createTenantVolume,
    awaitTenantVolume,
    triggerRefill,
  };
}
