/**
 * What the API itself started lately. The task queue's stats (lib/temporal/backlog.ts) show a
 * backlog up to ~5 s late and may be a few seconds stale on top: a burst of 1,000 claims that
 * arrives within a second would all pass a check on them alone. Admission adds the claims this
 * process started within that window, so a burst is bounded at once, not seconds later.
 */
export const STATS_LAG_MS = 10_000;

export class RecentStarts {
  private readonly times: number[] = [];

  constructor(
    private readonly windowMs = STATS_LAG_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** One more claim started now. */
  add(): void {
    this.times.push(this.now());
  }

  /** Claims started within the window (older ones are forgotten). */
  count(): number {
    const since = this.now() - this.windowMs;
    let old = 0;
    while (old < this.times.length && (this.times[old] as number) < since) old++;
    if (old > 0) this.times.splice(0, old);
    return this.times.length;
  }
}
