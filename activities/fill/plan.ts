/**
 * What a fill must do (the seed's step 3): per (type, OS), how many volumes are missing from the
 * target, and which stale volumes (made from an older snapshot) to drain this run. The settings
 * come from the worker's configuration, so a changed config takes effect on the next run.
 */
import type { Deps } from '../deps';
import { PoolRepository } from '../../lib/pool-state/repository';
import type { ResolvedImage } from './images';

export interface CreateOrder {
  os: string;
  type: string;
  snapshotId: string;
  volumeType: string;
  sizeGb: number;
  missing: number;
}

export interface FillPlan {
  orders: CreateOrder[];
  /** Pool row ids of stale `available` stock to drain now (bounded by stale_drain_per_run). */
  drain: number[];
  staleTotal: number;
  /** Current stock above target (e.g. a volume back in the pool after a refused accept). */
  excessTotal?: number;
  settings: {
    concurrency: number;
    createIntervalSeconds: number;
    drainPerRun: number;
    namePrefix: string;
  };
}

export function planFillActivity({ config, db }: Pick<Deps, 'config' | 'db'>) {
  const repo = new PoolRepository(db);
  return async function planFill(images: ResolvedImage[]): Promise<FillPlan> {
    const rows = await repo.listAll();
    const orders: CreateOrder[] = [];
    const staleRows: { id: number; createdAt: Date }[] = [];
    const excessRows: { id: number; createdAt: Date }[] = [];
    for (const img of images) {
      const target =
        config.pool.targets.find((t) => t.os === img.os && t.volumeType === img.type)?.target ?? 0;
      const mine = rows.filter((r) => r.os === img.os && r.type === img.type);
      const current = mine.filter(
        (r) =>
          r.snapshotId === img.snapshotId && (r.status === 'creating' || r.status === 'available'),
      ).length;
      for (const r of mine) {
        if (r.snapshotId !== img.snapshotId && r.status === 'available') staleRows.push(r);
      }
      if (target > current) orders.push({ ...img, missing: target - current });
      if (current > target) {
        // Above target: the oldest idle volumes go, the newest stay.
        const idle = mine
          .filter((r) => r.snapshotId === img.snapshotId && r.status === 'available')
          // Same instant (the clock's milliseconds): the later row is the newer.
          .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id - b.id);
        excessRows.push(...idle.slice(0, current - target));
      }
    }
    // Stock of pairs no longer configured is stale as well: drain it.
    const targeted = new Set(config.pool.targets.map((t) => `${t.volumeType}\u0000${t.os}`));
    for (const r of rows) {
      const k = `${r.type}\u0000${r.os}`;
      if (!targeted.has(k) && r.status === 'available') staleRows.push(r);
    }
    staleRows.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
    // Stale stock first (it must never be handed out), then stock above target; bounded per run.
    return {
      orders,
      drain: [...staleRows, ...excessRows].slice(0, config.pool.drainPerRun).map((r) => r.id),
      staleTotal: staleRows.length,
      excessTotal: excessRows.length,
      settings: {
        concurrency: config.concurrency,
        createIntervalSeconds: config.pool.createIntervalSeconds,
        drainPerRun: config.pool.drainPerRun,
        namePrefix: config.pool.volumeNamePrefix,
      },
    };
  };
}
