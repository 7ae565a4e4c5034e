/**
 * CPU time of the processes a claim runs through, from /proc (what the kernel charged them):
 * user + system of each live process, plus what its reaped children used (cutime + cstime), so
 * PostgreSQL's backends that ended meanwhile still count through their postmaster.
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;

/**
 * CPU seconds of one process and its reaped children; 0 once it is gone. For the bench's own
 * process use ownCpuSeconds: its reaped children include every helper command it ran.
 */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) in parentheses: state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((i) => Number(fields[i]));
    return ((utime ?? 0) + (stime ?? 0) + (cutime ?? 0) + (cstime ?? 0)) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** CPU seconds of this process's own threads (not of the commands it ran). */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** Named groups of processes; each group's pids are listed anew at every reading. */
export type CpuGroups = Record<string, (() => number[]) | 'self'>;

export type CpuReading = Record<string, number>;

export function readCpu(groups: CpuGroups): CpuReading {
  const out: CpuReading = {};
  for (const [name, pids] of Object.entries(groups))
    out[name] =
      pids === 'self' ? ownCpuSeconds() : pids().reduce((n, pid) => n + processCpuSeconds(pid), 0);
  return out;
}

/** CPU seconds each group used between two readings (a group's processes may come and go). */
export function cpuBetween(before: CpuReading, after: CpuReading): CpuReading {
  const out: CpuReading = {};
  for (const name of Object.keys(after))
    out[name] = Math.max(0, (after[name] ?? 0) - (before[name] ?? 0));
  return out;
}

/** "temporal 12.3 ms, postgresql 4.1 ms, … = 30.2 ms" per unit of work. */
export function perUnit(used: CpuReading, units: number, groups = Object.keys(used)): string {
  const ms = (s: number) => `${((s * 1000) / units).toFixed(1)} ms`;
  const total = groups.reduce((n, g) => n + (used[g] ?? 0), 0);
  return `${groups.map((g) => `${g} ${ms(used[g] ?? 0)}`).join(', ')} = ${ms(total)}`;
}

export const sumOf = (used: CpuReading, groups: string[]) =>
  groups.reduce((n, g) => n + (used[g] ?? 0), 0);
