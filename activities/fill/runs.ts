/** The record of what each fill/check/drain run did, for `pool status` and the API. */
import { Context } from '@temporalio/activity';
import type { Deps } from '../deps';
import { RunRepository } from '../../lib/pool-state/runs';

export function runActivities({ db }: Pick<Deps, 'db'>) {
  const runs = new RunRepository(db);
  /** Upserts this workflow run's record; `finished` stamps its end. */
  async function recordRun(input: {
    kind: string;
    summary: unknown;
    finished?: boolean;
  }): Promise<void> {
    const { workflowId = '-', runId = `activity-${Context.current().info.activityId}` } =
      Context.current().info.workflowExecution ?? {};
    await runs.record({ ...input, workflowId, runId, finished: !!input.finished });
  }
  return { recordRun };
}
