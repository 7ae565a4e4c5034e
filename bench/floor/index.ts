/**
 * The floor peer of bench:claim: `floorWorkflow` (./workflow.ts) on its own task queue and
 * worker, started the way the API starts a claim. Timed against the claim in the same run, it
 * tells the claim's own overhead from what Temporal and the SDK cost here anyway.
 */
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import { floorDone, floorWorkflow, type FloorActivities } from './workflow';

export interface Floor {
  /** One floor workflow through update-with-start; resolves with its latency in ms. */
  once(id: string, localSteps?: number): Promise<number>;
  /** The workflow id `once(id)` used. */
  workflowId(id: string): string;
  stop(): Promise<void>;
}

export async function startFloor(client: Client, address: string, tag: string): Promise<Floor> {
  const taskQueue = `${tag}-floor`;
  const connection = await NativeConnection.connect({ address });
  const activities: FloorActivities = {
    floorLocalStep: async () => 1,
  };
  const worker = await Worker.create({
    connection,
    taskQueue,
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: require.resolve('./workflow'),
      logger: undefined,
    }),
    activities,
  });
  const running = worker.run();
  return {
    async once(id, localSteps = 2) {
      const t = performance.now();
      await client.workflow.executeUpdateWithStart(floorDone, {
        startWorkflowOperation: new WithStartWorkflowOperation(floorWorkflow, {
          taskQueue,
          workflowId: `${tag}-floor-${id}`, // see workflowId()
          workflowIdConflictPolicy: 'FAIL',
          args: [localSteps],
        }),
      });
      return performance.now() - t;
    },
    workflowId: (id) => `${tag}-floor-${id}`,
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}
