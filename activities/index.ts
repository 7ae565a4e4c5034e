/**
 * createActivities(deps) builds every activity around clients made once in the worker
 * (the Temporal samples' pattern); workflows import the resulting type only. Cinder's errors
 * become Temporal failures here, once for all of them (asActivities).
 */
import type { Deps } from './deps';
import { describeCinderActivity } from './cinder/describe';
import { resolveImagesActivity } from './fill/images';
import { planFillActivity } from './fill/plan';
import { poolVolumeActivities } from './fill/volumes';
import { reconcileActivities } from './fill/reconcile';
import { runActivities } from './fill/runs';
import { claimActivities } from './claim';
import { asActivities } from './cinder/volumes';

export function createActivities(deps: Deps) {
  return asActivities({
    describeCinder: describeCinderActivity(deps),
    resolveImages: resolveImagesActivity(deps),
    planFill: planFillActivity(deps),
    ...poolVolumeActivities(deps),
    ...reconcileActivities(deps),
    ...runActivities(deps),
    ...claimActivities(deps),
  });
}

export type Activities = ReturnType<typeof createActivities>;
export type { Deps };
