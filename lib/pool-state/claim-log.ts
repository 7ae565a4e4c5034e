/** claim_log: the claims the API answered, for the dashboard (hit ratio, latency, recent). */
import type { Db } from './db';

export interface ClaimLogEntry {
  requestId: string;
  workflowId: string;
  projectId: string;
  os: string | null;
  volumeType: string;
  /** The volume's availability zone (null: no zone named, or the claim failed). */
  zone?: string | null;
  /** pool, created, existing or failed. */
  outcome: string;
  httpStatus: number;
  seconds: number | null;
  fallbackReason: string | null;
}

export interface ClaimStats {
  /** Pool hits / (pool hits + plain creations) of system disks; null without claims. */
  hitRatio: { hour: number | null; day: number | null };
  /** Over the last day, by outcome. */
  latency: { outcome: string; claims: number; p50: number; p99: number }[];
  /** By outcome, over the last day. */
  counts: Record<string, number>;
}

export class ClaimLog {
  constructor(private readonly db: Db) {}

  async record(e: ClaimLogEntry): Promise<void> {
    await this.db.query(
      `INSERT INTO claim_log (request_id, workflow_id, project_id, os, volume_type, outcome,
                              http_status, seconds, fallback_reason, zone)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (request_id) DO UPDATE SET outcome = EXCLUDED.outcome, zone = EXCLUDED.zone,
         http_status = EXCLUDED.http_status, seconds = EXCLUDED.seconds,
         fallback_reason = EXCLUDED.fallback_reason, at = now()`,
      [
        e.requestId,
        e.workflowId,
        e.projectId,
        e.os,
        e.volumeType,
        e.outcome,
        e.httpStatus,
        e.seconds,
        e.fallbackReason,
        e.zone ?? null,
      ],
    );
  }

  async stats(): Promise<ClaimStats> {
    // Both windows in one pass over the last day's system disks.
    const { rows: hits } = await this.db.query<Record<string, number>>(
      `SELECT count(*) FILTER (WHERE outcome = 'pool' AND at > now() - interval '1 hour')::int
                AS hour_hits,
              count(*) FILTER (WHERE outcome IN ('pool', 'created')
                                 AND at > now() - interval '1 hour')::int AS hour_total,
              count(*) FILTER (WHERE outcome = 'pool')::int AS day_hits,
              count(*) FILTER (WHERE outcome IN ('pool', 'created'))::int AS day_total
         FROM claim_log WHERE os IS NOT NULL AND at > now() - interval '1 day'`,
    );
    const h = hits[0] ?? {};
    const ratio = (n?: number, of?: number) => (of ? (n ?? 0) / of : null);
    const { rows } = await this.db.query<{
      outcome: string;
      claims: number;
      p50: number | null;
      p99: number | null;
    }>(
      `SELECT outcome, count(*)::int AS claims,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
              percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds) AS p99
         FROM claim_log WHERE at > now() - interval '1 day'
        GROUP BY outcome ORDER BY outcome`,
    );
    return {
      hitRatio: {
        hour: ratio(h.hour_hits, h.hour_total),
        day: ratio(h.day_hits, h.day_total),
      },
      latency: rows
        .filter((r) => r.p50 !== null)
        .map((r) => ({
          outcome: r.outcome,
          claims: r.claims,
          p50: Number(r.p50),
          p99: Number(r.p99),
        })),
      counts: Object.fromEntries(rows.map((r) => [r.outcome, r.claims])),
    };
  }

  async recent(limit = 20): Promise<(ClaimLogEntry & { at: Date })[]> {
    const { rows } = await this.db.query(`SELECT * FROM claim_log ORDER BY at DESC LIMIT $1`, [
      limit,
    ]);
    return rows.map((r: Record<string, unknown>) => ({
      requestId: r.request_id as string,
      workflowId: r.workflow_id as string,
      projectId: r.project_id as string,
      os: r.os as string | null,
      volumeType: r.volume_type as string,
      zone: (r.zone as string | null) ?? null,
      outcome: r.outcome as string,
      httpStatus: r.http_status as number,
      seconds: r.seconds as number | null,
      fallbackReason: r.fallback_reason as string | null,
      at: r.at as Date,
    }));
  }
}
