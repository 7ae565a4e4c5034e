/** Pool levels per (volume type × OS × zone): what the operator and the fill both look at. */
import type { AppConfig, PoolTarget } from '../config/load';
import type { Db } from './db';
import { effectiveTargets } from './demand';
import { PoolRepository, type PoolCount } from './repository';

export interface PoolLevel {
  volumeType: string;
  os: string;
  /** The availability zone ('' when the pool names no zones). */
  zone: string;
  /** The seed's count for this pool. */
  floor: number;
  /** What the fill keeps: the floor, raised by recent demand up to the cap. */
  target: number;
  /** Which rule set the target (floor, demand, cap), with its figures. */
  why: string;
  creating: number;
  /** Ready to hand out: available and made from the OS's current snapshot. */
  available: number;
  reserved: number;
  /** Made from an older snapshot: never handed out, drained and replaced. */
  stale: number;
  deleting: number;
  /** Cinder refused to delete them (e.g. attached by someone): the operator's to look at. */
  flagged: number;
  /** How many more the next fill will create. */
  missing: number;
}

/** A pool's target as levels take it: an effective target (demand.ts) or the config's floor. */
export type LevelTarget = Pick<PoolTarget, 'volumeType' | 'os' | 'zone' | 'target'> & {
  floor?: number;
  why?: string;
};

export function poolLevels(targets: LevelTarget[], counts: PoolCount[]): PoolLevel[] {
  const key = (t: string, o: string, z: string) => `${t}\u0000${o}\u0000${z}`;
  const levels = new Map<string, PoolLevel>();
  const level = (
    volumeType: string,
    os: string,
    zone: string,
    target: number,
    floor = target,
    why = '',
  ): PoolLevel => {
    let l = levels.get(key(volumeType, os, zone));
    if (!l) {
      l = {
        volumeType,
        os,
        zone,
        floor,
        target,
        why,
        creating: 0,
        available: 0,
        reserved: 0,
        stale: 0,
        deleting: 0,
        flagged: 0,
        missing: 0,
      };
      levels.set(key(volumeType, os, zone), l);
    }
    return l;
  };
  for (const t of targets) level(t.volumeType, t.os, t.zone, t.target, t.floor, t.why);
  for (const c of counts) {
    // Stock of a pool no longer configured shows with target 0: the operator sees it to drain it.
    const l = level(c.type, c.os, c.zone, 0, 0, 'not configured');
    if (!c.current && c.status !== 'reserved' && c.status !== 'deleting' && c.status !== 'flagged')
      l.stale += c.count;
    else l[c.status] += c.count;
  }
  for (const l of levels.values()) l.missing = Math.max(0, l.target - l.creating - l.available);
  return [...levels.values()].sort(
    (a, b) =>
      a.volumeType.localeCompare(b.volumeType) ||
      a.os.localeCompare(b.os) ||
      a.zone.localeCompare(b.zone),
  );
}

/** The levels now: every pool's effective target (demand included) against its stock. */
export async function currentLevels(config: AppConfig, db: Db): Promise<PoolLevel[]> {
  const [targets, counts] = await Promise.all([
    effectiveTargets(config.pool.targets, config.pool.policy, db),
    new PoolRepository(db).countByTypeOsStatus(),
  ]);
  return poolLevels(targets, counts);
}
