/**
 * The claim's Temporal shape with no work in it (bench only, bundled on its own): started with
 * update-with-start, the update answered once the steps are done, a search attribute set, two
 * local activities (the reservation, the hand-off); both return at once. What it costs is the floor any claim
 * pays on this machine before the first Cinder or database call.
 */
import {
  condition,
  defineUpdate,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';

export interface FloorActivities {
  floorLocalStep(): Promise<number>;
}

export const floorDone = defineUpdate<string, []>('floorDone');

const local = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '10 seconds' });

/** `localSteps`: how many local activities (the claim's pool hit has two). */
export async function floorWorkflow(localSteps = 2): Promise<string> {
  const run: { answer?: string } = {};
  setHandler(floorDone, async () => {
    await condition(() => run.answer !== undefined);
    return run.answer as string;
  });
  upsertSearchAttributes({ PoolKind: ['bench-floor'] });
  for (let i = 0; i < localSteps; i++) await local.floorLocalStep();
  run.answer = 'done';
  return run.answer;
}
