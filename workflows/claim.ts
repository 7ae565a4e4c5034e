/**
 * The claim (create_volume_if_absent) as a durable workflow, id `claim-<requestId>`, read as
 * named steps:
 *   fromPool       reserve (name lock + image + row), deliver (the fenced hand-off: lookup ‖
 *                  transfer, accept, rename, the row delivered, a refill asked for, the name
 *                  lock released); a failed hand-off is compensated under the same fence
 *   delivered      grow the volume if a larger size was asked, answer
 *   plainCreation  create from the OS snapshot (its list call is the name lookup) and wait
 * Not a system disk → plainCreation only. One path, no patches: workers are versioned and the
 * claim is pinned to the build it started on (docs/upgrading.md).
 * Outcome, project, OS and type are search attributes: every claim is findable in the Web UI.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  blockDeviceMapping,
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
} from '../contracts/claim';
import { LOCAL_PROFILES, PROFILES } from './profiles';
import { failureReason, failureType } from './failures';

const call = proxyActivities<Activities>(PROFILES.cinderCall);
const handoff = proxyActivities<Activities>(PROFILES.claimHandOff);
const finish = proxyActivities<Activities>(PROFILES.claimFinish);
const extend = proxyActivities<Activities>(PROFILES.tenantExtend);
const localDb = proxyLocalActivities<Activities>(LOCAL_PROFILES.database);
const localNames = proxyLocalActivities<Activities>(LOCAL_PROFILES.claimNameLock);
const localHandoff = proxyLocalActivities<Activities>(LOCAL_PROFILES.claimHandOff);

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
  /** The name lock is released (by the hand-off, when nothing was left to do). */
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
      ...(input.zone ? { zone: input.zone } : {}),
    };
  }

  step(name: string): void {
    this.status.step = name;
  }

  mark(event: string): void {
    this.timingsMs[event] = Date.now() - this.started;
  }

  /**
   * The claim's result; also the `delivered` update's answer from now on. `zone`: where Cinder
   * says the volume is (a volume found by name may be elsewhere); else the claim's own zone.
   */
  done(volumeId: string, outcome: ClaimOutcome, zone?: string): ClaimResult {
    Object.assign(this.status, { step: 'done', outcome, volumeId });
    upsertSearchAttributes({ PoolOutcome: [outcome] });
    this.mark('total');
    const availabilityZone = zone || this.input.zone;
    const result: ClaimResult = {
      volumeId,
      outcome,
      fallbackReason: this.status.fallbackReason,
      timingsMs: this.timingsMs,
      ...(availabilityZone ? { availabilityZone } : {}),
      blockDeviceMapping: blockDeviceMapping(
        volumeId,
        this.input.systemDisk,
        this.input.deleteOnTermination,
      ),
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
    ...(input.zone ? { PoolZone: [input.zone] } : {}),
  });
  try {
    let image: CurrentImage | null = null;
    if (input.systemDisk) {
      const pool = await fromPool(run);
      if ('delivery' in pool) return await delivered(run, pool.delivery);
      image = pool.image;
    }
    return await plainCreation(run, image);
  } catch (err) {
    run.failure = failureReason(err); // a waiting `delivered` update fails with the claim
    throw err;
  } finally {
    if (input.systemDisk && !run.nameReleased) {
      // Even when the claim failed or was cancelled: the next claim for this name may go.
      await CancellationScope.nonCancellable(() => localDb.releaseClaimName(run.target));
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

/** Where a system disk stands after the pool: delivered, or to create from this image. */
type PoolAnswer = { delivery: Delivery } | { image: CurrentImage };

/**
 * The pool side of a system disk claim, all local activities: a pool hit is answered in the
 * claim's first workflow task. A failed hand-off is compensated under the row's fence: the volume
 * goes back to the pool (or is quarantined), or, if the accept took effect after all, the
 * delivery is finished; else the claim falls back to plain creation, which looks the name up
 * first.
 */
async function fromPool(run: ClaimRun): Promise<PoolAnswer> {
  const { input, target, status } = run;
  run.step('reserve');
  const os = input.os as string;
  // Lock, image and reservation in one local step: one pass through the worker, no round trip.
  const first = await localNames.reserveForClaim(target);
  // The zone the reserve step served (a claim without one: the worker's default zone).
  const zone = first.zone ?? input.zone ?? '';
  const image = first.image ?? (await imageFromCinder(os, input.volumeType, zone));
  const reserved = first.image
    ? first.reserved
    : await localDb.reservePoolVolume({
        claimId: target.claimId,
        os,
        volumeType: input.volumeType,
        ...(zone ? { zone } : {}),
        snapshotId: image.snapshotId,
      });
  if (!reserved) {
    status.fallbackReason = first.declined ?? 'pool empty';
    return { image };
  }
  run.step('transfer');
  try {
    return { delivery: await localHandoff.deliverPoolVolume({ target, reserved }) };
  } catch (err) {
    // Another run of this hand-off (a re-run of a timed-out task) took the row: it goes on
    // from where that one got, taking the row anew, or finds what it did.
    if (failureType(err) === CLAIM_FAILURES.handOffSuperseded) {
      return { delivery: await finish.deliverPoolVolume({ target, reserved }) };
    }
    status.fallbackReason = `hand-off failed: ${failureReason(err)}`;
    run.step('compensate');
    if ((await call.returnToPool({ target, reserved })) !== 'accepted') return { image };
    status.fallbackReason = null;
    run.step('finish');
    // The row is `accepted` now: the hand-off resumes there (rename, delivered).
    return { delivery: await finish.deliverPoolVolume({ target, reserved }) };
  }
}

/** The pool volume is the tenant's (or the name existed already): grow it if asked, answer. */
async function delivered(run: ClaimRun, delivery: Delivery): Promise<ClaimResult> {
  run.mark('delivered');
  run.nameReleased = delivery.nameReleased;
  if (delivery.existing) return existing(run, delivery.volumeId, delivery.zone);
  if (mustGrow(run.target.sizeGb, delivery.sizeGb)) {
    run.step('extend');
    const grown = await extend.extendTenantVolume({
      target: run.target,
      volumeId: delivery.volumeId,
    });
    run.extendError = grown.extendError;
    run.mark('extended');
  }
  return run.done(delivery.volumeId, 'pool', delivery.zone);
}

/**
 * Plain creation from the OS snapshot (or a data disk), waiting until `available` under a
 * deadline fixed once, before the create: no retry of any step restarts the clock. The
 * create's own list call is the name lookup.
 */
async function plainCreation(run: ClaimRun, image: CurrentImage | null): Promise<ClaimResult> {
  const { input, target } = run;
  run.step('create');
  const timeoutMs = input.createTimeoutMs ?? 30 * 60_000;
  const deadlineAt = Date.now() + timeoutMs;
  const created = await handoff.createTenantVolume({ target, image });
  if (created.existing) {
    run.mark('lookup');
    run.status.fallbackReason = null;
    return existing(run, created.volumeId, created.zone);
  }
  run.mark('createRequested');
  run.step('wait-available');
  const waiter = proxyActivities<Activities>({
    ...PROFILES.poolAwait,
    // The whole wait, retries included, ends shortly after the deadline.
    scheduleToCloseTimeout: timeoutMs + 5 * 60_000,
  });
  await waiter.awaitTenantVolume({ target, volumeId: created.volumeId, deadlineAt });
  run.mark('available');
  return run.done(created.volumeId, 'created', created.zone);
}

/**
 * The tenant has a volume of that name already: it is the answer (a claim is idempotent by
 * name), unless it lies in another zone than the claim asks, where Nova would refuse to boot it.
 */
function existing(run: ClaimRun, volumeId: string, zone?: string): ClaimResult {
  const asked = run.input.zone;
  if (asked && zone && zone !== asked)
    throw ApplicationFailure.nonRetryable(
      `the tenant's volume ${JSON.stringify(run.input.name)} (${volumeId}) is in zone ${zone}, not ${asked}`,
      CLAIM_FAILURES.zoneMismatch,
    );
  return run.done(volumeId, 'existing', zone);
}

/** No fill has run yet (a fresh install): the OS's image in the zone straight from Cinder. */
async function imageFromCinder(
  os: string,
  volumeType: string,
  zone: string,
): Promise<CurrentImage> {
  const resolved = await call.resolveImages({});
  const img = resolved.images.find(
    (i) => i.os === os && i.type === volumeType && (i.zone ?? '') === zone,
  );
  if (!img)
    throw ApplicationFailure.nonRetryable(
      `no current image for ${volumeType}/${os}${zone ? ` in zone ${zone}` : ''}`,
      CLAIM_FAILURES.unknownImage,
    );
  return { snapshotId: img.snapshotId, volumeType: img.volumeType, sizeGb: img.sizeGb };
}
