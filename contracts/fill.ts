/**
 * The fill's and the maintenance jobs' contract: the workflow type names and the schedule ids,
 * inputs, the plan and its create orders, progress and results, the queries, the ids of one-off
 * runs. Imported by workflows, activities, the CLI and tests: no Node built-ins here, and nothing
 * of the activities or the configuration.
 * (Both progress queries are named `progress`, as in histories already recorded; each has its
 * own typed definition.)
 */
import { defineQuery } from '@temporalio/workflow';

/**
 * The workflow types, by name: what schedules and clients start without importing the workflow
 * code (workflows/ exports a function of each name; a unit test checks it).
 */
export const FILL_WORKFLOWS = {
  fill: 'fillPoolWorkflow',
  check: 'checkPoolStateWorkflow',
  syncOs: 'syncOsWorkflow',
  reconcile: 'reconcileWorkflow',
  drain: 'drainPoolWorkflow',
} as const;

/** The pool's Temporal Schedules: the fill and the status check (also their workflow ids). */
export const scheduleIds = (schedulePrefix: string) => ({
  fill: `${schedulePrefix}-fill`,
  check: `${schedulePrefix}-check`,
});

/** The one sync-os run at a time (the CLI starts it; a second start joins it). */
export const syncOsWorkflowId = (schedulePrefix: string) => `${schedulePrefix}-sync-os`;

/**
 * An OS resolved to its newest snapshot in one zone, with the real Cinder type of its source
 * volume. `zone` is the snapshot's availability zone ('' when the pool names no zones).
 */
export interface ResolvedImage {
  os: string;
  type: string;
  zone: string;
  snapshotId: string;
  snapshotName: string;
  version: string;
  volumeType: string;
  sizeGb: number;
}

export interface ResolveResult {
  images: ResolvedImage[];
  skipped: { os: string; type: string; zone?: string; reason: string }[];
  /** (os, type, zone) whose current snapshot changed in this call: their older stock is now stale. */
  changed: { os: string; type: string; zone?: string; from: string | null; to: string }[];
}

/** Volumes to create for one (type, OS, zone) from its current snapshot. */
export interface CreateOrder {
  os: string;
  type: string;
  /** Absent in plans of older builds: no zone (''). */
  zone?: string;
  snapshotId: string;
  volumeType: string;
  sizeGb: number;
  missing: number;
}

/** Why a pool is filled to its target: shown to operators, never a command. */
export interface PlannedTarget {
  type: string;
  os: string;
  zone?: string;
  floor: number;
  target: number;
  why: string;
}

export interface FillPlan {
  orders: CreateOrder[];
  /** Pool row ids of `available` stock to drain now: stale, above target, idle too long. */
  drain: number[];
  staleTotal: number;
  /** Current stock above target (e.g. a volume back in the pool after a refused accept). */
  excessTotal?: number;
  /** Idle stock recycled this run (drained, and replaced by this run's orders). */
  recycled?: number;
  /** The targets this run filled to, and why (floor, demand, cap, quota). */
  targets?: PlannedTarget[];
  settings: {
    concurrency: number;
    createIntervalSeconds: number;
    drainPerRun: number;
    namePrefix: string;
  };
}

/** One pool volume to create (its name is the create's idempotency key). */
export interface CreatePoolVolumeInput {
  name: string;
  os: string;
  type: string;
  /** The zone the volume is made in (its snapshot's); absent or '': Cinder's default. */
  zone?: string;
  snapshotId: string;
  volumeType: string;
  sizeGb: number;
}

/** How watching a created pool volume ended: only `available` is stock. */
export type AwaitOutcome = 'available' | 'failed' | 'timeout' | 'vanished';

export interface CheckResult {
  releasedOrphans: number;
  madeAvailable: number;
  removedFailed: number;
  removedTimedOut: number;
  removedVanished: number;
  stillCreating: number;
  /** Rows left `deleting` by a drain that died or failed, or flagged, deleted this pass. */
  retriedDeletes?: number;
  /** Rows whose volume Cinder refuses to delete (kept out of stock, retried every pass). */
  flagged?: number;
  /** Rows skipped because Cinder did not answer about their volume (never taken as vanished). */
  unreachable?: number;
  /** Rows of the tables that only grow deleted past their retention (claim_log, claim_demand). */
  pruned?: { claimLog: number; claimDemand: number };
}

export interface ReconcileResult {
  pass: number;
  tagged: number;
  unknownSeenOnce: number;
  adopted: string[];
  deletedLeaks: string[];
  /** Leaks Cinder refused to delete: kept sighted, tried again next pass. */
  undeletableLeaks?: string[];
  rowsWithoutVolume: number;
}

export interface FillInput {
  /** Why this run started (schedule, a claim's refill request, an operator). */
  reason?: string;
}

export interface FillProgress {
  phase: 'starting' | 'reconciling' | 'resolving' | 'planning' | 'filling' | 'done';
  reason: string;
  planned: number;
  requested: number;
  available: number;
  failed: number;
  inFlight: number;
  drained: number;
  staleTotal: number;
  /** Why creating stopped early (e.g. the project's quota), else null. */
  stoppedBy: string | null;
  skipped: { os: string; type: string; zone?: string; reason: string }[];
  errors: string[];
  reconcile: ReconcileResult | null;
  perPool: Record<string, { planned: number; available: number; failed: number }>;
  /** The target of each pool this run filled to, and why (runs of older code: absent). */
  targets?: PlannedTarget[];
}

/** A running fill's progress (also its result). */
export const fillProgressQuery = defineQuery<FillProgress>('progress');

export interface DrainInput {
  os?: string;
  type?: string;
  /** One zone's stock only. */
  zone?: string;
  /** Only stock made from an older snapshot. */
  staleOnly?: boolean;
  /** Deletions in flight at once. */
  concurrency?: number;
}

export interface DrainProgress {
  total: number;
  drained: number;
  skipped: number;
  /** Deletes that failed (the row stays `deleting` or is flagged; the status check retries). */
  failed?: number;
  errors?: string[];
}

/** A running drain's progress (also its result). */
export const drainProgressQuery = defineQuery<DrainProgress>('progress');
