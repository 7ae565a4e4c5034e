/**
 * The claim (the seed's create_volume_if_absent) as a durable workflow, id `claim-<requestId>`,
 * read as named steps:
 *   fromPool        reserve (lock + image + row), deliver (lookup ‖ transfer, accept, rename,
 *                   then the row dropped, a refill asked for, the name lock released); a failed
 *                   hand-off is compensated (the volume back to the pool)
 *   settleDelivery  answer the `delivered` update (and settle the row, if the hand-off did not)
 *   plainCreation   create from the OS snapshot (its list call is the name lookup) and wait
 * Not a system disk → plainCreation only. Claims started by earlier code replay on
 * `earlierPoolPath` (patches in CLAIM_PATCHES).
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
  mustGrow,
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
const localHandoff = proxyLocalActivities<Activities>(LOCAL_PROFILES.claimHandOff);

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
  /** The refill request rides on the settle step: one activity after the answer, not two. */
  settleRefills: 'claim-settle-refills',
  /** The pool hit's hand-off as a local activity: the whole claim in one workflow task. */
  localHandOff: 'claim-local-handoff',
} as const;

/** One claim's state: what the status query shows, the timings, the answer the update awaits. */
class ClaimRun {
  readonly started = Date.now();
  readonly timingsMs: Record<string, number> = {};
  readonly status: ClaimStatus = {
    step: 'started',
    outcome: null,
    volumeId: null,
    fallbackReason: null,
  };
  readonly target: ClaimTarget;
  answer?: ClaimResult;
  failure?: string;
  /** The hand-off released the name lock itself (its recorded result says so). */
  nameReleased = false;
  extendError?: string | null;

  constructor(readonly input: ClaimInput) {
    this.target = {
      claimId: workflowInfo().workflowId,
      projectId: input.projectId,
      userId: input.userId,
      name: input.name,
      os: input.os,
      volumeType: input.volumeType,
      sizeGb: input.sizeGb,
    };
  }

  step(name: string): void {
    this.status.step = name;
  }

  mark(event: string): void {
    this.timingsMs[event] = Date.now() - this.started;
  }

  /** The claim's result; also the `delivered` update's answer from now on. */
  done(volumeId: string, outcome: ClaimOutcome): ClaimResult {
    Object.assign(this.status, { step: 'done', outcome, volumeId });
    upsertSearchAttributes({ PoolOutcome: [outcome] });
    this.mark('total');
    const result: ClaimResult = {
      volumeId,
      outcome,
      fallbackReason: this.status.fallbackReason,
      timingsMs: this.timingsMs,
    };
    if (this.extendError !== undefined) result.extendError = this.extendError;
    this.answer = result;
    return result;
  }
}

export async function claimVolumeWorkflow(input: ClaimInput): Promise<ClaimResult> {
  const run = new ClaimRun(input);
  installHandlers(run);
  upsertSearchAttributes({
    PoolProject: [input.projectId],
    PoolOs: [input.os ?? '-'],
    PoolVolumeType: [input.volumeType],
    PoolKind: [input.systemDisk ? 'system' : 'data'],
  });
  // Decided once per claim, in this order: a claim started by earlier code keeps its path.
  const fast = input.systemDisk && patched(CLAIM_PATCHES.fastPath);
  const nameLocked = fast || (input.systemDisk && patched(CLAIM_PATCHES.nameLock));
  const local = fast || patched(CLAIM_PATCHES.localSteps);
  const steps = local ? localDb : db;
  try {
    let image: CurrentImage | null = null;
    if (fast) {
      const pool = await fromPool(run);
      if ('delivery' in pool) return await settleDelivery(run, pool);
      image = pool.image;
    } else if (input.systemDisk) {
      const earlier = await earlierPoolPath(run, nameLocked, local);
      if ('result' in earlier) return earlier.result;
      image = earlier.image;
    }
    return await plainCreation(run, image, fast);
  } catch (err) {
    run.failure = failureReason(err); // a waiting `delivered` update fails with the claim
    throw err;
  } finally {
    if (nameLocked && !run.nameReleased) {
      // Even when the claim failed or was cancelled: the next claim for this name may go.
      // (A hand-off that delivered, with nothing left to do, has released it already.)
      await CancellationScope.nonCancellable(() => steps.releaseClaimName(run.target));
    }
  }
}

