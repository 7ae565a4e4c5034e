/**
 * The claim's activities, one module per step: reserve (name lock, image, row), deliver (the
 * fenced hand-off), compensate (release or quarantine), create (plain creation, extend).
 */
import type { Deps } from '../deps';
import { claimContext } from './context';
import { reserveActivities } from './reserve';
import { deliverActivities } from './deliver';
import { compensateActivities, rowSettler } from './compensate';
import { plainCreationActivities } from './create';
import { refillRequester } from './refill';

export function claimActivities(deps: Deps) {
  const ctx = claimContext(deps);
  const reserve = reserveActivities(deps);
  return {
    ...reserve,
    ...deliverActivities(deps, ctx, refillRequester(deps), reserve.releaseClaimName),
    ...compensateActivities(deps, rowSettler(deps, ctx)),
    ...plainCreationActivities(deps, ctx),
  };
}
