/**
 * Name lookups started early. A pool hit must look its name up in the tenant's project before
 * the accept; started by the reservation (under the claim's name lock), the lookup runs while
 * Temporal hands the claim from its first workflow task to the hand-off activity, when Cinder is
 * otherwise idle, instead of beside the transfer create, which it would slow down. The hand-off
 * takes it if it runs in this worker soon after (one worker, or the one that reserved); anywhere
 * else, or later, it looks the name up itself. Only ever a shortcut: nothing depends on a hit.
 */
export type NameLookup = Promise<{ volumeId: string; status: string } | null>;

/** Older than this, a lookup is not taken: the hand-off looks again. */
export const LOOKUP_FRESH_MS = 10_000;

export class NameLookups {
  private readonly started = new Map<string, { lookup: NameLookup; at: number }>();

  /** Starts `lookup` for the claim (replacing an earlier one: a re-run reservation). */
  start(claimId: string, lookup: () => NameLookup): void {
    const p = lookup();
    p.catch(() => undefined); // taken or not, a failure is the taker's business, never unhandled
    this.started.set(claimId, { lookup: p, at: Date.now() });
    setTimeout(() => {
      if (this.started.get(claimId)?.lookup === p) this.started.delete(claimId);
    }, LOOKUP_FRESH_MS).unref();
  }

  /** The claim's lookup if one was started here and is fresh; each is taken once. */
  take(claimId: string): NameLookup | undefined {
    const entry = this.started.get(claimId);
    this.started.delete(claimId);
    if (!entry || Date.now() - entry.at > LOOKUP_FRESH_MS) return undefined;
    return entry.lookup;
  }

  get size(): number {
    return this.started.size;
  }
}