/** The status query, and the `delivered` update answered once the claim has its volume. */
function installHandlers(run: ClaimRun): void {
  setHandler(claimStatusQuery, () => run.status);
  setHandler(
    claimDeliveredUpdate,
    async () => {
      await condition(() => run.answer !== undefined || run.failure !== undefined);
      if (run.answer) return run.answer;
      throw ApplicationFailure.nonRetryable(run.failure as string, CLAIM_FAILURES.claimFailed);
    },
    {
      validator: ({ bodyHash }) => {
        if (bodyHash !== workflowInfo().memo?.bodyHash)
          throw ApplicationFailure.nonRetryable(
            `requestId ${run.input.requestId} was already used with a different body`,
            CLAIM_FAILURES.bodyMismatch,
          );
      },
    },
  );
}

/** Where a fast-path system disk stands after the pool: delivered, or to create. */
type PoolAnswer = { delivery: Delivery; reserved: ReservedVolume } | { image: CurrentImage };

/**
 * The pool side of a system disk claim (patch claim-fast-path): the name lock and the
 * reservation are local steps, the hand-off with its lookup is one activity (a local one since
 * patch claim-local-handoff, so a pool hit is answered in the claim's first workflow task). A
 * failed hand-off is compensated — the volume goes back to the pool (or is finished, if the
 * accept took effect after all) — and leaves the claim to plain creation, which looks the name
 * up first.
 */
async function fromPool(run: ClaimRun): Promise<PoolAnswer> {
  const { input, target, status } = run;
  run.step('reserve');
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
  if (!reserved) {
    status.fallbackReason = first.declined ?? 'pool empty';
    return { image };
  }
  run.step('transfer');
  try {
    // `settle`: the row and the refill request ride on the hand-off, so the claim ends with its
    // answer. No patch needed: whether it happened is in the activity's recorded result.
    const mover = patched(CLAIM_PATCHES.localHandOff) ? localHandoff : handoff;
    const delivery = await mover.deliverPoolVolume({ target, reserved, settle: true });
    return { delivery, reserved };
  } catch (err) {
    status.fallbackReason = `hand-off failed: ${failureReason(err)}`;
    run.step('compensate');
    if ((await call.returnToPool({ claimId: target.claimId, reserved })) === 'accepted') {
      status.fallbackReason = null;
      run.step('finish');
      const done = await handoff.finishHandOff({ target, reserved, extend: false });
      return { delivery: { existing: false, ...done }, reserved };
    }
    return { image };
  }
}

/**
 * The pool volume is the tenant's (or the name existed already): grow it if a larger size was
 * asked, answer. A hand-off scheduled by earlier code (or finished by the compensation) left the
 * row: it is dropped, and a refill asked for, after the answer is out.
 */
async function settleDelivery(
  run: ClaimRun,
  { delivery, reserved }: { delivery: Delivery; reserved: ReservedVolume },
): Promise<ClaimResult> {
  const { target } = run;
  run.mark('delivered');
  // No patch needed: a hand-off scheduled by earlier code returns no such flag (release below).
  run.nameReleased = delivery.nameReleased === true;
  if (delivery.existing && delivery.settled) return run.done(delivery.volumeId, 'existing');
  if (delivery.existing) {
    await localDb.settleReservation({
      claimId: target.claimId,
      rowId: reserved.rowId,
      delivered: false,
    });
    return run.done(delivery.volumeId, 'existing');
  }
  if (mustGrow(target.sizeGb, delivery.sizeGb)) {
    run.step('extend');
    const grown = await extend.extendTenantVolume({ target, volumeId: delivery.volumeId });
    run.extendError = grown.extendError;
    run.mark('extended');
  }
  const result = run.done(delivery.volumeId, 'pool');
  if (delivery.settled) return result;
  // Settled apart (claims whose hand-off was scheduled by earlier code, or finished by the
  // compensation): the answer is out with this workflow task, the row and the refill follow.
  if (patched(CLAIM_PATCHES.settleRefills)) {
    await db.settleReservation({
      claimId: target.claimId,
      rowId: reserved.rowId,
      delivered: true,
      refill: true,
    });
  } else {
    await Promise.all([
      db.settleReservation({ claimId: target.claimId, rowId: reserved.rowId, delivered: true }),
      call.triggerRefill(),
    ]);
  }
  return result;
}

