/**
 * A pool hit's hand-off, driven by the reserved row's fenced state (lib/pool-state/handoff.ts):
 *
 *   transferring (fresh)  name lookup ‖ transfer create (admin), then accept (as the tenant)
 *   transferring (again)  an earlier attempt may have left a transfer: dropped; the volume
 *                         already the tenant's → accepted, back in the pool → reserved
 *   reserved              → transferring, fresh
 *   accepted              rename (one PUT, pool tags dropped), then the row is delivered
 *
 * A first attempt makes exactly four Cinder calls (lookup, transfer, accept, rename). The
 * transfer's auth key never leaves this process. Every Cinder mutation follows a compare-and-set
 * of the row under this attempt's epoch; when one fails, a newer attempt or the compensation owns
 * the row, and this one stops (HandOffSuperseded) without touching Cinder again.
 */
import { ApplicationFailure, log } from '@temporalio/activity';
import { CinderOverLimit, type Volume } from '../../lib/cinder';
import {
  HandOffRows,
  type Fence,
  type HandOffState,
  type HeldRow,
} from '../../lib/pool-state/handoff';
import { delaypoint, failpoint } from '../../lib/failpoints';
import {
  CLAIM_FAILURES,
  mustGrow,
  type ClaimTarget,
  type Delivery,
  type ReservedVolume,
} from '../../contracts/claim';
import type { Deps } from '../deps';
import { withHeartbeats } from '../guard';
import { nonRetryable, transferName, type ClaimContext } from './context';
import type { RefillRequester } from './refill';

type Step = { state: HandOffState; fresh: boolean };
type Hand = { t: ClaimTarget; reserved: ReservedVolume; f: Fence };

