/** Small questions about workflow executions, asked by activities and the operator's tools. */
import type { Client } from '@temporalio/client';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';

/** Whether the workflow `workflowId` is running now; one that never existed is not. */
export async function workflowRunning(client: Client, workflowId: string): Promise<boolean> {
  return client.workflow
    .getHandle(workflowId)
    .describe()
    .then(
      (d) => d.status.name === 'RUNNING',
      (err: Error) => (err.name === 'WorkflowNotFoundError' ? false : Promise.reject(err)),
    );
}

/** The Web UI's page of a workflow's history; without an id, the namespace's workflow list. */
export function historyUrl(
  temporal: { uiUrl: string; namespace: string },
  workflowId?: string,
): string {
  const list = `${temporal.uiUrl}/namespaces/${encodeURIComponent(temporal.namespace)}/workflows`;
  return workflowId === undefined ? list : `${list}/${encodeURIComponent(workflowId)}`;
}

/** What the server records of one run: answered without a worker (no query). */
export interface RunView {
  status: string;
  startedAt: Date;
  closedAt: Date | null;
  /** The build a pinned run stays on; null: not pinned yet (no workflow task done). */
  buildId: string | null;
  /** Activities scheduled or running, by type (`awaitPoolVolume ×3`). */
  pendingActivities: string[];
  /** Since when a workflow task waits for a worker to take it; null: none waiting. */
  taskWaitingSince: Date | null;
}

export async function describeRun(
  client: Client,
  workflowId: string,
  runId?: string,
): Promise<RunView> {
  const d = await client.workflow.getHandle(workflowId, runId).describe();
  const counts = new Map<string, number>();
  for (const a of d.raw.pendingActivities ?? []) {
    const name = a.activityType?.name ?? '?';
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const task = d.raw.pendingWorkflowTask;
  const waiting =
    task?.state ===
    temporal.api.enums.v1.PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
      ? optionalTsToMs(task.scheduledTime) // no worker took it yet
      : undefined;
  return {
    status: d.status.name,
    startedAt: d.startTime,
    closedAt: d.closeTime ?? null,
    buildId: d.raw.workflowExecutionInfo?.versioningInfo?.deploymentVersion?.buildId || null,
    pendingActivities: [...counts].map(([n, c]) => (c > 1 ? `${n} ×${c}` : n)),
    taskWaitingSince: waiting === undefined ? null : new Date(waiting),
  };
}
