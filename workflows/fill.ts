/**
 * The fill (the seed's backup_volume), started by the fill Schedule: reconcile leaks, resolve
 * each OS to its newest snapshot, plan, then create what is missing, at most `concurrency`
 * volumes in flight (from the create until the volume leaves `creating`), each creation spaced by
 * the global rate limit, round-robin across (type, OS) so every pool gets stock early. Stale
 * stock (older image) is drained at a bounded rate meanwhile. Over quota stops creating for this
 * run and records why; the next run tries again.
 */
import { condition, proxyActivities, setHandler, uuid4 } from '@temporalio/workflow';
import {
  fillProgressQuery,
  type CreateOrder,
  type FillInput,
  type FillPlan,
  type FillProgress,
} from '../contracts/fill';
import { CINDER_FAILURES } from '../contracts/cinder';
import type { Activities } from '../activities';
import { poolVolumeName } from '../lib/pool-state/naming';
import { PROFILES } from './profiles';
import { failureMessage, failureType } from './failures';

const call = proxyActivities<Activities>(PROFILES.cinderCall);
const create = proxyActivities<Activities>(PROFILES.poolCreate);
const watch = proxyActivities<Activities>(PROFILES.poolAwait);
const scan = proxyActivities<Activities>(PROFILES.cinderScan);
const db = proxyActivities<Activities>(PROFILES.database);

/** Orders round-robin: one of each (type, OS) in turn, the emptiest pools first. */
export function interleave(orders: CreateOrder[]): CreateOrder[] {
  const left = orders.map((o) => ({ o, n: o.missing })).sort((a, b) => b.n - a.n);
  const out: CreateOrder[] = [];
  while (left.some((x) => x.n > 0)) {
    for (const x of left) {
      if (x.n > 0) {
        out.push(x.o);
        x.n--;
      }
    }
  }
  return out;
}

export async function fillPoolWorkflow(input: FillInput = {}): Promise<FillProgress> {
  const p = newProgress(input.reason ?? 'schedule');
  setHandler(fillProgressQuery, () => p);
  await db.recordRun({ kind: 'fill', summary: p });
  const plan = await makePlan(p);
  p.phase = 'filling';
  const drains = drainStale(p, plan);
  await createMissing(p, plan);
  await Promise.all(drains);
  p.phase = 'done';
  p.errors = p.errors.slice(-20); // keep the record readable
  await db.recordRun({ kind: 'fill', summary: p, finished: true });
  return p;
}

function newProgress(reason: string): FillProgress {
  return {
    phase: 'starting',
    reason,
    planned: 0,
    requested: 0,
    available: 0,
    failed: 0,
    inFlight: 0,
    drained: 0,
    staleTotal: 0,
    stoppedBy: null,
    skipped: [],
    errors: [],
    reconcile: null,
    perPool: {},
  };
}

/** Reconcile leaks, resolve each OS to its newest snapshot, and plan what to create and drain. */
async function makePlan(p: FillProgress): Promise<FillPlan> {
  p.phase = 'reconciling';
  p.reconcile = await scan.reconcile();
  p.phase = 'resolving';
  const resolved = await call.resolveImages({});
  p.skipped = resolved.skipped;
  p.phase = 'planning';
  const plan = await db.planFill(resolved.images);
  p.staleTotal = plan.staleTotal;
  // What each pool is filled to and why (floor, demand, cap, quota): shown, never a command.
  if (plan.targets) p.targets = plan.targets;
  for (const o of plan.orders) {
    p.planned += o.missing;
    p.perPool[poolKey(o)] = { planned: o.missing, available: 0, failed: 0 };
  }
  return plan;
}

/** A pool's key in the progress: type/OS, and @zone when the pool names zones. */
const poolKey = (o: CreateOrder) => `${o.type}/${o.os}${o.zone ? `@${o.zone}` : ''}`;

/**
 * Drains stale stock alongside the creates. Each drain handles its own failure where it is made:
 * a rejection left unhandled while the create loop waits would fail the workflow task on every
 * replay and wedge the fill for good. A row whose delete failed stays `deleting`; the status
 * check retries it later.
 */
function drainStale(p: FillProgress, plan: FillPlan): Promise<void>[] {
  return plan.drain.map(async (rowId) => {
    try {
      if (await scan.drainPoolVolume(rowId)) p.drained++;
    } catch (err) {
      p.errors.push(`drain of row ${rowId}: ${failureMessage(err)}`);
    }
  });
}

/** Creates what is missing, round-robin, at most `concurrency` in flight; quota stops it. */
async function createMissing(p: FillProgress, plan: FillPlan): Promise<void> {
  let inFlight = 0;
  const tasks: Promise<void>[] = [];
  for (const order of interleave(plan.orders)) {
    await condition(() => inFlight < plan.settings.concurrency || p.stoppedBy !== null);
    if (p.stoppedBy !== null) break;
    inFlight++;
    p.inFlight = inFlight;
    tasks.push(
      createOne(p, plan, order).finally(() => {
        inFlight--;
        p.inFlight = inFlight;
      }),
    );
  }
  await Promise.all(tasks);
}

/** One pool volume: create, then watch it until it is available (or removed). */
async function createOne(p: FillProgress, plan: FillPlan, o: CreateOrder): Promise<void> {
  const pool = p.perPool[poolKey(o)] as FillProgress['perPool'][string];
  try {
    const name = poolVolumeName(
      plan.settings.namePrefix,
      o.type,
      o.os,
      uuid4().slice(0, 13),
      o.zone,
    );
    const created = await create.createPoolVolume({
      name,
      os: o.os,
      type: o.type,
      ...(o.zone ? { zone: o.zone } : {}),
      snapshotId: o.snapshotId,
      volumeType: o.volumeType,
      sizeGb: o.sizeGb,
    });
    p.requested++;
    const outcome = await watch.awaitPoolVolume(created);
    if (outcome === 'available') {
      p.available++;
      pool.available++;
    } else {
      p.failed++;
      pool.failed++;
      p.errors.push(`${name}: ${outcome}`);
    }
  } catch (err) {
    if (failureType(err) === CINDER_FAILURES.overLimit) {
      p.stoppedBy ??= `quota: ${failureMessage(err)}`;
    } else {
      p.failed++;
      pool.failed++;
      p.errors.push(failureMessage(err));
    }
  }
}
