import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CallCounter,
  addCalls,
  callKind,
  callsTable,
  fillModes,
  mixEnv,
  roundRobin,
  serialFloorSeconds,
  spreadTarget,
  totalCalls,
} from '../../bench/fill/mix';
import { loadConfig } from '../../lib/config/load';

const OSES = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K'];
const sum = (pools: { count: number }[]) => pools.reduce((n, p) => n + p.count, 0);

test('spreadTarget: exactly n volumes over types × OSes, the counts one apart at most', () => {
  for (const n of [1, 2, 7, 22, 40, 199, 200, 500, 501]) {
    const mix = spreadTarget(n, ['sas', 'ssd'], OSES);
    assert.equal(sum(mix.pools), n, `n = ${n}`);
    const counts = mix.pools.map((p) => p.count);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `n = ${n}: ${counts}`);
    assert.ok(Math.min(...counts) >= 1, `n = ${n}: an empty pool`);
  }
  const m = spreadTarget(500, ['sas', 'ssd'], OSES);
  assert.deepEqual([m.types, m.numsMore, m.numsLess], [['sas', 'ssd'], 23, 22]);
  assert.deepEqual([m.more.length, m.less.length, m.pools.length], [8, 3, 22]);
  // Odd: one type takes all; fewer volumes than OSes: as many OSes as volumes.
  assert.deepEqual(spreadTarget(501, ['sas', 'ssd'], OSES).types, ['sas']);
  assert.deepEqual(spreadTarget(2, ['sas', 'ssd'], OSES).pools, [
    { type: 'sas', os: 'A', count: 1 },
    { type: 'ssd', os: 'A', count: 1 },
  ]);
  // Divides evenly: every OS in the "more" list.
  assert.deepEqual(spreadTarget(44, ['sas', 'ssd'], OSES).less, []);
  assert.throws(() => spreadTarget(0, ['sas'], OSES));
  assert.throws(() => spreadTarget(3, [], OSES));
});

test('mixEnv: the configuration makes exactly the mix as its targets', () => {
  const mix = spreadTarget(
    500,
    ['sas', 'ssd'],
    ['Debian8 64bit', 'Debian9 64bit', 'Centos7.3 64bit'],
  );
  const config = loadConfig({
    env: { ...mixEnv(mix), POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: 'az-1' },
  });
  assert.equal(
    config.pool.targets.reduce((n, t) => n + t.target, 0),
    500,
  );
  for (const p of mix.pools)
    assert.equal(
      config.pool.targets.find((t) => t.volumeType === p.type && t.os === p.os)?.target,
      p.count,
    );
});

test('roundRobin: one of each pool in turn, the fullest first', () => {
  const order = roundRobin([
    { name: 'a', count: 1 },
    { name: 'b', count: 3 },
    { name: 'c', count: 2 },
  ]).map((p) => p.name);
  assert.deepEqual(order, ['b', 'c', 'a', 'b', 'c', 'b']);
});

test('serialFloorSeconds: the largest pool one create after another', () => {
  assert.equal(serialFloorSeconds(spreadTarget(200, ['sas', 'ssd'], OSES).pools, 30), 300);
  assert.equal(serialFloorSeconds([{ count: 4 }], 0), 0);
});

test('call counting: kinds with ids folded, added up and tabled per volume', () => {
  assert.equal(
    callKind('get', '/volumes/0b7c1a2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b'),
    'GET /volumes/{id}',
  );
  assert.equal(
    callKind('GET', '/os-quota-sets/9f1c2b7e4d5a4e0b8c3d6f7a1b2c3d4e'),
    'GET /os-quota-sets/{project}',
  );
  assert.equal(callKind('GET', '/volumes/detail'), 'GET /volumes/detail');
  const c = new CallCounter();
  c.log({ method: 'POST', path: '/volumes' });
  c.log({ method: 'GET', path: '/volumes/0b7c1a2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b' });
  c.log({ method: 'GET', path: '/volumes/1b7c1a2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b' });
  const first = c.snapshot();
  c.reset();
  assert.equal(totalCalls(c.snapshot()), 0);
  assert.equal(totalCalls(first), 3);
  const both = addCalls([first, first]);
  assert.equal(both.get('GET /volumes/{id}'), 4);
  const table = callsTable([
    { name: 'fill', calls: both, volumes: 2 },
    { name: 'bare', calls: new Map([['POST /volumes', 2]]), volumes: 2 },
  ]);
  assert.ok(
    table.some((l) => /GET \/volumes\/\{id\}\s+2\.00\s+0\.00$/.test(l)),
    table.join('\n'),
  );
  assert.match(table[table.length - 1] as string, /all\s+3\.00\s+1\.00$/);
});

test('fillModes: the default, a list, and an unknown mode refused', () => {
  const known = ['scale', 'delayed', 'intervals'];
  assert.deepEqual(fillModes(undefined, known, ['scale', 'delayed']), ['scale', 'delayed']);
  assert.deepEqual(fillModes('delayed, scale', known, []), ['delayed', 'scale']);
  assert.throws(() => fillModes('fast', known, []), /not one of/);
  assert.throws(() => fillModes(',', known, []), /no mode/);
});
