/**
 * What a fill must do (the seed's step 3): per (type, OS), how many volumes are missing from the
 * target, and which volumes to drain this run: stale ones (made from an older snapshot), stock
 * above target, and stock idle past max_idle_minute (recycled). The target is the seed's count
 * raised by recent demand (../../lib/pool-state/demand.ts), and what demand adds never takes
 * the pool project past its quota (less a margin). The settings come from the worker's
 * configuration, so a changed config takes effect on the next run. The arithmetic is `planFill`,
 * pure; the activity reads what it needs and calls it.
 */
import { log } from '@temporalio/activity';
import type { Deps } from '../deps';
import type { AppConfig, PoolPolicy } from '../../lib/config/load';
import { PoolRepository, type PoolVolume } from '../../lib/pool-state/repository';
import {
  DemandRepository,
  effectiveTargets,
  type EffectiveTarget,
} from '../../lib/pool-state/demand';
import type { CreateOrder, FillPlan, ResolvedImage } from '../../contracts/fill';

/** What planning reads of a pool row. */
export type PlanRow = Pick<
  PoolVolume,
  'id' | 'os' | 'type' | 'zone' | 'snapshotId' | 'status' | 'createdAt' | 'readyAt'
>;

/** What planning reads of a pool's target. */
export type PlanTarget = Pick<
  EffectiveTarget,
  'os' | 'volumeType' | 'zone' | 'floor' | 'target' | 'why'
>;

/** The configuration planning reads. */
export interface PlanSettings {
  concurrency: number;
  pool: Pick<
    AppConfig['pool'],
    'targets' | 'drainPerRun' | 'createIntervalSeconds' | 'volumeNamePrefix'
  > & { policy: Pick<PoolPolicy, 'quotaMargin' | 'maxIdleMinutes' | 'recyclePerRun'> };
}

export interface PlanInput {
  images: ResolvedImage[];
  rows: PlanRow[];
  targets: PlanTarget[];
  /**
   * Volumes the pool project may still add beyond its floors (its quota less the margin;
   * Infinity: no limit). Read only when demand raises a target above its floor.
   */
  quotaRoom: number;
  /** The time idle stock is measured against (ms since the epoch). */
  now: number;
}

const byAge = (a: PlanRow, b: PlanRow) =>
  // Same instant (the clock's milliseconds): the later row is the newer.
  a.createdAt.getTime() - b.createdAt.getTime() || a.id - b.id;

const targetOf = (targets: PlanTarget[], img: ResolvedImage) =>
  // (An image of a previous build's resolve has no zone: '' is its pool's.)
  targets.find((x) => x.os === img.os && x.volumeType === img.type && x.zone === (img.zone ?? ''));

/** Whether demand raises the target of a pool with a current image (then the quota matters). */
export const demandRaises = (images: ResolvedImage[], targets: PlanTarget[]) =>
  images.some((img) => {
    const t = targetOf(targets, img);
    return t !== undefined && t.target > t.floor;
  });

