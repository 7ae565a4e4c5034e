/**
 * The claim's Temporal shape with no work in it (bench only, bundled on its own): started with
 * update-with-start, the update answered once the steps are done, a search attribute set, one
 * local activity, then one activity; both return at once. What it costs is the floor any claim
 * pays on this machine before the first Cinder or database call.
 */
import {
  condition,
  defineUpdate,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';

export interface FloorActivities {
  floorLocalStep(): Promise<number>;
  floorStep(): Promise<number>;
}

export const floorDone = defineUpdate<string, []>('floorDone');

const local = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '10 seconds' });
const remote = proxyActivities<FloorActivities>({ startToCloseTimeout: '10 seconds' });

export async function floorWorkflow(): Promise<string> {
  const run: { answer?: string } = {};
  setHandler(floorDone, async () => {
    await condition(() => run.answer !== undefined);
    return run.answer as string;
  });
  upsertSearchAttributes({ PoolKind: ['bench-floor'] });
  await local.floorLocalStep();
  await remote.floorStep();
  run.answer = 'done';
  return run.answer;
}
