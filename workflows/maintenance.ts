/**
 * The other pool jobs: the status check (the seed's check_volume_state, on its own Schedule),
 * sync-os (the seed's manual step), reconcile, and an operator's drain.
 */
import { condition, proxyActivities, setHandler } from '@temporalio/workflow';
import {
  drainProgressQuery,
  type CheckResult,
  type DrainInput,
  type DrainProgress,
  type ReconcileResult,
  type ResolveResult,
} from '../contracts/fill';
import type { Activities } from '../activities';
import { PROFILES } from './profiles';
import { failureMessage } from './failures';

const call = proxyActivities<Activities>(PROFILES.cinderCall);
const scan = proxyActivities<Activities>(PROFILES.cinderScan);
const db = proxyActivities<Activities>(PROFILES.database);

export async function checkPoolStateWorkflow(): Promise<CheckResult> {
  const result = await scan.checkPoolState();
  await db.recordRun({ kind: 'check', summary: result, finished: true });
  return result;
}

/** Rebuilds the OS table from Cinder's snapshots: what the seed's administrator ran after updating images. */
export async function syncOsWorkflow(): Promise<ResolveResult> {
  const result = await call.resolveImages({ replaceAll: true });
  await db.recordRun({
    kind: 'sync-os',
    summary: { images: result.images.length, skipped: result.skipped },
    finished: true,
  });
  return result;
}

export async function reconcileWorkflow(): Promise<ReconcileResult> {
  const result = await scan.reconcile();
  await db.recordRun({ kind: 'reconcile', summary: result, finished: true });
  return result;
}

/** Deletes idle stock (`available` rows only: reserved volumes belong to claims) with bounded parallelism. */
export async function drainPoolWorkflow(input: DrainInput = {}): Promise<DrainProgress> {
  const ids = await db.listDrainable({
    os: input.os,
    type: input.type,
    ...(input.zone !== undefined ? { zone: input.zone } : {}),
    staleOnly: input.staleOnly,
  });
  const progress: DrainProgress = { total: ids.length, drained: 0, skipped: 0 };
  setHandler(drainProgressQuery, () => progress);
  const limit = Math.max(1, input.concurrency ?? 4);
  let inFlight = 0;
  const tasks: Promise<void>[] = [];
  for (const id of ids) {
    await condition(() => inFlight < limit);
    inFlight++;
    tasks.push(
      scan
        .drainPoolVolume(id)
        .then((done) => (done ? progress.drained++ : progress.skipped++))
        // Handled here, not at Promise.all: one failed delete must not stop the others.
        .catch((err: unknown) => {
          progress.failed = (progress.failed ?? 0) + 1;
          (progress.errors ??= []).push(`row ${id}: ${failureMessage(err)}`);
        })
        .then(() => undefined)
        .finally(() => inFlight--),
    );
  }
  await Promise.all(tasks);
  await db.recordRun({ kind: 'drain', summary: { ...input, ...progress }, finished: true });
  return progress;
}
