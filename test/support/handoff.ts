/** Test helpers on the fenced hand-off rows (lib/pool-state/handoff.ts). */
import { HandOffRows } from '../../lib/pool-state/handoff';
import type { Db } from '../../lib/pool-state/db';

/** Gives a held row back to the pool as its holder would (a new epoch, then the release). */
export async function releaseHeld(db: Db, rowId: number, claimId: string): Promise<boolean> {
  const rows = new HandOffRows(db);
  const held = await rows.take(rowId, claimId);
  return held ? rows.release(held.fence, held.state) : false;
}
