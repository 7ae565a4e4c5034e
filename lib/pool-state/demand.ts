/**
 * Demand-aware targets. The seed's counts are floors; per (type × OS) the target is
 *   clamp(ceil(claims per second over the window × refill lead time × safety) + headroom,
 *         floor, cap)
 * with the claims recorded by the claim's reserve step and the lead time the pool's own
 * requested → ready (median of the recent ones). Like Nodepool's min-ready with a demand term:
 * a quiet OS sits at its floor, a busy one keeps enough to cover the claims of one refill.
 */
import type { PoolPolicy, PoolTarget } from '../config/load';
import type { Db } from './db';
import { deleteOlderThan } from './prune';

/** Lead time assumed before the pool has measured any (a fake-backend create is seconds). */
export const DEFAULT_LEAD_SECONDS = 60;

export interface EffectiveTarget {
  volumeType: string;
  os: string;
  zone: string;
  floor: number;
  cap: number;
  /** What the fill keeps: the floor, raised by demand, never above the cap. */
  target: number;
  claimsInWindow: number;
  leadSeconds: number;
  /** One line an operator reads: which rule decided. */
  why: string;
}

/** The target of one pool from its demand (pure; the formula of the module comment). */
export function demandTarget(
  t: PoolTarget,
  demand: PoolPolicy['demand'],
  claimsInWindow: number,
  leadSeconds: number,
): EffectiveTarget {
  const base = {
    volumeType: t.volumeType,
    os: t.os,
    zone: t.zone,
    floor: t.target,
    cap: t.cap,
    claimsInWindow,
    leadSeconds: Math.round(leadSeconds),
  };
  if (!demand.enabled) return { ...base, target: t.target, why: 'floor (demand targets off)' };
  const perSecond = claimsInWindow / (demand.windowMinutes * 60);
  const wanted = Math.ceil(perSecond * leadSeconds * demand.safetyFactor) + demand.headroom;
  const formula =
    `${claimsInWindow} claims in ${demand.windowMinutes} min × lead ${base.leadSeconds} s` +
    ` × ${demand.safetyFactor} + ${demand.headroom} = ${wanted}`;
  if (wanted <= t.target) return { ...base, target: t.target, why: `floor (${formula})` };
  if (wanted >= t.cap) return { ...base, target: t.cap, why: `cap (${formula})` };
  return { ...base, target: wanted, why: `demand (${formula})` };
}

const key = (type: string, os: string, zone: string) => `${type}\u0000${os}\u0000${zone}`;

export class DemandRepository {
  constructor(private readonly db: Db) {}

  /** A claim asked this pool (once per claim: a retried reserve changes nothing). */
  async record(c: {
    claimId: string;
    type: string;
    os: string;
    zone: string;
    projectId: string;
    hit: boolean;
  }): Promise<void> {
    await this.db.query(
      `INSERT INTO claim_demand (claim_id, type, os, zone, project_id, hit)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (claim_id) DO UPDATE SET hit = claim_demand.hit OR EXCLUDED.hit`,
      [c.claimId, c.type, c.os, c.zone, c.projectId, c.hit],
    );
  }

  /** Claims per pool within the last `minutes`. */
  async claimsSince(minutes: number): Promise<Map<string, number>> {
    const { rows } = await this.db.query<{ type: string; os: string; zone: string; n: number }>(
      `SELECT type, os, zone, count(*)::int AS n FROM claim_demand
        WHERE at > now() - make_interval(secs => $1) GROUP BY type, os, zone`,
      [minutes * 60],
    );
    return new Map(rows.map((r) => [key(r.type, r.os, r.zone), r.n]));
  }

  /** Median refill lead time per pool over its last 20 refills. */
  async leadTimes(): Promise<Map<string, number>> {
    const { rows } = await this.db.query<{ type: string; os: string; zone: string; s: number }>(
      `SELECT type, os, zone, percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS s
         FROM (SELECT type, os, zone, seconds,
                      row_number() OVER (PARTITION BY type, os, zone ORDER BY at DESC) AS n
                 FROM pool_lead_times) recent
        WHERE n <= 20 GROUP BY type, os, zone`,
    );
    return new Map(rows.map((r) => [key(r.type, r.os, r.zone), Number(r.s)]));
  }

  /** Pool hits of one tenant in one pool within the last `minutes` (the fair share's count). */
  async tenantHits(c: {
    type: string;
    os: string;
    zone: string;
    projectId: string;
    minutes: number;
    /** Leave out this claim's own hit (a retry asks again). */
    otherThan?: string;
  }): Promise<number> {
    const { rows } = await this.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM claim_demand
        WHERE type = $1 AND os = $2 AND zone = $3 AND project_id = $4 AND hit
          AND at > now() - make_interval(secs => $5) AND claim_id IS DISTINCT FROM $6`,
      [c.type, c.os, c.zone, c.projectId, c.minutes * 60, c.otherThan ?? null],
    );
    return rows[0]?.n ?? 0;
  }

  /** Drops what no window looks at any more (the fill; the status check prunes claims too). */
  async prune(keepMinutes: number): Promise<void> {
    await deleteOlderThan(this.db, 'claim_demand', keepMinutes * 60);
    await this.db.query(`DELETE FROM pool_lead_times WHERE at < now() - interval '7 days'`);
  }
}

/** Every configured pool's target now (what the fill keeps and the operator sees). */
export async function effectiveTargets(
  targets: PoolTarget[],
  policy: PoolPolicy,
  db: Db,
): Promise<EffectiveTarget[]> {
  const repo = new DemandRepository(db);
  const [claims, leads] = policy.demand.enabled
    ? await Promise.all([repo.claimsSince(policy.demand.windowMinutes), repo.leadTimes()])
    : [new Map<string, number>(), new Map<string, number>()];
  const anyLead = [...leads.values()].sort((a, b) => a - b)[Math.floor(leads.size / 2)];
  return targets.map((t) =>
    demandTarget(
      t,
      policy.demand,
      claims.get(key(t.volumeType, t.os, t.zone)) ?? 0,
      leads.get(key(t.volumeType, t.os, t.zone)) ?? anyLead ?? DEFAULT_LEAD_SECONDS,
    ),
  );
}
