/**
 * The claim (the seed's create_volume_if_absent) as a durable workflow, id `claim-<requestId>`:
 *   not a system disk → plain creation;
 *   a volume of that name already in the tenant's project → return it (`existing`);
 *   else reserve a current pool volume → hand it off (transfer + accept) → rename/untag/extend →
 *   drop its row → `pool`, and trigger a refill;
 *   pool empty, or the hand-off fails for good → the volume goes back to the pool (or is
 *   quarantined), then plain creation from the OS snapshot → `created`.
 * Outcome, project, OS and type are search attributes: every claim is findable in the Web UI.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  CLAIM_FAILURES,
  claimDeliveredUpdate,
  claimStatusQuery,
  type ClaimInput,
  type ClaimOutcome,
  type ClaimResult,
  type ClaimStatus,
  type ClaimTarget,
  type CurrentImage,
  type Delivery,
  type ReservedVolume,
} from '../contracts/claim';
import { LOCAL_PROFILES, PROFILES } from './profiles';
import { failureReason } from './failures';

const call = proxyActivities<Activities>(PROFILES.cinderCall);
const handoff = proxyActivities<Activities>(PROFILES.claimHandOff);
const wait = proxyActivities<Activities>(PROFILES.poolAwait);
const db = proxyActivities<Activities>(PROFILES.database);
const names = proxyActivities<Activities>(PROFILES.claimNameLock);
const extend = proxyActivities<Activities>(PROFILES.tenantExtend);
const localDb = proxyLocalActivities<Activities>(LOCAL_PROFILES.database);
const localNames = proxyLocalActivities<Activities>(LOCAL_PROFILES.claimNameLock);

/** Names of patches (see patched()): claims started by older code replay on their old path. */
export const CLAIM_PATCHES = {
  /** One running claim per (project, name); the lookup happens under that lock. */
  nameLock: 'claim-name-lock',
  /** Extend in its own activity, and a refused extend reported rather than failing the claim. */
  extendStep: 'claim-extend-step',
  /** Plain creation waits until a deadline fixed once, bounded by schedule-to-close. */
  createDeadline: 'claim-create-deadline',
  /** The short database steps (image, reserve, name release, refill request) run locally. */
  localSteps: 'claim-local-steps',
  /**
   * A pool hit in one activity (lookup alongside the transfer, accept, one renaming PUT), the
   * name lock taken locally, and the row dropped after the answer is out.
   */
  fastPath: 'claim-fast-path',
} as const;