/** The fill's plan from the pool's rows, its targets and the quota's room (pure). */
export function planFill(input: PlanInput, settings: PlanSettings): FillPlan {
  const { images, rows, targets } = input;
  const { policy } = settings.pool;
  const idleBefore = policy.maxIdleMinutes ? input.now - policy.maxIdleMinutes * 60_000 : -Infinity;

  const pools = images.map((img) => {
    const t = targetOf(targets, img);
    const mine = rows.filter(
      (r) => r.os === img.os && r.type === img.type && r.zone === (img.zone ?? ''),
    );
    const fresh = mine.filter((r) => r.snapshotId === img.snapshotId);
    const current = fresh.filter((r) => r.status === 'creating' || r.status === 'available');
    const idle = fresh.filter((r) => r.status === 'available').sort(byAge);
    return {
      img,
      floor: t?.floor ?? 0,
      target: t?.target ?? 0,
      why: t?.why ?? 'not configured',
      current: current.length,
      idle,
      stale: mine.filter((r) => r.snapshotId !== img.snapshotId && r.status === 'available'),
    };
  });

  // Demand's additions share what the quota leaves after every pool's floor.
  let room = pools.some((p) => p.target > p.floor) ? input.quotaRoom : 0;
  room -= pools.reduce((n, p) => n + Math.max(0, p.floor - p.current), 0);
  const orders: CreateOrder[] = [];
  const staleRows: PlanRow[] = [];
  const excessRows: PlanRow[] = [];
  const recycleRows: PlanRow[] = [];
  const planned: NonNullable<FillPlan['targets']> = [];
  for (const p of pools) {
    let target = p.target;
    let why = p.why;
    const extraWanted = Math.max(0, p.target - Math.max(p.floor, p.current));
    const extra = Math.min(extraWanted, Math.max(0, room));
    if (extra < extraWanted) {
      target = Math.max(p.floor, p.current) + extra;
      why = `quota (leaves ${policy.quotaMargin} free): ${why}`;
    }
    room -= extra;
    planned.push({
      type: p.img.type,
      os: p.img.os,
      ...(p.img.zone ? { zone: p.img.zone } : {}),
      floor: p.floor,
      target,
      why,
    });
    staleRows.push(...p.stale);
    // Above target: the oldest idle volumes go, the newest stay.
    if (p.current > target) excessRows.push(...p.idle.slice(0, p.current - target));
    // Idle too long, only while the pool is at its floor; this run makes their replacements.
    let recycled = 0;
    if (p.current >= p.floor && p.current <= target) {
      const old = p.idle.filter((r) => (r.readyAt ?? r.createdAt).getTime() < idleBefore);
      recycled = Math.min(old.length, policy.recyclePerRun - recycleRows.length);
      recycleRows.push(...old.slice(0, recycled));
    }
    const missing = Math.max(0, target - p.current) + recycled;
    if (missing > 0) orders.push({ ...p.img, missing });
  }
  // Stock of pairs no longer configured is stale as well: drain it.
  const poolOf = (type: string, os: string, zone: string) => `${type}\u0000${os}\u0000${zone}`;
  const targeted = new Set(settings.pool.targets.map((t) => poolOf(t.volumeType, t.os, t.zone)));
  for (const r of rows) {
    const k = poolOf(r.type, r.os, r.zone);
    if (!targeted.has(k) && r.status === 'available') staleRows.push(r);
  }
  staleRows.sort(byAge);
  // Stale stock first (it must never be handed out), then stock above target; bounded per run.
  // Recycling has its own bound.
  return {
    orders,
    drain: [
      ...[...staleRows, ...excessRows].slice(0, settings.pool.drainPerRun),
      ...recycleRows,
    ].map((r) => r.id),
    staleTotal: staleRows.length,
    excessTotal: excessRows.length,
    recycled: recycleRows.length,
    targets: planned,
    settings: {
      concurrency: settings.concurrency,
      createIntervalSeconds: settings.pool.createIntervalSeconds,
      drainPerRun: settings.pool.drainPerRun,
      namePrefix: settings.pool.volumeNamePrefix,
    },
  };
}

export function planFillActivity({ config, db, cinder }: Pick<Deps, 'config' | 'db' | 'cinder'>) {
  const repo = new PoolRepository(db);
  const demand = new DemandRepository(db);
  const { policy } = config.pool;

  /** Volumes the pool project may still add beyond its floors (its quota less the margin). */
  async function quotaRoom(): Promise<number> {
    try {
      const v = (await cinder.getQuotaUsage()).volumes;
      if (!v || v.limit < 0) return Infinity;
      return Math.max(0, v.limit - v.inUse - v.reserved - policy.quotaMargin);
    } catch (err) {
      log.warn(`quota unknown, demand raises nothing this run: ${(err as Error).message}`);
      return 0;
    }
  }

  return async function planFillStep(images: ResolvedImage[]): Promise<FillPlan> {
    const rows = await repo.listAll();
    const targets = await effectiveTargets(config.pool.targets, policy, db);
    await demand.prune(config.pool.retention.claimDemandMinutes);
    const room = demandRaises(images, targets) ? await quotaRoom() : 0;
    return planFill({ images, rows, targets, quotaRoom: room, now: Date.now() }, config);
  };
}
