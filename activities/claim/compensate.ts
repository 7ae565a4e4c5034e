/**
 * Compensation of a failed hand-off, and the one release-or-quarantine decision for a held row
 * (also used by the status check for reservations whose claim ended without settling them).
 * It runs under the same fence as the hand-off: taking the row stops any attempt of the
 * hand-off still running, and every Cinder mutation follows a compare-and-set of the row.
 */
import { log } from '@temporalio/activity';
import { HandOffRows, type HeldRow } from '../../lib/pool-state/handoff';
import type { Compensation, ClaimTarget, ReservedVolume } from '../../contracts/claim';
import { deletePoolVolume } from '../cinder/volumes';
import type { Deps } from '../deps';
import type { ClaimContext } from './context';

export type RowSettler = ReturnType<typeof rowSettler>;

/**
 * What becomes of a held row whose hand-off will not go on: its pending transfers dropped
 * first, then the volume decides — the tenant's (`accepted`: the claim finishes the delivery),
 * available in the pool (`released`), else `quarantined` (the row goes; the volume is deleted
 * if it is still in the pool's project). `lost`: the fence was taken meanwhile, nothing done.
 */
export function rowSettler({ db, cinder }: Pick<Deps, 'db' | 'cinder'>, ctx: ClaimContext) {
  const rows = new HandOffRows(db);

  return async function settleHeldRow(
    held: HeldRow,
    volumeId: string,
    /** The claim's tenant project (null: unknown, the volume is never taken as accepted). */
    tenantProjectId: string | null,
  ): Promise<Compensation> {
    const { fence: f, state } = held;
    const admin = ctx.admin();
    const pool = await cinder.projectId();
    const licence = () => rows.advance(f, state, state);
    if (state !== 'reserved' && !(await ctx.dropPendingTransfers(volumeId, licence))) return 'lost';
    let v = await admin.findVolume(volumeId);
    if (v?.status === 'awaiting-transfer') {
      // A transfer made by an attempt that lost its fence after creating it.
      if (!(await ctx.dropPendingTransfers(volumeId, licence))) return 'lost';
      v = await admin.findVolume(volumeId);
    }
    if (v && tenantProjectId && v.projectId === tenantProjectId)
      return (await rows.advance(f, state, 'accepted')) ? 'accepted' : 'lost';
    const inPool = v && (v.projectId === undefined || v.projectId === pool);
    if (v && !inPool && state === 'accepted' && v.projectId) {
      // Accepted by a claim that ended before renaming it (tenant unknown here): the tenant's
      // volume all the same, never quarantined. Delivered as it is.
      log.warn(`pool volume ${volumeId} was accepted into ${v.projectId}: delivered unrenamed`);
      return (await rows.deliver(f, v.projectId)) ? 'accepted' : 'lost';
    }
    if (v && inPool && v.status === 'available')
      return (await rows.release(f, state)) ? 'released' : 'lost';
    if (!(await rows.remove(f, state))) return 'lost';
    log.warn(`pool volume ${volumeId} is ${v?.status ?? 'gone'}: quarantined`);
    if (v && inPool)
      await deletePoolVolume(admin, v).catch((e: Error) =>
        log.warn(`quarantine delete of ${volumeId} failed: ${e.message}`),
      );
    return 'quarantined';
  };
}

export function compensateActivities(
  { db }: Pick<Deps, 'db'>,
  settleHeldRow: ReturnType<typeof rowSettler>,
) {
  const rows = new HandOffRows(db);

  /**
   * A hand-off that failed for good. The row is taken under a new epoch (a hand-off attempt still
   * running stops at its next step); a row the claim no longer holds is `lost`: no Cinder call
   * at all, and the claim falls back to plain creation (whose name lookup finds a delivery that
   * happened after all).
   */
  async function returnToPool(input: {
    target: ClaimTarget;
    reserved: ReservedVolume;
  }): Promise<Compensation> {
    const { target: t, reserved } = input;
    const held = await rows.take(reserved.rowId, t.claimId);
    if (!held) return 'lost';
    return settleHeldRow(held, reserved.volumeId, t.projectId);
  }

  return { returnToPool };
}