export async function claimVolumeWorkflow(input: ClaimInput): Promise<ClaimResult> {
  const started = Date.now();
  const timingsMs: Record<string, number> = {};
  const mark = (k: string) => (timingsMs[k] = Date.now() - started);
  const status: ClaimStatus = {
    step: 'started',
    outcome: null,
    volumeId: null,
    fallbackReason: null,
  };
  setHandler(claimStatusQuery, () => status);
  let answer: ClaimResult | undefined;
  let failure: string | undefined;
  setHandler(
    claimDeliveredUpdate,
    async () => {
      await condition(() => answer !== undefined || failure !== undefined);
      if (answer) return answer;
      throw ApplicationFailure.nonRetryable(failure as string, CLAIM_FAILURES.claimFailed);
    },
    {
      validator: ({ bodyHash }) => {
        if (bodyHash !== workflowInfo().memo?.bodyHash)
          throw ApplicationFailure.nonRetryable(
            `requestId ${input.requestId} was already used with a different body`,
            CLAIM_FAILURES.bodyMismatch,
          );
      },
    },
  );
  upsertSearchAttributes({
    PoolProject: [input.projectId],
    PoolOs: [input.os ?? '-'],
    PoolVolumeType: [input.volumeType],
    PoolKind: [input.systemDisk ? 'system' : 'data'],
  });
  const target: ClaimTarget = {
    claimId: workflowInfo().workflowId,
    projectId: input.projectId,
    userId: input.userId,
    name: input.name,
    os: input.os,
    volumeType: input.volumeType,
    sizeGb: input.sizeGb,
  };
  let extendError: string | null | undefined;
  const done = (volumeId: string, outcome: ClaimOutcome): ClaimResult => {
    status.step = 'done';
    status.outcome = outcome;
    status.volumeId = volumeId;
    upsertSearchAttributes({ PoolOutcome: [outcome] });
    mark('total');
    const result: ClaimResult = {
      volumeId,
      outcome,
      fallbackReason: status.fallbackReason,
      timingsMs,
    };
    if (extendError !== undefined) result.extendError = extendError;
    answer = result;
    return result;
  };

  const fast = input.systemDisk && patched(CLAIM_PATCHES.fastPath);
  const nameLocked = fast || (input.systemDisk && patched(CLAIM_PATCHES.nameLock));
  // Decided once per claim: a claim started before the change keeps normal activities.
  const local = fast || patched(CLAIM_PATCHES.localSteps);
  const steps = local ? localDb : db;
  const refill = local ? localDb : call;
  try {
    let image: CurrentImage | null = null;
    if (fast) {
      const pool = await fromPool(input, target, status);
      if ('delivery' in pool) {
        const { delivery, reserved } = pool;
        mark('delivered');
        if (delivery.existing) {
          await localDb.settleReservation({
            claimId: target.claimId,
            rowId: reserved.rowId,
            delivered: false,
          });
          return done(delivery.volumeId, 'existing');
        }
        if (target.sizeGb && target.sizeGb > (delivery.sizeGb ?? 0)) {
          status.step = 'extend';
          const grown = await extend.extendTenantVolume({ target, volumeId: delivery.volumeId });
          extendError = grown.extendError;
          mark('extended');
        }
        const result = done(delivery.volumeId, 'pool');
        // The answer is out with this workflow task (normal activities do not hold it back the
        // way local ones would); the row and the refill follow.
        await Promise.all([
          db.settleReservation({ claimId: target.claimId, rowId: reserved.rowId, delivered: true }),
          call.triggerRefill(),
        ]);
        return result;
      }
      image = pool.image;
    } else if (input.systemDisk) {
      status.step = 'lookup';
      const existing = nameLocked
        ? await names.claimName(target)
        : await call.findTenantVolume(target);
      mark('lookup');
      if (existing) return done(existing.volumeId, 'existing');

      image =
        (await steps.currentImage({ os: input.os as string, volumeType: input.volumeType })) ??
        (await imageFromCinder(input.os as string, input.volumeType));

      status.step = 'reserve';
      const reserved: ReservedVolume | null = await steps.reservePoolVolume({
        claimId: target.claimId,
        os: input.os as string,
        volumeType: input.volumeType,
        snapshotId: image.snapshotId,
      });
      mark('reserve');
      if (reserved) {
        try {
          status.step = 'transfer';
          await handoff.handOff({ target, reserved });
          mark('accepted');
        } catch (err) {
          // The hand-off failed for good: never lose the volume, then fall back, unless the
          // volume turns out to be the tenant's after all (an accept whose reply was lost).
          status.fallbackReason = `hand-off failed: ${failureReason(err)}`;
          status.step = 'compensate';
          const back = await call.returnToPool({ claimId: target.claimId, reserved });
          if (back === 'accepted') status.fallbackReason = null;
        }
        if (status.fallbackReason === null) {
          // Accepted: the volume is the tenant's now. Finishing is retried; it never falls back
          // (that would give the tenant a second volume of the same name).
          status.step = 'finish';
          const extendStep = patched(CLAIM_PATCHES.extendStep);
          // The refill starts alongside: the reserved row already does not count as stock.
          const [finished] = await Promise.all([
            handoff.finishHandOff({ target, reserved, extend: !extendStep }),
            refill.triggerRefill(),
          ]);
          mark('finished');
          if (extendStep && target.sizeGb && target.sizeGb > finished.sizeGb) {
            status.step = 'extend';
            const grown = await extend.extendTenantVolume({
              target,
              volumeId: finished.volumeId,
            });
            extendError = grown.extendError;
            mark('extended');
          }
          return done(finished.volumeId, 'pool');
        }
      } else {
        status.fallbackReason = 'pool empty';
      }
    }

    status.step = 'create';
    const timeoutMs = input.createTimeoutMs ?? 30 * 60_000;
    const bounded = patched(CLAIM_PATCHES.createDeadline);
    // Fixed once, before the create: no retry of any step restarts the clock.
    const deadlineAt = bounded ? Date.now() + timeoutMs : undefined;
    const created = await handoff.createTenantVolume({ target, image, orExisting: fast });
    if (created.existing) {
      mark('lookup');
      status.fallbackReason = null;
      return done(created.volumeId, 'existing');
    }
    mark('createRequested');
    status.step = 'wait-available';
    const waiter = bounded
      ? proxyActivities<Activities>({
          ...PROFILES.poolAwait,
          // The whole wait, retries included, ends shortly after the deadline.
          scheduleToCloseTimeout: timeoutMs + 5 * 60_000,
        })
      : wait;
    await waiter.awaitTenantVolume({
      target,
      volumeId: created.volumeId,
      timeoutMs,
      deadlineAt,
    });
    mark('available');
    return done(created.volumeId, 'created');
  } catch (err) {
    failure = failureReason(err); // a waiting `delivered` update fails with the claim
    throw err;
  } finally {
    if (nameLocked) {
      // Even when the claim failed or was cancelled: the next claim for this name may go.
      await CancellationScope.nonCancellable(() => steps.releaseClaimName(target));
    }
  }
}

