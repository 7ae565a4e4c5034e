/**
 * The fill's and the maintenance jobs' contract: inputs, progress and results, the queries, the
 * ids of one-off runs. Imported by workflows, the CLI and tests: no Node built-ins here.
 * (Both progress queries are named `progress`, as in histories already recorded; each has its
 * own typed definition.)
 */
import { defineQuery } from '@temporalio/workflow';
import type { ReconcileResult } from '../activities/fill/reconcile';

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
  skipped: { os: string; type: string; reason: string }[];
  errors: string[];
  reconcile: ReconcileResult | null;
  perPool: Record<string, { planned: number; available: number; failed: number }>;
  /** The target of each pool this run filled to, and why (runs of older code: absent). */
  targets?: { type: string; os: string; floor: number; target: number; why: string }[];
}

/** A running fill's progress (also its result). */
export const fillProgressQuery = defineQuery<FillProgress>('progress');

export interface DrainInput {
  os?: string;
  type?: string;
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

/** The one sync-os run at a time (the CLI starts it; a second start joins it). */
export const syncOsWorkflowId = (schedulePrefix: string) => `${schedulePrefix}-sync-os`;
