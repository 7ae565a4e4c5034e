/** The record of what each fill/check/drain run did, for `pool status` and the API. */
import { Context } from '@temporalio/activity';
import type { Deps } from '../deps';

export function runActivities({ db }: Pick<Deps, 'db'>) {
  /** Upserts this workflow run's record; `finished` stamps its end. */
  async function recordRun(input: {
    kind: string;
    summary: unknown;
    finished?: boolean;
  }): Promise<void> {
    const { workflowId = '-', runId = `activity-${Context.current().info.activityId}` } =
      Context.current().info.workflowExecution ?? {};
    await db.query(
      `INSERT INTO pool_runs (kind, workflow_id, run_id, summary, finished_at)
       VALUES ($1, $2, $3, $4, CASE WHEN $5 THEN now() END)
       ON CONFLICT (run_id) DO UPDATE SET summary = EXCLUDED.summary,
         finished_at = CASE WHEN $5 THEN now() ELSE pool_runs.finished_at END`,
      [input.kind, workflowId, runId, JSON.stringify(input.summary), !!input.finished],
    );
  }
  return { recordRun };
}
