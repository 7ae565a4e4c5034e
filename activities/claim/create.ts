/**
 * Plain creation (a system disk from the OS snapshot when the pool cannot serve, or a blank data
 * disk), waiting until available, and growing a delivered volume. A volume this claim made
 * carries its mark (the description), so a retried create never makes a second volume and no
 * volume the claim did not make is ever adopted or deleted.
 */
import { ApplicationFailure, log } from '@temporalio/activity';
import { CinderError, CinderOverLimit, type Volume } from '../../lib/cinder';
import { DemandRepository } from '../../lib/pool-state/demand';
import { failpoint } from '../../lib/failpoints';
import { CLAIM_FAILURES, type ClaimTarget, type CurrentImage } from '../../contracts/claim';
import { deletePoolVolume, refusedForGood } from '../cinder/volumes';
import { exclusive, withHeartbeats } from '../guard';
import type { Deps } from '../deps';
import {
  claimZone,
  createdByClaim,
  nonRetryable,
  transferName,
  usable,
  type ClaimContext,
} from './context';

export function plainCreationActivities(
  { config, db }: Pick<Deps, 'config' | 'db'>,
  ctx: ClaimContext,
) {
  const demand = new DemandRepository(db);
  const { admin, tenant } = ctx;
  /** Plain creation makes the volume in the pool's project and hands it over (plain_create_in). */
  const createViaPool = config.plainCreateIn === 'pool';

  const oldestFirst = (list: Volume[]) =>
    [...list].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));

  /**
   * In the tenant's project, or in the pool's when tenants cannot read the pool's snapshots (a
   * Keystone cloud; awaitTenantVolume then hands it over). One list call is also the claim's
   * name lookup: a usable volume of that name this claim did not make is `existing`. Should a
   * twin attempt have made a second volume anyway, the oldest is kept and the others deleted.
   */
  async function createTenantVolume(input: {
    target: ClaimTarget;
    image: CurrentImage | null;
  }): Promise<{ volumeId: string; existing?: boolean; zone?: string }> {
    const { target: t, image } = input;
    const mark = createdByClaim(t.claimId);
    return exclusive(db, `create:${t.claimId}`, async () => {
      try {
        const named = await tenant(t).listVolumes({ name: t.name });
        const other = named.find((v) => usable(v) && v.description !== mark);
        if (other) return { volumeId: other.id, existing: true, zone: other.availabilityZone };
        const ours = (list: Volume[]) =>
          oldestFirst(list.filter((v) => v.description === mark && v.status !== 'deleting'));
        let made = ours(named);
        // Via the pool: a retry may find it still on the pool's side.
        if (createViaPool && made.length === 0)
          made = ours(await admin().listVolumes({ name: t.name }));
        const [keep, ...extra] = made;
        if (!keep) return await createOne(t, image);
        await recordMiss(t); // (again: a crash may have come between the create and the record)
        for (const dup of extra) {
          log.warn(`deleting duplicate volume ${dup.id} of claim ${t.claimId}`);
          await deletePoolVolume(admin(), dup);
        }
        return { volumeId: keep.id, zone: keep.availabilityZone };
      } catch (err) {
        if (err instanceof CinderOverLimit)
          throw createViaPool
            ? nonRetryable(
                CLAIM_FAILURES.poolOverQuota,
                `the pool's project is over quota: ${err.message}`,
              )
            : nonRetryable(CLAIM_FAILURES.tenantOverQuota, err.message);
        throw err;
      }
    });
  }

  async function createOne(
    t: ClaimTarget,
    image: CurrentImage | null,
  ): Promise<{ volumeId: string; zone: string }> {
    const size = Math.max(t.sizeGb ?? 0, image?.sizeGb ?? 0);
    if (size <= 0) throw nonRetryable(CLAIM_FAILURES.badClaim, 'a data disk needs sizeGb');
    // The create's reply names the volume; a reply lost on the way makes this attempt fail, and
    // the retry finds the volume by its mark.
    const created = await (createViaPool ? admin() : tenant(t)).createVolume({
      name: t.name,
      size,
      snapshotId: image?.snapshotId,
      volumeType: image?.volumeType ?? t.volumeType,
      // From a snapshot: the snapshot's zone, which is the claim's (its zone's image).
      availabilityZone: claimZone(config, t) || undefined,
      description: createdByClaim(t.claimId),
    });
    await recordMiss(t);
    failpoint('claim.after-plain-create');
    return { volumeId: created.id, zone: created.availabilityZone };
  }

  /** A system disk the pool did not serve: demand all the same (a miss; once per claim). */
  async function recordMiss(t: ClaimTarget): Promise<void> {
    if (t.os)
      await demand.record({
        claimId: t.claimId,
        type: t.volumeType,
        os: t.os,
        zone: claimZone(config, t),
        projectId: t.projectId,
        hit: false,
      });
  }

  /**
   * A volume made in the pool's project goes to the tenant like a pool volume: transfer, accept.
   * A retry finds it accepted already, or drops a dead attempt's transfer. Refused for good (no
   * role in the tenant's project, its quota): the volume is deleted, since nobody else will use
   * it, and the claim fails with the reason.
   */
  async function handOverCreated(t: ClaimTarget, volumeId: string): Promise<void> {
    await exclusive(db, `handoff:${t.claimId}`, async () => {
      if (await ctx.inTenant(t, volumeId)) return;
      // Under this step's lock (and the claim's own volume): no fence to ask.
      await ctx.dropPendingTransfers(volumeId, async () => true);
      const transfer = await admin().createTransfer(volumeId, transferName(t.claimId));
      try {
        await tenant(t).acceptTransfer(transfer.id, transfer.authKey);
      } catch (err) {
        if (await ctx.inTenant(t, volumeId).catch(() => null)) return; // took effect after all
        await ctx.dropTransfer(transfer.id);
        if (err instanceof CinderOverLimit || refusedForGood(err)) {
          const v = await admin().findVolume(volumeId);
          if (v && v.description === createdByClaim(t.claimId))
            await deletePoolVolume(admin(), v).catch((e: Error) =>
              log.warn(`cleanup of ${v.id} failed: ${e.message}`),
            );
          if (err instanceof CinderOverLimit)
            throw nonRetryable(
              CLAIM_FAILURES.acceptRefused,
              `the tenant's project cannot take the volume: ${err.message}`,
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
    deadlineAt: number;
  }): Promise<{ sizeGb: number }> {
    const { target: t, volumeId } = input;
    const left = () => Math.max(0, input.deadlineAt - Date.now());
    try {
      if (createViaPool && !(await ctx.inTenant(t, volumeId))) {
        // (awaiting-transfer: an earlier attempt died between transfer and accept)
        await ctx.waitStatus(admin(), volumeId, ['available', 'awaiting-transfer'], left());
        await handOverCreated(t, volumeId);
      }
      const v = await ctx.waitStatus(tenant(t), volumeId, ['available'], left());
      return { sizeGb: v.size };
    } catch (err) {
      const failed = [CLAIM_FAILURES.volumeFailed, CLAIM_FAILURES.volumeTimeout] as string[];
      if (err instanceof ApplicationFailure && failed.includes(err.type ?? '')) {
        // Leave the tenant nothing broken or half-made under the requested name.
        const v = await admin()
          .findVolume(volumeId)
          .catch(() => null);
        if (v && v.description === createdByClaim(t.claimId))
          await deletePoolVolume(admin(), v).catch((e: Error) =>
            log.warn(`cleanup of ${v.id} failed: ${e.message}`),
          );
      }
      throw err;
    }
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
        v = await ctx.waitStatus(client, v.id, ['available'], 10 * 60_000);
        return { sizeGb: v.size, extendError: null };
      } catch (err) {
        if (err instanceof ApplicationFailure && err.type === CLAIM_FAILURES.volumeFailed)
          return { sizeGb: 0, extendError: err.message };
        throw err;
      }
    });
  }

  return { createTenantVolume, awaitTenantVolume, extendTenantVolume };
}
