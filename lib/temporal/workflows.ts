/** Small questions about workflow executions, asked by activities. */
import type { Client } from '@temporalio/client';

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