export function deliverActivities(
  { db, cinder }: Pick<Deps, 'db' | 'cinder'>,
  ctx: ClaimContext,
  refill: RefillRequester,
  releaseClaimName: (t: ClaimTarget) => Promise<void>,
) {
  const rows = new HandOffRows(db);

  const superseded = ({ t, f }: Hand) =>
    nonRetryable(
      CLAIM_FAILURES.handOffSuperseded,
      `claim ${t.claimId}: a newer attempt took pool row ${f.rowId} (epoch ${f.epoch} is over)`,
    );

  /**
   * The pool hit: the reserved volume delivered to the tenant (or the name found there
   * already), the row settled, and the name lock released unless the volume must still grow.
   */
  async function deliverPoolVolume(input: {
    target: ClaimTarget;
    reserved: ReservedVolume;
  }): Promise<Delivery> {
    const { target: t, reserved } = input;
    const held = await rows.take(reserved.rowId, t.claimId, true);
    // Heartbeats (for the normal-activity run after a compensation): a slow hand-off is not
    // taken for a dead one.
    const delivery = await withHeartbeats(() =>
      held ? handOff(t, reserved, held) : afterLostRow(t, reserved),
    );
    const growing = !delivery.existing && mustGrow(t.sizeGb, delivery.sizeGb);
    if (!growing) await releaseClaimName(t);
    failpoint('claim.after-settle');
    return { ...delivery, nameReleased: !growing };
  }

  async function handOff(
    t: ClaimTarget,
    reserved: ReservedVolume,
    held: HeldRow,
  ): Promise<Omit<Delivery, 'nameReleased'>> {
    const hand: Hand = { t, reserved, f: held.fence };
    let step: Step = { state: held.state, fresh: held.was === 'reserved' };
    for (;;) {
      if (step.state === 'accepted') return renameAndDeliver(hand);
      if (step.state === 'reserved') {
        if (!(await rows.advance(hand.f, 'reserved', 'transferring'))) throw superseded(hand);
        step = { state: 'transferring', fresh: true };
      } else if (step.fresh) {
        const next = await transferAndAccept(hand);
        if ('existing' in next) return next;
        step = next;
      } else step = await recoverTransfer(hand);
    }
  }

  /** Lookup ‖ transfer create, then accept. The name found in the tenant's project wins. */
  async function transferAndAccept(hand: Hand): Promise<Step | Omit<Delivery, 'nameReleased'>> {
    const { t, reserved, f } = hand;
    const [found, made] = await Promise.allSettled([
      ctx.findTenantVolume(t),
      ctx.admin().createTransfer(reserved.volumeId, transferName(t.claimId)),
    ]);
    if (found.status === 'rejected' || found.value) {
      const left = await giveBack(hand, made.status === 'fulfilled' ? made.value.id : null);
      if (found.status === 'rejected') throw found.reason;
      if (left !== 'reserved')
        throw new Error(`the transfer of ${reserved.volumeId} is still pending`);
      // The name exists already: the row goes back to the pool, the claim answers `existing`.
      if (!(await rows.release(f, left))) throw superseded(hand);
      const named = found.value as Volume;
      return { existing: true, volumeId: named.id, sizeGb: null, zone: named.availabilityZone };
    }
    // (A reply lost on the way leaves the row `transferring`: the retry finds the transfer.)
    if (made.status === 'rejected') throw made.reason;
    const transfer = made.value;
    failpoint('claim.after-transfer-create');
    if (!(await rows.advance(f, 'transferring', 'transferring', transfer.id))) {
      // The one mutation after a lost fence: this attempt's own transfer, never recorded, which
      // only it could accept (the auth key is here). Left, it would block the volume.
      await ctx.dropTransfer(transfer.id);
      throw superseded(hand);
    }
    await delaypoint('claim.before-accept');
    try {
      await ctx.tenant(t).acceptTransfer(transfer.id, transfer.authKey);
    } catch (err) {
      // A lost reply, or refused after Cinder acted: the volume in the tenant's project means
      // the accept happened.
      if (await ctx.inTenant(t, reserved.volumeId).catch(() => null)) {
        log.warn(`accept of ${reserved.volumeId} took effect despite: ${(err as Error).message}`);
        return toAccepted(hand);
      }
      await giveBack(hand, transfer.id);
      if (err instanceof CinderOverLimit)
        throw nonRetryable(
          CLAIM_FAILURES.acceptRefused,
          `the tenant's project cannot take the volume: ${err.message}`,
        );
      throw err;
    }
    failpoint('claim.after-accept');
    return toAccepted(hand);
  }

  async function toAccepted(hand: Hand): Promise<Step> {
    if (!(await rows.advance(hand.f, 'transferring', 'accepted'))) throw superseded(hand);
    return { state: 'accepted', fresh: false };
  }

  /**
   * Undoes this attempt's transfer (`null`: one whose reply was lost, found by listing): dropped,
   * so the volume is `available` in the pool again, and the row back to `reserved`. A delete that
   * fails leaves the row `transferring`, for the next attempt's recovery. Returns the state left.
   */
  async function giveBack(hand: Hand, transferId: string | null): Promise<HandOffState> {
    const { reserved, f } = hand;
    const licence = () => rows.advance(f, 'transferring', 'transferring');
    try {
      if (!transferId) {
        if (!(await ctx.dropPendingTransfers(reserved.volumeId, licence))) throw superseded(hand);
      } else if (!(await licence())) throw superseded(hand);
      else await ctx.admin().deleteTransfer(transferId);
    } catch (e) {
      if (e instanceof ApplicationFailure) throw e;
      log.warn(`could not drop the transfer of ${reserved.volumeId}: ${(e as Error).message}`);
      return 'transferring';
    }
    if (!(await rows.advance(f, 'transferring', 'reserved', null))) throw superseded(hand);
    return 'reserved';
  }

  /**
   * An earlier attempt got as far as `transferring`: its transfer (if any) is dropped — its auth
   * key died with it — and the volume says what happened: the tenant's (accepted), or available
   * in the pool (start over).
   */
  async function recoverTransfer(hand: Hand): Promise<Step> {
    const { t, reserved, f } = hand;
    const licence = () => rows.advance(f, 'transferring', 'transferring');
    if (!(await ctx.dropPendingTransfers(reserved.volumeId, licence))) throw superseded(hand);
    const v = await ctx.admin().findVolume(reserved.volumeId);
    if (v && v.projectId === t.projectId) return toAccepted(hand);
    if (!v)
      throw nonRetryable(
        CLAIM_FAILURES.poolVolumeGone,
        `pool volume ${reserved.volumeId} no longer exists`,
      );
    if (!(await inPoolAndAvailable(v)))
      throw nonRetryable(
        CLAIM_FAILURES.poolVolumeUnusable,
        `pool volume ${reserved.volumeId} is ${v.status}, not available`,
      );
    if (!(await rows.advance(f, 'transferring', 'reserved', null))) throw superseded(hand);
    return { state: 'reserved', fresh: true };
  }

  const inPoolAndAvailable = async (v: Volume) =>
    v.status === 'available' &&
    (v.projectId === undefined || v.projectId === (await cinder.projectId()));

  /** The accepted volume gets the requested name and loses the pool tags; the row is delivered. */
  async function renameAndDeliver(hand: Hand): Promise<Omit<Delivery, 'nameReleased'>> {
    const { t, reserved, f } = hand;
    const v = await ctx.tenant(t).updateVolume(reserved.volumeId, { name: t.name, metadata: {} });
    failpoint('claim.after-rename');
    failpoint('claim.before-settle');
    if (!(await rows.deliver(f, t.projectId))) throw superseded(hand);
    refill.ask();
    return { existing: false, volumeId: v.id, sizeGb: v.size, zone: v.availabilityZone };
  }

  /**
   * The claim no longer holds its row (an earlier attempt delivered it or gave it back, and it
   * may be another claim's by now): no Cinder mutation, only a look at what happened.
   */
  async function afterLostRow(
    t: ClaimTarget,
    reserved: ReservedVolume,
  ): Promise<Omit<Delivery, 'nameReleased'>> {
    const mine = await ctx.inTenant(t, reserved.volumeId);
    if (mine && mine.name === t.name)
      return { existing: false, volumeId: mine.id, sizeGb: mine.size, zone: mine.availabilityZone };
    const existing = await ctx.findTenantVolume(t);
    if (existing)
      return {
        existing: true,
        volumeId: existing.id,
        sizeGb: null,
        zone: existing.availabilityZone,
      };
    throw nonRetryable(
      CLAIM_FAILURES.reservationLost,
      `claim ${t.claimId} no longer holds pool row ${reserved.rowId}`,
    );
  }

  return { deliverPoolVolume };
}
