/**
 * Where the benches run: `BENCH_CPUS=shared` (the default) leaves every process on every core,
 * as the stack runs on this one machine; `BENCH_CPUS=split` gives the cloud (Cinder, Keystone,
 * Nova, MariaDB, RabbitMQ) its own CPUs and the orchestration (Temporal, PostgreSQL, the bench
 * with its workers and API) the others, as in a real cloud where Cinder runs on its own hosts.
 * The stack script says which process is which (`scripts/stack.sh pids`); util-linux `taskset`
 * pins them (every thread) and `restore()` gives them all the machine's CPUs back.
 */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

export type Role = 'cloud' | 'orchestration';

export interface StackProcess {
  role: Role;
  /** The stack's name for it: cinder-api, temporal, postgresql, mariadb, … */
  name: string;
  pid: number;
}

/** Every process of the stack now, as `scripts/stack.sh pids` lists them. */
export function stackProcesses(): StackProcess[] {
  const out = execFileSync('bash', ['scripts/stack.sh', 'pids'], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length === 3 && (f[0] === 'cloud' || f[0] === 'orchestration'))
    .map(([role, name, pid]) => ({ role: role as Role, name: name as string, pid: Number(pid) }));
}

export type CpuMode = 'shared' | 'split';

export function cpuMode(env: NodeJS.ProcessEnv = process.env): CpuMode {
  const mode = env.BENCH_CPUS ?? 'shared';
  if (mode !== 'shared' && mode !== 'split')
    throw new Error(`BENCH_CPUS=${mode}: expected shared or split`);
  return mode;
}

/** The CPU lists (taskset -c) of each role in split mode: the first half for the cloud. */
export function splitLayout(cpus = availableParallelism()): Record<Role, string> {
  if (cpus < 2) throw new Error('BENCH_CPUS=split needs at least 2 CPUs');
  const half = Math.floor(cpus / 2);
  const list = (from: number, to: number) => (from === to ? `${from}` : `${from}-${to}`);
  return { cloud: list(0, half - 1), orchestration: list(half, cpus - 1) };
}

/** Pins `pid` and all its threads to `cpus`; false when it is gone meanwhile. */
function pin(pid: number, cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface CpuPlacement {
  mode: CpuMode;
  /** One line for the bench's output: which role runs where. */
  describe: string;
  /** Every CPU back to every stack process and to the bench. */
  restore(): void;
}

/**
 * Applies BENCH_CPUS. In split mode the bench process itself goes to the orchestration CPUs
 * before it spawns anything: workers it starts inherit the affinity, as do PostgreSQL's new
 * backends (forked by its postmaster) and the cloud's new worker processes.
 */
export function placeProcesses(mode: CpuMode = cpuMode()): CpuPlacement {
  const all = `0-${availableParallelism() - 1}`;
  if (mode === 'shared')
    return {
      mode,
      describe: `BENCH_CPUS=shared: the cloud and the orchestration share CPUs ${all}`,
      restore: () => undefined,
    };
  const layout = splitLayout();
  const procs = stackProcesses();
  const names = (role: Role) => [
    ...new Set(procs.filter((p) => p.role === role).map((p) => p.name)),
  ];
  let pinned = 0;
  for (const p of procs) if (pin(p.pid, layout[p.role])) pinned++;
  pin(process.pid, layout.orchestration);
  return {
    mode,
    describe:
      `BENCH_CPUS=split: cloud on CPU ${layout.cloud} (${names('cloud').join(', ')}), ` +
      `orchestration on CPU ${layout.orchestration} (${names('orchestration').join(', ')}, ` +
      `the bench, its workers and API); ${pinned} processes pinned`,
    restore() {
      for (const p of stackProcesses()) pin(p.pid, all);
      pin(process.pid, all);
    },
  };
}

/**
 * Runs a bench with BENCH_CPUS applied (its placement printed first). Afterwards — and on Ctrl-C
 * or a kill, which must not leave the stack pinned — `undo` (e.g. the create delay back to 0)
 * and every CPU given back.
 */
export async function runPlaced(
  bench: () => Promise<void>,
  undo: () => void = () => undefined,
): Promise<void> {
  const placement = placeProcesses();
  console.log(placement.describe);
  const cleanUp = () => {
    undo();
    placement.restore();
  };
  const abort = () => {
    cleanUp();
    process.exit(130);
  };
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  try {
    await bench();
  } finally {
    process.off('SIGINT', abort);
    process.off('SIGTERM', abort);
    cleanUp();
  }
}
