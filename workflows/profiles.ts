/**
 * Named activity timeout and retry profiles. Each says why it is what it is; workflows pick one
 * by name instead of scattering numbers.
 */
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';
import { CINDER_FAILURES, CONFIG_ERROR } from '../contracts/cinder';
import { CLAIM_FAILURES } from '../contracts/claim';

/** Errors that repeating cannot fix: bad input, missing things, refused permissions. */
export const PERMANENT_CINDER_ERRORS: string[] = [
  CINDER_FAILURES.badRequest,
  CINDER_FAILURES.notFound,
  CINDER_FAILURES.forbidden,
  CINDER_FAILURES.unauthorized,
  CONFIG_ERROR,
];

export const PROFILES = {
  /** One short Cinder API call: answers in well under a second; retried with backoff for 5 min. */
  cinderCall: {
    startToCloseTimeout: '30 seconds',
    scheduleToCloseTimeout: '5 minutes',
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      nonRetryableErrorTypes: PERMANENT_CINDER_ERRORS,
    },
  },
  /**
   * One pool volume create: may wait for its rate-limit slot (heartbeating) before the POST.
   * Over quota is not retried here: the fill stops creating and records why.
   */
  poolCreate: {
    startToCloseTimeout: '30 minutes',
    // Short, so that the create of a crashed worker is retried elsewhere within seconds.
    heartbeatTimeout: '15 seconds',
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      maximumAttempts: 10,
      nonRetryableErrorTypes: [...PERMANENT_CINDER_ERRORS, CINDER_FAILURES.overLimit],
    },
  },
  /** Watching a volume in `creating` (Ceph flatten can take minutes); the activity enforces the
   * configured creating timeout itself, this is only the outer bound. */
  poolAwait: {
    startToCloseTimeout: '3 hours',
    // Never retried forever: a claim overrides it with its own deadline.
    scheduleToCloseTimeout: '4 hours',
    heartbeatTimeout: '15 seconds',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute' },
  },
  /** A pass over every pool volume (one list, then per-row fixes). */
  cinderScan: {
    startToCloseTimeout: '10 minutes',
    retry: {
      initialInterval: '2 seconds',
      backoffCoefficient: 2,
      maximumInterval: '1 minute',
      maximumAttempts: 5,
      nonRetryableErrorTypes: PERMANENT_CINDER_ERRORS,
    },
  },
  /** A claim's Cinder step: the hand-off (lookup, transfer, accept, rename), or plain creation. */
  claimHandOff: {
    startToCloseTimeout: '2 minutes',
    // Heartbeats between Cinder calls: a crashed worker's step is retried within seconds.
    heartbeatTimeout: '20 seconds',
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '20 seconds',
      // A twin attempt that still runs (StepBusy) is waited out within these attempts.
      maximumAttempts: 8,
      nonRetryableErrorTypes: [
        ...PERMANENT_CINDER_ERRORS,
        CLAIM_FAILURES.acceptRefused,
        CLAIM_FAILURES.poolVolumeGone,
        CLAIM_FAILURES.poolVolumeUnusable,
        CLAIM_FAILURES.reservationLost,
        CLAIM_FAILURES.handOffSuperseded,
        CLAIM_FAILURES.tenantOverQuota,
        CLAIM_FAILURES.poolOverQuota,
        CLAIM_FAILURES.badClaim,
        CLAIM_FAILURES.volumeFailed,
      ],
    },
  },
  /**
   * Finishing an accepted hand-off (rename, delivered): the volume is the tenant's already, so
   * it is never given up: retried until the claim's bound, a superseded attempt included (the
   * retry takes the row anew at `accepted`).
   */
  claimFinish: {
    startToCloseTimeout: '2 minutes',
    scheduleToCloseTimeout: '30 minutes',
    heartbeatTimeout: '20 seconds',
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      nonRetryableErrorTypes: [...PERMANENT_CINDER_ERRORS, CLAIM_FAILURES.reservationLost],
    },
  },
  /**
   * Taking the (project, name) lock of a claim: retried every few seconds while another claim
   * for the same name runs (NameBusy); bounded by the longest a claim may take.
   */
  claimNameLock: {
    startToCloseTimeout: '30 seconds',
    scheduleToCloseTimeout: '40 minutes',
    retry: {
      initialInterval: '500 milliseconds',
      backoffCoefficient: 1.5,
      maximumInterval: '5 seconds',
      nonRetryableErrorTypes: PERMANENT_CINDER_ERRORS,
    },
  },
  /** Growing a delivered volume: Cinder's extend may take minutes; heartbeats meanwhile. */
  tenantExtend: {
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: '15 seconds',
    retry: {
      initialInterval: '1 second',
      backoffCoefficient: 2,
      maximumInterval: '30 seconds',
      maximumAttempts: 5,
      nonRetryableErrorTypes: PERMANENT_CINDER_ERRORS,
    },
  },
  /** A database statement: PostgreSQL restarts are ridden out for a while. */
  database: {
    startToCloseTimeout: '15 seconds',
    scheduleToCloseTimeout: '10 minutes',
    retry: {
      initialInterval: '500 milliseconds',
      backoffCoefficient: 2,
      maximumInterval: '15 seconds',
    },
  },
} satisfies Record<string, ActivityOptions>;

/**
 * Short database steps of a claim as local activities: no round trip through the server each.
 * They run again if the workflow task fails, so each one is idempotent (a read, a reservation
 * keyed by the claim, a lock release keyed by the claim, a coalesced refill request).
 */
export const LOCAL_PROFILES = {
  database: {
    startToCloseTimeout: '15 seconds',
    scheduleToCloseTimeout: '10 minutes',
    // Longer backoffs become durable timers instead of retries inside one workflow task.
    localRetryThreshold: '10 seconds',
    retry: {
      initialInterval: '200 milliseconds',
      backoffCoefficient: 2,
      maximumInterval: '15 seconds',
    },
  },
  /**
   * A pool hit's hand-off (transfer, accept, rename, delivered) inside the claim's first workflow
   * task: no round trip through the server. A re-run (a retry, a worker crash, a workflow task
   * that timed out) takes the row under a new epoch and resumes from the row's state.
   */
  claimHandOff: {
    startToCloseTimeout: PROFILES.claimHandOff.startToCloseTimeout,
    // Backoffs longer than this become durable timers (a twin attempt waited out, StepBusy).
    localRetryThreshold: '5 seconds',
    retry: PROFILES.claimHandOff.retry,
  },
  /** The (project, name) lock, locally: waits (as timers) while another claim holds the name. */
  claimNameLock: {
    startToCloseTimeout: '30 seconds',
    scheduleToCloseTimeout: '40 minutes',
    localRetryThreshold: '2 seconds',
    retry: {
      initialInterval: '200 milliseconds',
      backoffCoefficient: 1.5,
      maximumInterval: '5 seconds',
      nonRetryableErrorTypes: PERMANENT_CINDER_ERRORS,
    },
  },
} satisfies Record<string, LocalActivityOptions>;
