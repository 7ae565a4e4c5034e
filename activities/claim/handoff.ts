/**
 * The claim's activities (the seed's create_volume_if_absent). Every one is idempotent, so a
 * worker killed at any point resumes cleanly:
 * - handOff: transfer (admin) + accept (tenant) in ONE activity, so the transfer's auth key never
 *   leaves this process: not in workflow history, not in logs. A retry finds the volume already
 *   in the tenant's project (done), or a pending transfer of a dead attempt (deleted: its key is
 *   lost) and starts over. If accept fails, the transfer is deleted before the error propagates,
 *   so the volume is `available` in the admin project again, never left `awaiting-transfer`.
 * - finishHandOff: rename, drop the pool tags, extend if asked, delete the pool row.
 * - plain creation: a volume this claim made (its description names the claim) is looked up
 *   first, so a retried create never makes a second volume, and no volume the claim did not make
 *   is ever adopted or deleted.
 * Steps that must not overlap with a twin attempt run under `exclusive` (../guard.ts).
 */
import { ApplicationFailure, Context, heartbeat, log, sleep } from '@temporalio/activity';
import { CinderError, CinderOverLimit, type CinderClient, type Volume } from '../../lib/cinder';
import {
  ClaimNameRepository,
  OsImageRepository,
  PoolRepository,
  type PoolVolume,
} from '../../lib/pool-state/repository';
import { failpoint } from '../../lib/failpoints';
import { DemandRepository } from '../../lib/pool-state/demand';
import { scheduleIds } from '../../lib/temporal/schedules';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { Deps } from '../deps';
import { workflowRunning } from '../../lib/temporal/workflows';
import { deletePoolVolume, refusedForGood } from '../cinder/volumes';
import { cinderForAttempt, exclusive, withHeartbeats } from '../guard';
import {
  CLAIM_FAILURES,
  mustGrow,
  type ClaimTarget,
  type CurrentImage,
  type Delivery,
  type ReservedVolume,
} from '../../contracts/claim';

const nonRetryable = (type: string, message: string) =>
  ApplicationFailure.create({ type, message, nonRetryable: true });

/** A reserved pool row as the claim's steps know it; null while it has no volume yet. */
export function reservedVolume(row: PoolVolume): ReservedVolume | null {
  if (!row.volumeId) return null;
  return { rowId: row.id, volumeId: row.volumeId, sizeGb: row.sizeGb, snapshotId: row.snapshotId };
}

/** The description of a volume made by plain creation: the claim's mark on what it owns. */
export const createdByClaim = (claimId: string) => `created by warm pool claim ${claimId}`;

/** The name of a claim's transfer (Cinder keeps 255 characters). */
const transferName = (claimId: string) => `warm pool claim ${claimId}`.slice(0, 255);

/** A volume that stands for "this name already exists" (not a broken or leaving one). */
const usable = (v: Volume) => !v.status.startsWith('error') && v.status !== 'deleting';

/** A refill is requested once claims were quiet this long (see triggerRefill)… */
export const REFILL_QUIET_MS = 1_500;
/** …and at most this long after the first claim that asked for it. */
export const REFILL_MAX_DELAY_MS = 10_000;

