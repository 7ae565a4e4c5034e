/**
 * createActivities(deps) builds every activity around clients made once in the worker
 * (the Temporal samples' pattern); workflows import the resulting type only.
 */
import type { Deps } from './deps';
import { describeCinderActivity } from './cinder/describe';

export function createActivities(deps: Deps) {
  return {
    describeCinder: describeCinderActivity(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { Deps };
