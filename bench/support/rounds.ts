/**
 * Figures that hold still on a noisy machine: the subject and its peer measured in alternating
 * rounds (subject, peer, subject, peer, …; the order flips every round so neither always runs
 * warm), and a ratio reported as the median over the rounds with its spread (min–max).
 */

export interface Spread {
  median: number;
  min: number;
  max: number;
  values: number[];
}

export function spread(values: number[]): Spread {
  if (values.length === 0) throw new Error('no values');
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median =
    s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { median, min: s[0] as number, max: s[s.length - 1] as number, values };
}

/** "0.95 (0.91–0.98 over 3 rounds)" */
export function showSpread(sp: Spread, digits = 2, unit = ''): string {
  const f = (v: number) => `${v.toFixed(digits)}${unit}`;
  return `${f(sp.median)} (${f(sp.min)}–${f(sp.max)} over ${sp.values.length} rounds)`;
}

/** The number of rounds: BENCH_ROUNDS, at least 3. */
export function roundCount(env: NodeJS.ProcessEnv = process.env, fallback = 3): number {
  const n = Number(env.BENCH_ROUNDS ?? fallback);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`BENCH_ROUNDS=${env.BENCH_ROUNDS}: a positive integer`);
  return n;
}

/**
 * Runs `rounds` rounds of every step in `steps`, the order reversed every other round; returns
 * each step's results in round order.
 */
export async function alternate<T>(
  rounds: number,
  steps: Record<string, (round: number) => Promise<T>>,
  log: (line: string) => void = console.log,
): Promise<Record<string, T[]>> {
  const names = Object.keys(steps);
  const out: Record<string, T[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? names : [...names].reverse();
    log(`-- round ${r + 1} of ${rounds}: ${order.join(', ')}`);
    for (const name of order)
      (out[name] as T[]).push(await (steps[name] as (round: number) => Promise<T>)(r));
  }
  return out;
}
