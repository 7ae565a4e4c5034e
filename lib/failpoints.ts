/**
 * Fail points for crash tests: WARMPOOL_FAILPOINTS="name=N[,name=N]" makes the N-th hit of the
 * named point kill this process with SIGKILL, exactly where a real crash would hurt most. Only
 * tests set the variable; unset, a fail point costs one map lookup.
 */
const wanted = new Map<string, number>();
for (const part of (process.env.WARMPOOL_FAILPOINTS ?? '').split(',').filter(Boolean)) {
  const [name, n] = part.split('=');
  if (name) wanted.set(name.trim(), Number(n ?? 1));
}
const hits = new Map<string, number>();

export function failpoint(name: string): void {
  const at = wanted.get(name);
  if (at === undefined) return;
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  if (n === at) {
    process.stderr.write(`failpoint ${name} hit ${n}: SIGKILL\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}

/**
 * Delay points for tests: WARMPOOL_DELAYS="name=ms[,name=ms]" makes every pass through the named
 * point wait that long (a slow database or Cinder, as a loaded machine has them). Unset: free.
 */
const delays = new Map<string, number>();
for (const part of (process.env.WARMPOOL_DELAYS ?? '').split(',').filter(Boolean)) {
  const [name, ms] = part.split('=');
  if (name) delays.set(name.trim(), Number(ms ?? 0));
}

export async function delaypoint(name: string): Promise<void> {
  const ms = delays.get(name);
  if (ms) await new Promise((r) => setTimeout(r, ms));
}