/**
 * Plain creation from the OS snapshot (or a data disk), waiting until `available` under a
 * deadline fixed once. On the fast path the create's own list call is the name lookup.
 */
async function plainCreation(
  run: ClaimRun,
  image: CurrentImage | null,
  fast: boolean,
): Promise<ClaimResult> {
  const { input, target } = run;
  run.step('create');
  const timeoutMs = input.createTimeoutMs ?? 30 * 60_000;
  const bounded = patched(CLAIM_PATCHES.createDeadline);
  // Fixed once, before the create: no retry of any step restarts the clock.
  const deadlineAt = bounded ? Date.now() + timeoutMs : undefined;
  const created = await handoff.createTenantVolume({ target, image, orExisting: fast });
  if (created.existing) {
    run.mark('lookup');
    run.status.fallbackReason = null;
    return run.done(created.volumeId, 'existing');
  }
  run.mark('createRequested');
  run.step('wait-available');
  const waiter = bounded
    ? proxyActivities<Activities>({
        ...PROFILES.poolAwait,
        // The whole wait, retries included, ends shortly after the deadline.
        scheduleToCloseTimeout: timeoutMs + 5 * 60_000,
      })
    : wait;
  await waiter.awaitTenantVolume({ target, volumeId: created.volumeId, timeoutMs, deadlineAt });
  run.mark('available');
  return run.done(created.volumeId, 'created');
}

/**
 * The pool path of claims started before patch claim-fast-path (kept so they replay): lookup
 * under the name lock, image, reserve, hand-off, compensation, finish; or the image to create
 * from.
 */
async function earlierPoolPath(
  run: ClaimRun,
  nameLocked: boolean,
  local: boolean,
): Promise<{ result: ClaimResult } | { image: CurrentImage }> {
  const { input, target, status } = run;
  const steps = local ? localDb : db;
  const refill = local ? localDb : call;
  run.step('lookup');
  const existing = nameLocked ? await names.claimName(target) : await call.findTenantVolume(target);
  run.mark('lookup');
  if (existing) return { result: run.done(existing.volumeId, 'existing') };

  const image =
    (await steps.currentImage({ os: input.os as string, volumeType: input.volumeType })) ??
    (await imageFromCinder(input.os as string, input.volumeType));

  run.step('reserve');
  const reserved: ReservedVolume | null = await steps.reservePoolVolume({
    claimId: target.claimId,
    os: input.os as string,
    volumeType: input.volumeType,
    snapshotId: image.snapshotId,
  });
  run.mark('reserve');
  if (!reserved) {
    status.fallbackReason = 'pool empty';
    return { image };
  }
  try {
    run.step('transfer');
    await handoff.handOff({ target, reserved });
    run.mark('accepted');
  } catch (err) {
    // The hand-off failed for good: never lose the volume, then fall back, unless the volume
    // turns out to be the tenant's after all (an accept whose reply was lost).
    status.fallbackReason = `hand-off failed: ${failureReason(err)}`;
    run.step('compensate');
    const back = await call.returnToPool({ claimId: target.claimId, reserved });
    if (back !== 'accepted') return { image };
    status.fallbackReason = null;
  }
  // Accepted: the volume is the tenant's now. Finishing is retried; it never falls back (that
  // would give the tenant a second volume of the same name).
  run.step('finish');
  const extendStep = patched(CLAIM_PATCHES.extendStep);
  // The refill starts alongside: the reserved row already does not count as stock.
  const [finished] = await Promise.all([
    handoff.finishHandOff({ target, reserved, extend: !extendStep }),
    refill.triggerRefill(),
  ]);
  run.mark('finished');
  if (extendStep && mustGrow(target.sizeGb, finished.sizeGb)) {
    run.step('extend');
    const grown = await extend.extendTenantVolume({ target, volumeId: finished.volumeId });
    run.extendError = grown.extendError;
    run.mark('extended');
  }
  return { result: run.done(finished.volumeId, 'pool') };
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
