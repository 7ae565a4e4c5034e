/** pool_runs: what each fill, check, drain and sync-os run did (`pool status`, `/metrics`). */
import type { Db } from './db';

export interface PoolRun<S = Record<string, unknown>> {
  kind: string;
  workflowId: string;
  startedAt: Date;
  finishedAt: Date | null;
  summary: S;
}

export class RunRepository {
  constructor(private readonly db: Db) {}

  /** Upserts a run's record by its run id; `finished` stamps its end. */
  async record(run: {
    kind: string;
    workflowId: string;
    runId: string;
    summary: unknown;
    finished: boolean;
  }): Promise<void> {
    await this.db.query(
      `INSERT INTO pool_runs (kind, workflow_id, run_id, summary, finished_at)
       VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)
       ON CONFLICT (run_id) DO UPDATE SET summary = EXCLUDED.summary,
         finished_at = CASE WHEN $5 THEN now() ELSE pool_runs.finished_at END`,
      [run.kind, run.workflowId, run.runId, JSON.stringify(run.summary), run.finished],
    );
  }

  /** The newest run of that kind (running or not); with `finished`, the newest finished one. */
  async last<S>(kind: string, opts: { finished?: boolean } = {}): Promise<PoolRun<S> | null> {
    const { rows } = await this.db.query(
      `SELECT kind, workflow_id, started_at, finished_at, summary FROM pool_runs
        WHERE kind = $1 AND ($2::boolean IS NOT TRUE OR finished_at IS NOT NULL)
        ORDER BY ${opts.finished ? 'finished_at' : 'started_at'} DESC LIMIT 1`,
      [kind, opts.finished ?? false],
    );
    const r = rows[0];
    return r ? toRun<S>(r) : null;
  }

  /** The newest `limit` runs of that kind, newest first. */
  async recent<S>(kind: string, limit: number): Promise<PoolRun<S>[]> {
    const { rows } = await this.db.query(
      `SELECT kind, workflow_id, started_at, finished_at, summary FROM pool_runs
        WHERE kind = $1 ORDER BY started_at DESC LIMIT $2`,
      [kind, limit],
    );
    return rows.map((r) => toRun<S>(r));
  }
}

function toRun<S>(r: Record<string, unknown>): PoolRun<S> {
  return {
    kind: r.kind as string,
    workflowId: r.workflow_id as string,
    startedAt: r.started_at as Date,
    finishedAt: r.finished_at as Date | null,
    summary: r.summary as S,
  };
}
