/**
 * The one loop that waits on a volume (a pool volume being created, a claim's new or growing
 * volume). Each round first asks `before` (the caller's own state: a row removed meanwhile ends
 * the wait); then, while creating may still be expected, the project's shared list of creating
 * volumes answers without a call of its own (lib/cinder/creating.ts); otherwise the volume is
 * looked at and `decide` says whether the wait is over. Between rounds the attempt heartbeats
 * and sleeps, and a cancelled attempt stops.
 */
import { heartbeat, sleep } from '@temporalio/activity';
import type { CinderClient, Volume } from '../../lib/cinder';

export interface PollOptions<T> {
  pollMs: number;
  /** Until when `creating` is worth asking the shared list about (then: look each round). */
  creatingUntil: () => number;
  /** The caller's state, before each round: a value ends the wait. */
  before?: () => Promise<T | undefined>;
  /** How the volume is looked at (default: findVolume, null when gone). */
  look?: () => Promise<Volume | null>;
  /** What the volume means: a value ends the wait, undefined polls again. */
  decide: (v: Volume | null) => Promise<T | undefined> | T | undefined;
}

export async function pollVolume<T>(
  client: CinderClient,
  id: string,
  opts: PollOptions<T>,
): Promise<T> {
  const stillCreating = client.creatingWatch(id, opts.pollMs);
  const look = opts.look ?? (() => client.findVolume(id));
  for (;;) {
    const early = await opts.before?.();
    if (early !== undefined) return early;
    if (!(Date.now() <= opts.creatingUntil() && (await stillCreating()))) {
      const v = await look();
      const done = await opts.decide(v);
      if (done !== undefined) return done;
      heartbeat(v?.status);
    } else heartbeat('creating');
    // (rejects when the attempt is cancelled)
    await sleep(opts.pollMs);
  }
}
