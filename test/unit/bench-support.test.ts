import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alternate, spread, showSpread } from '../../bench/support/rounds';
import { splitLayout, cpuMode } from '../../bench/support/stack-cpus';
import { cpuBetween, perUnit, processCpuSeconds } from '../../bench/support/cpu-time';

test('spread: median of odd and even counts, min and max', () => {
  assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3, values: [3, 1, 2] });
  assert.equal(spread([4, 1, 2, 3]).median, 2.5);
  assert.equal(showSpread(spread([0.9, 1.1, 1])), '1.00 (0.90–1.10 over 3 rounds)');
  assert.throws(() => spread([]));
});

test('alternate: every step each round, the order reversed every other round', async () => {
  const seen: string[] = [];
  const out = await alternate(
    3,
    { a: async (r) => (seen.push(`a${r}`), r), b: async (r) => (seen.push(`b${r}`), r * 10) },
    () => undefined,
  );
  assert.deepEqual(seen, ['a0', 'b0', 'b1', 'a1', 'a2', 'b2']);
  assert.deepEqual(out, { a: [0, 1, 2], b: [0, 10, 20] });
});

test('split layout: the first half of the CPUs for the cloud, the rest for the orchestration', () => {
  assert.deepEqual(splitLayout(2), { cloud: '0', orchestration: '1' });
  assert.deepEqual(splitLayout(8), { cloud: '0-3', orchestration: '4-7' });
  assert.throws(() => splitLayout(1), /at least 2/);
  assert.equal(cpuMode({}), 'shared');
  assert.throws(() => cpuMode({ BENCH_CPUS: 'half' }), /shared or split/);
});

test('CPU time from /proc grows with work and is 0 for a process that is gone', () => {
  const before = processCpuSeconds(process.pid);
  const until = Date.now() + 150;
  while (Date.now() < until); // burn CPU
  assert.ok(processCpuSeconds(process.pid) > before);
  assert.equal(processCpuSeconds(2 ** 22 + 1), 0);
  const used = cpuBetween({ a: 1, b: 2 }, { a: 1.5, b: 2.02 });
  assert.equal(perUnit(used, 10), 'a 50.0 ms, b 2.0 ms = 52.0 ms');
});