/** Where a fast-path system disk stands after the pool: delivered, or to create. */
type PoolAnswer = { delivery: Delivery; reserved: ReservedVolume } | { image: CurrentImage };

/**
 * The pool side of a system disk claim (patch claim-fast-path): the name lock and the
 * reservation are local steps, the hand-off with its lookup is one activity. A failed hand-off
 * gives the volume back (or finishes it, if the accept took effect after all) and leaves the
 * claim to plain creation, which looks the name up first.
 */
async function fromPool(
  input: ClaimInput,
  target: ClaimTarget,
  status: ClaimStatus,
): Promise<PoolAnswer> {
  status.step = 'reserve';
  const os = input.os as string;
  // Lock, image and reservation in one local step: one pass through the worker, no round trip.
  const first = await localNames.reserveForClaim(target);
  const image = first.image ?? (await imageFromCinder(os, input.volumeType));
  const reserved = first.image
    ? first.reserved
    : await localDb.reservePoolVolume({
        claimId: target.claimId,
        os,
        volumeType: input.volumeType,
        snapshotId: image.snapshotId,
      });
  if (reserved) {
    status.step = 'transfer';
    try {
      return { delivery: await handoff.deliverPoolVolume({ target, reserved }), reserved };
    } catch (err) {
      status.fallbackReason = `hand-off failed: ${failureReason(err)}`;
      status.step = 'compensate';
      if ((await call.returnToPool({ claimId: target.claimId, reserved })) === 'accepted') {
        status.fallbackReason = null;
        status.step = 'finish';
        const done = await handoff.finishHandOff({ target, reserved, extend: false });
        return { delivery: { existing: false, ...done }, reserved };
      }
    }
  } else {
    status.fallbackReason = 'pool empty';
  }
  // Plain creation follows; its first list call is also the name lookup (orExisting).
  return { image };
}

/** No fill has run yet (a fresh install): the OS's image straight from Cinder. */
async function imageFromCinder(os: string, volumeType: string): Promise<CurrentImage> {
  const resolved = await call.resolveImages({});
  const img = resolved.images.find((i) => i.os === os && i.type === volumeType);
  if (!img)
    throw ApplicationFailure.nonRetryable(
      `no current image for ${volumeType}/${os}`,
      CLAIM_FAILURES.unknownImage,
    );
  return { snapshotId: img.snapshotId, volumeType: img.volumeType, sizeGb: img.sizeGb };
}
