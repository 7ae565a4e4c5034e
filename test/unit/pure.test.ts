/** Pure functions the fill and the operator rely on: pool levels and the round-robin order. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { poolLevels } from '../../lib/pool-state/levels';
import { demandTarget } from '../../lib/pool-state/demand';
import { interleave } from '../../workflows/fill';
import type { CreateOrder } from '../../contracts/fill';

describe('poolLevels', () => {
  const targets = [
    { volumeType: 'sas', os: 'Debian8 64bit', zone: '', target: 5 },
    { volumeType: 'ssd', os: 'Debian8 64bit', zone: '', target: 2 },
  ];

  test('current stock counts, stale stock is apart, missing = target − creating − available', () => {
    const [sas, ssd] = poolLevels(targets, [
      { type: 'sas', os: 'Debian8 64bit', zone: '', status: 'available', current: true, count: 2 },
      { type: 'sas', os: 'Debian8 64bit', zone: '', status: 'creating', current: true, count: 1 },
      { type: 'sas', os: 'Debian8 64bit', zone: '', status: 'available', current: false, count: 4 },
      { type: 'sas', os: 'Debian8 64bit', zone: '', status: 'reserved', current: false, count: 1 },
      { type: 'ssd', os: 'Debian8 64bit', zone: '', status: 'available', current: true, count: 3 },
    ]);
    assert.deepEqual(
      {
        available: sas?.available,
        creating: sas?.creating,
        stale: sas?.stale,
        reserved: sas?.reserved,
        missing: sas?.missing,
      },
      { available: 2, creating: 1, stale: 4, reserved: 1, missing: 2 },
    );
    assert.equal(ssd?.missing, 0, 'above target is never negative');
  });

  test('stock of a pair no longer configured shows with target 0, sorted by type then OS', () => {
    const levels = poolLevels(targets, [
      { type: 'hdd', os: 'CentOS 7', zone: '', status: 'available', current: true, count: 1 },
    ]);
    assert.deepEqual(
      levels.map((l) => [l.volumeType, l.os, l.target]),
      [
        ['hdd', 'CentOS 7', 0],
        ['sas', 'Debian8 64bit', 5],
        ['ssd', 'Debian8 64bit', 2],
      ],
    );
  });
});

describe('poolLevels per zone', () => {
  const deb = 'Debian8 64bit';
  const zoned = [
    { volumeType: 'sas', os: deb, zone: 'az-2', target: 2 },
    { volumeType: 'sas', os: deb, zone: 'az-1', target: 5 },
  ];

  test('each zone of one (type, OS) is its own level: its own stock, its own missing', () => {
    const levels = poolLevels(zoned, [
      { type: 'sas', os: deb, zone: 'az-1', status: 'available', current: true, count: 4 },
      { type: 'sas', os: deb, zone: 'az-1', status: 'reserved', current: true, count: 1 },
      { type: 'sas', os: deb, zone: 'az-2', status: 'available', current: false, count: 3 },
    ]);
    assert.deepEqual(
      levels.map((l) => [l.zone, l.target, l.available, l.reserved, l.stale, l.missing]),
      [
        ['az-1', 5, 4, 1, 0, 1],
        ['az-2', 2, 0, 0, 3, 2],
      ],
      'sorted by zone after type and OS; no count leaks into the other zone',
    );
  });

  test('stock of a zone no longer configured shows apart with target 0', () => {
    const levels = poolLevels(zoned, [
      { type: 'sas', os: deb, zone: 'az-3', status: 'available', current: true, count: 2 },
      { type: 'sas', os: deb, zone: '', status: 'available', current: true, count: 1 },
    ]);
    assert.deepEqual(
      levels.map((l) => [l.zone, l.target, l.available, l.why]),
      [
        ['', 0, 1, 'not configured'],
        ['az-1', 5, 0, ''],
        ['az-2', 2, 0, ''],
        ['az-3', 0, 2, 'not configured'],
      ],
    );
  });
});

describe('interleave', () => {
  const order = (os: string, missing: number): CreateOrder => ({
    os,
    type: 'sas',
    snapshotId: `snap-${os}`,
    volumeType: 'sas',
    sizeGb: 1,
    missing,
  });

  test('one of each pool in turn, the emptiest first, every missing volume once', () => {
    const out = interleave([order('a', 1), order('b', 3), order('c', 2)]);
    assert.deepEqual(
      out.map((o) => o.os),
      ['b', 'c', 'a', 'b', 'c', 'b'],
    );
  });

  test('nothing missing: nothing to create', () => {
    assert.deepEqual(interleave([order('a', 0)]), []);
  });
});

describe('demandTarget', () => {
  const pool = { volumeType: 'sas', os: 'Debian8 64bit', zone: '', target: 2, cap: 8 };
  const demand = { enabled: true, windowMinutes: 60, safetyFactor: 2, headroom: 1 };

  test('a burst of claims raises the target: ceil(rate × lead × safety) + headroom', () => {
    // 360 claims an hour = 0.1/s; a 30 s refill → 3 claims per refill, × 2 = 6, + 1 = 7.
    const t = demandTarget(pool, demand, 360, 30);
    assert.equal(t.target, 7);
    assert.equal(t.floor, 2);
    assert.match(t.why, /^demand \(360 claims in 60 min × lead 30 s × 2 \+ 1 = 7\)$/);
  });

  test('no claims: the floor (headroom alone never goes below it)', () => {
    const t = demandTarget(pool, demand, 0, 30);
    assert.equal(t.target, 2);
    assert.match(t.why, /^floor/);
  });

  test('the cap holds however big the burst', () => {
    const t = demandTarget(pool, demand, 100_000, 600);
    assert.equal(t.target, 8);
    assert.match(t.why, /^cap/);
  });

  test('demand targets off: the floor', () => {
    assert.equal(demandTarget(pool, { ...demand, enabled: false }, 360, 30).target, 2);
  });
});
