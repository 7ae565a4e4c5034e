/**
 * Pure helpers of bench:fill (test/unit/bench-fill.test.ts): which pools a fill of N volumes
 * fills (spread over volume types × OSes with the seed's two counts), the order both the fill and
 * its bare peer make them in, Cinder calls counted by kind, and the floor Cinder itself puts under
 * a fill's wall time.
 */

/** One pool of the mix: (volume type, OS) and how many volumes it gets. */
export interface PoolShare {
  type: string;
  os: string;
  count: number;
}

/** A target of exactly `n` volumes in the seed's terms, and the pools it makes. */
export interface Mix {
  types: string[];
  /** OSes at `numsMore` volumes per type (volume_backup_os_more). */
  more: string[];
  /** OSes at `numsLess` volumes per type (volume_backup_os_less). */
  less: string[];
  numsMore: number;
  numsLess: number;
  pools: PoolShare[];
}

/**
 * `n` volumes spread as evenly as the seed's two counts allow over `types` × `oses`: every type
 * gets n / types (all types when that divides, else the first type alone), and each type's share
 * goes to as many OSes as it has volumes, one more to the first ones. Every pool gets at least
 * one volume; the counts add up to `n`.
 */
export function spreadTarget(n: number, types: string[], oses: string[]): Mix {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${n} volumes: a positive integer`);
  if (types.length === 0 || oses.length === 0) throw new Error('no volume types or no OSes');
  const used = n % types.length === 0 ? types : types.slice(0, 1);
  const perType = n / used.length;
  const served = oses.slice(0, Math.min(oses.length, perType));
  const base = Math.floor(perType / served.length);
  const extra = perType - base * served.length;
  // The first `extra` OSes get base + 1 ("more"), the others base ("less"); none extra: all "more".
  const more = extra > 0 ? served.slice(0, extra) : served;
  const less = extra > 0 ? served.slice(extra) : [];
  const numsMore = extra > 0 ? base + 1 : base;
  const numsLess = extra > 0 ? base : 0;
  const pools: PoolShare[] = [];
  for (const type of used) {
    for (const os of more) pools.push({ type, os, count: numsMore });
    for (const os of less) pools.push({ type, os, count: numsLess });
  }
  return { types: used, more, less, numsMore, numsLess, pools };
}

/** The configuration overrides that make the pool's target this mix (one zone). */
export function mixEnv(mix: Mix): Record<string, string> {
  return {
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES: mix.types.join(', '),
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE: mix.more.join(', '),
    POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS: mix.less.join(', '),
    POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: String(mix.numsMore),
    POOL__VOLUMES_BACKUP__BACKUP_NUMS_LESS: String(mix.numsLess),
  };
}

/** "2 types × 11 OSes = 22 pools of 22–23 volumes (500)" */
export function describeMix(mix: Mix): string {
  const counts = mix.pools.map((p) => p.count);
  const [lo, hi] = [Math.min(...counts), Math.max(...counts)];
  const total = counts.reduce((a, b) => a + b, 0);
  const oses = mix.more.length + mix.less.length;
  return (
    `${mix.types.length} type(s) (${mix.types.join(', ')}) × ${oses} OS(es) = ${mix.pools.length} pools ` +
    `of ${lo === hi ? lo : `${lo}–${hi}`} volumes (${total} in all)`
  );
}

/**
 * The order volumes are made in: one of each pool in turn, the fullest pools first, as the fill's
 * round-robin does (workflows/fill.ts `interleave`), so the bare peer meets the same snapshots in
 * the same order.
 */
export function roundRobin<T extends { count: number }>(pools: T[]): T[] {
  const left = pools.map((p) => ({ p, n: p.count })).sort((a, b) => b.n - a.n);
  const out: T[] = [];
  while (left.some((x) => x.n > 0))
    for (const x of left)
      if (x.n > 0) {
        out.push(x.p);
        x.n--;
      }
  return out;
}

/**
 * The least wall time Cinder allows for the mix at a create delay: cinder-volume makes one volume
 * at a time from a given snapshot (its `<snapshot id>-delete_snapshot` lock is held through the
 * driver's create), so the largest pool's volumes take its count × the delay, one after another.
 */
export function serialFloorSeconds(pools: { count: number }[], delaySeconds: number): number {
  return Math.max(0, ...pools.map((p) => p.count)) * delaySeconds;
}

/** "GET /volumes/{id}": a Cinder call's kind, ids folded. */
export function callKind(method: string, path: string): string {
  const folded = path
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '{id}')
    .replace(/\b[0-9a-f]{32}\b/gi, '{project}');
  return `${method.toUpperCase()} ${folded}`;
}

/** Cinder calls counted by kind, through a client's `log` hook. */
export class CallCounter {
  private readonly counts = new Map<string, number>();

  /** Pass as `log` to cinderFromConfig. */
  readonly log = (e: { method: string; path: string }): void => {
    const k = callKind(e.method, e.path);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  };

  reset(): void {
    this.counts.clear();
  }

  /** The counts so far, a copy. */
  snapshot(): Map<string, number> {
    return new Map(this.counts);
  }
}

export const totalCalls = (calls: Map<string, number>): number =>
  [...calls.values()].reduce((a, b) => a + b, 0);

/** Adds up several counts (of rounds). */
export function addCalls(all: Map<string, number>[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of all) for (const [k, n] of m) out.set(k, (out.get(k) ?? 0) + n);
  return out;
}

/**
 * A side-by-side table of calls per volume by kind, the most frequent first:
 * `    POST /volumes                 1.00      1.00`.
 */
export function callsTable(
  columns: { name: string; calls: Map<string, number>; volumes: number }[],
): string[] {
  const kinds = new Map<string, number>();
  for (const c of columns) for (const [k, n] of c.calls) kinds.set(k, (kinds.get(k) ?? 0) + n);
  const order = [...kinds.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  const width = Math.max(24, ...order.map((k) => k.length));
  const cell = (c: (typeof columns)[number], k: string) =>
    ((c.calls.get(k) ?? 0) / Math.max(1, c.volumes)).toFixed(2).padStart(10);
  const head = `    ${'Cinder calls per volume'.padEnd(width)}${columns.map((c) => c.name.padStart(10)).join('')}`;
  const rows = order.map((k) => `    ${k.padEnd(width)}${columns.map((c) => cell(c, k)).join('')}`);
  const total = `    ${'all'.padEnd(width)}${columns
    .map((c) => (totalCalls(c.calls) / Math.max(1, c.volumes)).toFixed(2).padStart(10))
    .join('')}`;
  return [head, ...rows, total];
}

/** Parses BENCH_FILL: which of the modes to run, in the order given. */
export function fillModes(
  value: string | undefined,
  known: readonly string[],
  fallback: readonly string[],
): string[] {
  const modes = (value ?? fallback.join(','))
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean);
  for (const m of modes)
    if (!known.includes(m)) throw new Error(`BENCH_FILL=${value}: ${m} is not one of ${known}`);
  if (modes.length === 0) throw new Error(`BENCH_FILL=${value}: no mode`);
  return modes;
}