export function claimActivities({ config, cinder: sharedCinder, db, temporal }: Deps) {
  const repo = new PoolRepository(db);
  const images = new OsImageRepository(db);
  const names = new ClaimNameRepository(db);
  const demand = new DemandRepository(db);
  // Every Cinder call of an activity attempt stops when that attempt is cancelled.
  const admin = () => cinderForAttempt(sharedCinder);
  const tenant = (t: Pick<ClaimTarget, 'projectId' | 'userId'>) =>
    admin().asProject(t.projectId, t.userId);
  /** The pool's own project: the session's (Keystone may scope the pool by project name). */
  const adminProjectId = () => sharedCinder.projectId();

  /** A volume of that name already in the tenant's project (the seed's idempotent lookup). */
  async function findTenantVolume(
    t: ClaimTarget,
  ): Promise<{ volumeId: string; status: string } | null> {
    const v = (await tenant(t).listVolumes({ name: t.name })).find(usable);
    return v ? { volumeId: v.id, status: v.status } : null;
  }

  /** Whether the claim workflow `claimId` is still running (without Temporal: assume so). */
  const claimRunning = (claimId: string) =>
    temporal ? workflowRunning(temporal, claimId) : Promise.resolve(true);

  /**
   * Takes the (project, name) lock for this claim, then looks the name up in the tenant's
   * project. While another running claim holds the name, fails retryably (NameBusy): the
   * workflow waits for it and then finds its volume (`existing`), so two requests for one name
   * never take two pool volumes nor create two volumes.
   */
  async function claimName(t: ClaimTarget): Promise<{ volumeId: string; status: string } | null> {
    await lockClaimName(t);
    return findTenantVolume(t);
  }

  /** The (project, name) lock alone (see claimName); the lookup is left to the caller. */
  async function lockClaimName(t: ClaimTarget): Promise<void> {
    const holder = await names.lock(t.projectId, t.name, t.claimId);
    if (holder !== t.claimId) {
      const taken =
        !(await claimRunning(holder)) &&
        (await names.takeOver(t.projectId, t.name, holder, t.claimId));
      if (!taken)
        throw ApplicationFailure.create({
          type: CLAIM_FAILURES.nameBusy,
          message: `claim ${holder} is making a volume named ${JSON.stringify(t.name)} in this project`,
        });
    }
  }

  async function releaseClaimName(t: ClaimTarget): Promise<void> {
    await names.release(t.projectId, t.name, t.claimId);
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

  /**
   * The fast path's first step, one local activity: the name lock, the OS's current image and a
   * reservation. Each part is idempotent for this claim, so a re-run (a retry, a replayed
   * workflow task) takes the same lock and the same row. No image known yet (no fill ran): no
   * reservation; the workflow resolves the image from Cinder and reserves then.
   */
  async function reserveForClaim(t: ClaimTarget): Promise<{
    image: CurrentImage | null;
    reserved: ReservedVolume | null;
    /** Why no reservation was even tried (the tenant's fair share is used up). */
    declined?: string;
  }> {
    // The image read needs no lock: both at once.
    const [, image] = await Promise.all([
      lockClaimName(t),
      currentImage({ os: t.os as string, volumeType: t.volumeType }),
    ]);
    if (!image) return { image, reserved: null };
    const pool = { claimId: t.claimId, type: t.volumeType, os: t.os as string };
    const declined = await overFairShare(t);
    if (declined) {
      await demand.record({ ...pool, projectId: t.projectId, hit: false });
      return { image, reserved: null, declined };
    }
    const reserved = await reservePoolVolume({
      claimId: t.claimId,
      os: t.os as string,
      volumeType: t.volumeType,
      snapshotId: image.snapshotId,
    });
    // The demand that sizes the pool (and, with a fair share, this tenant's hits).
    await demand.record({ ...pool, projectId: t.projectId, hit: reserved !== null });
    return { image, reserved };
  }

  /**
   * tenant_share: a tenant that took its share of this pool's floor within the window falls
   * back to plain creation, so other tenants keep getting hits. A claim that already holds a row
   * (a retry) keeps it. Claims of one tenant in flight together may each see the share unused.
   */
  async function overFairShare(t: ClaimTarget): Promise<string | undefined> {
    const fair = config.pool.policy.tenantShare;
    if (!fair) return undefined;
    const floor =
      config.pool.targets.find((p) => p.os === t.os && p.volumeType === t.volumeType)?.target ?? 0;
    const allowed = Math.max(1, Math.floor(fair.share * floor));
    const hits = await demand.tenantHits({
      type: t.volumeType,
      os: t.os as string,
      projectId: t.projectId,
      minutes: fair.windowMinutes,
      otherThan: t.claimId,
    });
    if (hits < allowed || (await repo.heldBy(t.claimId))) return undefined;
    return `tenant share used: ${hits} of ${allowed} pool volumes in ${fair.windowMinutes} min`;
  }

  /** Reserves one current pool volume for this claim (the same one again on a retry). */
  async function reservePoolVolume(input: {
    claimId: string;
    os: string;
    volumeType: string;
    snapshotId: string;
  }): Promise<ReservedVolume | null> {
    const row = await repo.reserve(input.volumeType, input.os, input.claimId, input.snapshotId);
    return row ? reservedVolume(row) : null;
  }

  async function inTenant(t: ClaimTarget, volumeId: string): Promise<Volume | null> {
    const v = await admin().findVolume(volumeId);
    return v && v.projectId === t.projectId ? v : null;
  }

  async function handOff(input: {
    target: ClaimTarget;
    reserved: ReservedVolume;
  }): Promise<{ volumeId: string }> {
    const { target: t, reserved } = input;
    return exclusive(db, `handoff:${t.claimId}`, async () => {
      try {
        return await transferAndAccept(t, reserved);
      } catch (err) {
        // Whatever failed (a lost reply, a refused call after Cinder acted): a volume in the
        // tenant's project means the accept happened. That is success, never a fallback.
        if (await inTenant(t, reserved.volumeId).catch(() => null)) {
          log.warn(`accept of ${reserved.volumeId} took effect despite: ${(err as Error).message}`);
          return { volumeId: reserved.volumeId };
        }
        throw err;
      }
    });
  }

  async function transferAndAccept(
    t: ClaimTarget,
    reserved: ReservedVolume,
  ): Promise<{ volumeId: string }> {
    const cinder = admin();
    // A first attempt has no predecessor: the recovery checks can only matter on a retry. (A
    // volume that is no longer available makes the transfer create fail; handOff's catch then
    // looks at it.) That keeps a first-attempt hand-off at two Cinder calls.
    if (Context.current().info.attempt > 1) {
      if (await inTenant(t, reserved.volumeId)) return { volumeId: reserved.volumeId }; // accepted before a crash
      await clearEarlierAttempt(reserved);
    }
    const transfer = await cinder.createTransfer(reserved.volumeId, transferName(t.claimId));
    failpoint('claim.after-transfer-create');
    // (Should the accept have taken effect after all, the delete finds no transfer, and
    // handOff's catch finds the volume in the tenant's project: success.)
    await acceptOrGiveBack(t, transfer, () => dropTransfer(transfer.id));
    failpoint('claim.after-accept');
    return { volumeId: reserved.volumeId };
  }

  /** Deletes a transfer, whose volume goes back to `available` in the admin project. */
  async function dropTransfer(id: string): Promise<void> {
    await admin()
      .deleteTransfer(id)
      .catch((e: Error) => log.warn(`could not delete transfer ${id}: ${e.message}`));
  }

  /**
   * Accepts as the tenant. Refused: the transfer is dropped first (`giveBack`), and a tenant
   * over quota becomes AcceptRefused (permanent: creating would be refused the same way).
   */
  async function acceptOrGiveBack(
    t: ClaimTarget,
    transfer: { id: string; authKey: string },
    giveBack: () => Promise<void>,
  ): Promise<void> {
    try {
      await tenant(t).acceptTransfer(transfer.id, transfer.authKey);
    } catch (err) {
      await giveBack();
      if (err instanceof CinderOverLimit) {
        throw nonRetryable(
          CLAIM_FAILURES.acceptRefused,
          `the tenant's project cannot take the volume: ${err.message}`,
        );
      }
      throw err;
    }
  }

  /**
   * The whole pool hit in one activity: the name lookup runs alongside the transfer create,
   * then accept, then one PUT that renames and drops the pool tags. A first attempt makes
   * exactly those four Cinder calls. A volume of that name found in the tenant's project wins:
   * the transfer is deleted and the claim answers `existing` (the caller gives the row back).
   * A hand-off that may follow an earlier start (a retry, a local activity re-run after a crash;
   * see firstHandOff) or any failure first asks whether the accept already happened; then the
   * rename is all that is left. The pool row is left to the caller (dropped once the answer is out).
   */
  async function deliverPoolVolume(input: {
    target: ClaimTarget;
    reserved: ReservedVolume;
    /**
     * Also settle the row here (dropped once delivered, released on `existing`) and ask for a
     * refill: the claim then ends with its answer, without a step of its own for the bookkeeping.
     * Claims scheduled by earlier code leave it out and settle in a step (settleReservation).
     */
    settle?: boolean;
  }): Promise<Delivery> {
    const { target: t, reserved } = input;
    const delivery = await deliverUnderLock(t, reserved);
    if (!input.settle) return delivery;
    // The name is in the tenant's project now, so the next claim for it finds it: the lock can
    // go, unless the volume still has to grow (the claim holds it until that is done).
    const growing = !delivery.existing && mustGrow(t.sizeGb, delivery.sizeGb);
    await Promise.all([
      settleReservation({
        claimId: t.claimId,
        rowId: reserved.rowId,
        delivered: !delivery.existing,
        refill: !delivery.existing,
      }),
      growing ? null : releaseClaimName(t),
    ]);
    failpoint('claim.after-settle');
    return { ...delivery, settled: true, ...(growing ? {} : { nameReleased: true }) };
  }

  async function deliverUnderLock(t: ClaimTarget, reserved: ReservedVolume): Promise<Delivery> {
    return exclusive(db, `handoff:${t.claimId}`, async () => {
      try {
        if (!(await firstHandOff(t, reserved))) {
          if (await inTenant(t, reserved.volumeId)) return await renameDelivered(t, reserved);
          const existing = await findTenantVolume(t);
          if (existing) return await giveWayToExisting(reserved, existing.volumeId);
          await clearEarlierAttempt(reserved);
          return await transferAcceptRename(t, reserved, null);
        }
        return await transferAcceptRename(t, reserved, findTenantVolume(t));
      } catch (err) {
        // A volume in the tenant's project means the accept happened (a lost reply, a refused
        // call after Cinder acted): finish it, never fall back.
        if (await inTenant(t, reserved.volumeId).catch(() => null)) {
          log.warn(`accept of ${reserved.volumeId} took effect despite: ${(err as Error).message}`);
          return await renameDelivered(t, reserved);
        }
        throw err;
      }
    });
  }

  /**
   * Whether no hand-off of this reservation began before, so the recovery checks cannot matter.
   * The attempt number alone cannot say: a local activity re-run after a worker crash (its result
   * was never recorded) starts again at attempt 1. The row's count of starts can, and it is taken
   * under the step's lock, so a twin never counts first.
   */
  async function firstHandOff(t: ClaimTarget, reserved: ReservedVolume): Promise<boolean> {
    const starts = await repo.beginHandOff(reserved.rowId, t.claimId);
    return starts === 1 && Context.current().info.attempt === 1;
  }

  /**
   * Transfer (while `lookup` runs, if given), accept, rename. Whatever fails before the accept
   * deletes the transfer, so the volume is `available` in the pool's project again.
   */
  async function transferAcceptRename(
    t: ClaimTarget,
    reserved: ReservedVolume,
    lookup: Promise<{ volumeId: string } | null> | null,
  ): Promise<Delivery> {
    const cinder = admin();
    const [found, made] = await Promise.allSettled([
      lookup ?? Promise.resolve(null),
      cinder.createTransfer(reserved.volumeId, transferName(t.claimId)),
    ]);
    const dropMade = async () => {
      if (made.status === 'fulfilled') await dropTransfer(made.value.id);
    };
    if (found.status === 'rejected') {
      await dropMade();
      throw found.reason;
    }
    if (found.value) {
      await dropMade();
      return { existing: true, volumeId: found.value.volumeId, sizeGb: null };
    }
    if (made.status === 'rejected') throw made.reason;
    const transfer = made.value;
    failpoint('claim.after-transfer-create');
    await acceptOrGiveBack(t, transfer, dropMade);
    failpoint('claim.after-accept');
    return renameDelivered(t, reserved);
  }

  /** The accepted volume gets the requested name and loses the pool tags, in one PUT. */
  async function renameDelivered(t: ClaimTarget, reserved: ReservedVolume): Promise<Delivery> {
    const v = await tenant(t).updateVolume(reserved.volumeId, { name: t.name, metadata: {} });
    failpoint('claim.after-rename');
    return { existing: false, volumeId: v.id, sizeGb: v.size };
  }

  /** A retry found the name taken in the tenant's project (by this claim's volume or another). */
  async function giveWayToExisting(reserved: ReservedVolume, volumeId: string): Promise<Delivery> {
    await dropPendingTransfers(reserved.volumeId);
    return { existing: true, volumeId, sizeGb: null };
  }

  /** Deletes a volume's pending transfers: an earlier attempt's, whose auth key died with it. */
  async function dropPendingTransfers(volumeId: string): Promise<void> {
    const cinder = admin();
    for (const stale of await cinder.listTransfers({ volumeId })) {
      log.info(`deleting pending transfer ${stale.id} of an earlier attempt`);
      await cinder.deleteTransfer(stale.id);
    }
  }

  /**
   * Before a retry's transfer: a pending transfer here belongs to a dead attempt (a live twin
   * cannot hold the lock) and its auth key died with it, so it is deleted; the volume must
   * still exist and be available.
   */
  async function clearEarlierAttempt(reserved: ReservedVolume): Promise<void> {
    await dropPendingTransfers(reserved.volumeId);
    const v = await admin().findVolume(reserved.volumeId);
    if (!v)
      throw nonRetryable('PoolVolumeGone', `pool volume ${reserved.volumeId} no longer exists`);
    if (v.status !== 'available') {
      throw nonRetryable(
        'PoolVolumeUnusable',
        `pool volume ${reserved.volumeId} is ${v.status}, not available`,
      );
    }
  }

  /** After a pool hit: the delivered volume's row goes; on `existing`, the row is released. */
  async function settleReservation(input: {
    claimId: string;
    rowId: number;
    delivered: boolean;
    /** Also ask for a refill (the stock went down by one). */
    refill?: boolean;
  }): Promise<void> {
    if (input.delivered) {
      // The volume is the tenant's already: a crash here must still end with the row gone.
      failpoint('claim.before-settle');
      await repo.delete(input.rowId);
      if (input.refill) await triggerRefill();
    } else await repo.release(input.rowId, input.claimId);
  }

  /**
   * After accept: the requested name, no pool tags; then the row goes. `extend: false` leaves
   * growing the volume to its own activity (extendTenantVolume), which may wait much longer.
   */
  async function finishHandOff(input: {
    target: ClaimTarget;
    reserved: ReservedVolume;
    extend?: boolean;
  }): Promise<{ volumeId: string; sizeGb: number }> {
    const { target: t, reserved } = input;
    return withHeartbeats(async () => {
      const client = tenant(t);
      // One PUT renames and drops the pool's tags (pool volumes carry nothing else: the
      // pool made them). Idempotent, so a retry simply does it again.
      let v = await client.updateVolume(reserved.volumeId, { name: t.name, metadata: {} });
      if (input.extend !== false && t.sizeGb && t.sizeGb > v.size) {
        // Histories recorded before extendTenantVolume existed still extend here.
        if (v.status === 'available') await client.extendVolume(v.id, t.sizeGb);
        v = await waitStatus(client, v.id, ['available'], 10 * 60_000);
      }
      await repo.delete(reserved.rowId);
      return { volumeId: v.id, sizeGb: v.size };
    });
  }

  /**
   * Grows a delivered volume to the requested size. The volume is the tenant's already: a refusal
   * (the tenant's quota, a backend that cannot extend) is reported with the delivered size, never
   * turned into a failed claim.
   */
  async function extendTenantVolume(input: {
    target: ClaimTarget;
    volumeId: string;
  }): Promise<{ sizeGb: number; extendError: string | null }> {
    const { target: t, volumeId } = input;
    const client = tenant(t);
    return withHeartbeats(async () => {
      try {
        let v = await client.getVolume(volumeId);
        if (!t.sizeGb || t.sizeGb <= v.size) return { sizeGb: v.size, extendError: null };
        if (v.status === 'available') {
          try {
            await client.extendVolume(v.id, t.sizeGb);
          } catch (err) {
            if (err instanceof CinderError && !err.retryable) {
              log.warn(`extend of ${v.id} to ${t.sizeGb} GB refused: ${err.message}`);
              return { sizeGb: v.size, extendError: err.message };
            }
            throw err;
          }
        }
        v = await waitStatus(client, v.id, ['available'], 10 * 60_000);
        return { sizeGb: v.size, extendError: null };
      } catch (err) {
        if (err instanceof ApplicationFailure && err.type === 'VolumeFailed') {
          return { sizeGb: 0, extendError: err.message };
        }
        throw err;
      }
    });
  }

  /**
   * A hand-off that failed for good. A volume found in the tenant's project was accepted after
   * all (a lost reply): `accepted`, and the claim finishes it. Else the row goes back to the pool
   * if the volume is fine (`released`), or it is quarantined (deleted).
   */
  async function returnToPool(input: {
    claimId: string;
    reserved: ReservedVolume;
  }): Promise<'accepted' | 'released' | 'quarantined'> {
    const { reserved } = input;
    const cinder = admin();
    const ours = await adminProjectId();
    let v = await cinder.findVolume(reserved.volumeId);
    const row = await repo.get(reserved.rowId);
    if (!row) return 'quarantined';
    if (v && v.projectId !== undefined && v.projectId !== ours) {
      log.warn(`pool volume ${v.id} is in project ${v.projectId}: the accept took effect`);
      return 'accepted';
    }
    for (const t of await cinder.listTransfers({ volumeId: reserved.volumeId }).catch(() => [])) {
      await cinder.deleteTransfer(t.id).catch(() => undefined);
    }
    if (v?.status === 'awaiting-transfer') v = await cinder.findVolume(reserved.volumeId);
    if (v && v.status === 'available' && v.projectId === ours) {
      await repo.release(reserved.rowId, input.claimId);
      return 'released';
    }
    log.warn(`pool volume ${reserved.volumeId} is ${v?.status ?? 'gone'}: quarantined (deleted)`);
    if (v && v.projectId === ours) {
      await deletePoolVolume(cinder, v).catch((e: Error) =>
        log.warn(`quarantine delete failed: ${e.message}`),
      );
    }
    await repo.delete(reserved.rowId);
    return 'quarantined';
  }

  /** Plain creation makes the volume in the pool's project and hands it over (plain_create_in). */
  const createViaPool = config.plainCreateIn === 'pool';

  /**
   * Plain creation (system disk from the OS snapshot, or a blank data disk): in the tenant's
   * project, or in the pool's project when tenants cannot read the pool's snapshots (a
   * Keystone cloud; awaitTenantVolume then hands it over). Only a volume this claim made is
   * adopted; should a twin attempt have made a second one anyway, the oldest is kept and the
   * others (ours too) are deleted.
   */
  async function createTenantVolume(input: {
    target: ClaimTarget;
    image: CurrentImage | null;
    /**
     * Also the claim's name lookup (fast path): a usable volume of that name that this claim did
     * not make is returned as `existing` instead of creating one. One list call serves both.
     */
    orExisting?: boolean;
  }): Promise<{ volumeId: string; existing?: boolean }> {
    const { target: t, image } = input;
    const mark = createdByClaim(t.claimId);
    return exclusive(db, `create:${t.claimId}`, async () => {
      try {
        const client = tenant(t);
        const named = await client.listVolumes({ name: t.name });
        const other = input.orExisting && named.find((v) => usable(v) && v.description !== mark);
        if (other) return { volumeId: other.id, existing: true };
        const ours = (list: Volume[]) =>
          list
            .filter((v) => v.description === mark && v.status !== 'deleting')
            .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
        let made = ours(named);
        // Via the pool: a retry may find it still on the pool's side.
        if (createViaPool && made.length === 0)
          made = ours(await admin().listVolumes({ name: t.name }));
        if (made.length === 0) {
          const size = Math.max(t.sizeGb ?? 0, image?.sizeGb ?? 0);
          if (size <= 0) throw nonRetryable(CLAIM_FAILURES.badClaim, 'a data disk needs sizeGb');
          // The create's reply names the volume; a reply lost on the way makes this attempt
          // fail, and the retry finds the volume by its mark in the list above.
          const created = await (createViaPool ? admin() : client).createVolume({
            name: t.name,
            size,
            snapshotId: image?.snapshotId,
            volumeType: image?.volumeType ?? t.volumeType,
            description: mark,
          });
          failpoint('claim.after-plain-create');
          return { volumeId: created.id };
        }
        // A retry: keep the oldest this claim made, drop any twin.
        const [keep, ...extra] = made as [Volume, ...Volume[]];
        for (const dup of extra) {
          log.warn(`deleting duplicate volume ${dup.id} of claim ${t.claimId}`);
          await deletePoolVolume(admin(), dup);
        }
        return { volumeId: keep.id };
      } catch (err) {
        if (err instanceof CinderOverLimit)
          throw createViaPool
            ? nonRetryable('PoolOverQuota', `the pool's project is over quota: ${err.message}`)
            : nonRetryable(CLAIM_FAILURES.tenantOverQuota, err.message);
        throw err;
      }
    });
  }

  /**
   * A volume plain creation made in the pool's project goes to the tenant like a pool volume:
   * transfer, accept. A retry finds it accepted already, or drops a dead attempt's transfer.
   * Refused for good (no role in the tenant's project, its quota): the volume is deleted, since
   * nobody else will use it, and the claim fails with the reason.
   */
  async function handOverCreated(t: ClaimTarget, volumeId: string): Promise<void> {
    await exclusive(db, `handoff:${t.claimId}`, async () => {
      const cinder = admin();
      if (await inTenant(t, volumeId)) return;
      await dropPendingTransfers(volumeId);
      const transfer = await cinder.createTransfer(volumeId, transferName(t.claimId));
      try {
        await acceptOrGiveBack(t, transfer, () => dropTransfer(transfer.id));
      } catch (err) {
        if (await inTenant(t, volumeId).catch(() => null)) return; // took effect after all
        if (refusedForGood(err) || (err instanceof ApplicationFailure && err.nonRetryable)) {
          const v = await cinder.findVolume(volumeId);
          if (v && v.description === createdByClaim(t.claimId))
            await deletePoolVolume(cinder, v).catch((e: Error) =>
              log.warn(`cleanup of ${v.id} failed: ${e.message}`),
            );
        }
        throw err;
      }
    });
  }

  /**
   * Waits (heartbeating) until the tenant's new volume is available, at the latest until
   * `deadlineAt` (fixed when the claim asked, so retries never restart the clock). A volume
   * that failed or timed out is deleted, but only if this claim made it.
   */
  async function awaitTenantVolume(input: {
    target: ClaimTarget;
    volumeId: string;
    timeoutMs: number;
    deadlineAt?: number;
  }): Promise<{ sizeGb: number }> {
    const client = tenant(input.target);
    const left = () => Math.max(0, (input.deadlineAt ?? Date.now() + input.timeoutMs) - Date.now());
    try {
      if (createViaPool && !(await inTenant(input.target, input.volumeId))) {
        // (awaiting-transfer: an earlier attempt died between transfer and accept)
        await waitStatus(admin(), input.volumeId, ['available', 'awaiting-transfer'], left());
        await handOverCreated(input.target, input.volumeId);
      }
      const v = await waitStatus(client, input.volumeId, ['available'], left());
      return { sizeGb: v.size };
    } catch (err) {
      if (
        err instanceof ApplicationFailure &&
        (err.type === 'VolumeFailed' || err.type === 'VolumeTimeout')
      ) {
        // Leave the tenant nothing broken or half-made under the requested name.
        const v = await admin()
          .findVolume(input.volumeId)
          .catch(() => null);
        if (v && v.description === createdByClaim(input.target.claimId))
          await deletePoolVolume(admin(), v).catch((e: Error) =>
            log.warn(`cleanup of ${v.id} failed: ${e.message}`),
          );
      }
      throw err;
    }
  }

  async function waitStatus(
    client: CinderClient,
    id: string,
    want: string[],
    timeoutMs: number,
  ): Promise<Volume> {
    const deadline = Date.now() + timeoutMs;
    const pollMs = Math.min(1000, config.pool.pollIntervalSeconds * 1000);
    const stillCreating = client.creatingWatch(id, pollMs);
    for (;;) {
      // Still creating, by the project's shared list: no GET of its own this time.
      if (Date.now() <= deadline && (await stillCreating())) {
        heartbeat('creating');
        await sleep(pollMs);
        continue;
      }
      let v: Volume;
      try {
        v = await client.getVolume(id);
      } catch (err) {
        // Past the deadline, Cinder not answering ends the wait too (a retry would start over).
        if (Date.now() > deadline && !(err instanceof CinderError && err.status === 404))
          throw nonRetryable(
            'VolumeTimeout',
            `volume ${id} not confirmed available within ${Math.round(timeoutMs / 1000)} s: ${(err as Error).message}`,
          );
        throw err;
      }
      if (want.includes(v.status)) return v;
      if (v.status.startsWith('error'))
        throw nonRetryable('VolumeFailed', `volume ${id} went to ${v.status}`);
      if (Date.now() > deadline)
        throw nonRetryable(
          'VolumeTimeout',
          `volume ${id} still ${v.status} after ${Math.round(timeoutMs / 1000)} s`,
        );
      heartbeat(v.status);
      await sleep(pollMs);
    }
  }

  /**
   * A pool hit consumed stock: ask for a fill soon. Claims go first: a fill's listing, creates
   * and polling compete with hand-offs for Cinder, so during a burst the request waits until
   * claims have been quiet for REFILL_QUIET_MS, at most REFILL_MAX_DELAY_MS after the first
   * claim that asked (a steady stream still gets its refill). One request per worker covers
   * every claim before it. BUFFER_ONE makes a request during a running fill queue exactly one
   * more run (a SKIP would lose it, and the stock would wait for the next tick); further
   * requests while one is queued add nothing.
   */
  let firstAskedAt: number | null = null;
  let pending: NodeJS.Timeout | undefined;
  async function requestRefill(): Promise<boolean> {
    if (!temporal) return false;
    try {
      const fill = temporal.schedule.getHandle(scheduleIds(config).fill);
      // trigger() runs even a paused schedule: an operator's pause must stop refills too.
      if ((await fill.describe()).state.paused) return false;
      await fill.trigger(ScheduleOverlapPolicy.BUFFER_ONE);
      return true;
    } catch (err) {
      log.warn(`refill trigger failed (the next tick will refill): ${(err as Error).message}`);
      return false;
    }
  }
  async function triggerRefill(): Promise<boolean> {
    const now = Date.now();
    firstAskedAt ??= now;
    const at = Math.min(now + REFILL_QUIET_MS, firstAskedAt + REFILL_MAX_DELAY_MS);
    clearTimeout(pending);
    pending = setTimeout(
      () => {
        pending = undefined;
        firstAskedAt = null;
        void requestRefill();
      },
      Math.max(0, at - now),
    ).unref();
    return false; // requested by the timer, once the claims around this one are served
  }

  return {
    findTenantVolume,
    claimName,
    lockClaimName,
    releaseClaimName,
    extendTenantVolume,
    currentImage,
    reservePoolVolume,
    handOff,
    deliverPoolVolume,
    settleReservation,
    reserveForClaim,
    finishHandOff,
    returnToPool,
    createTenantVolume,
    awaitTenantVolume,
    triggerRefill,
  };
}
