/** The fill's arithmetic (planFill): targets, the quota's room, what is drained and recycled. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  demandRaises,
  planFill,
  type PlanInput,
  type PlanRow,
  type PlanSettings,
  type PlanTarget,
} from '../../activities/fill/plan';
import type { ResolvedImage } from '../../contracts/fill';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const DEB = 'Debian8 64bit';
const CENT = 'CentOS 7';

const image = (
  os: string,
  type = 'sas',
  snapshotId = `snap-${type}-${os}`,
  zone = '',
): ResolvedImage => ({
  os,
  type,
  zone,
  snapshotId,
  snapshotName: `${os}-v2`,
  version: '2',
  volumeType: `ceph-${type}`,
  sizeGb: 20,
});

let ids = 0;
/** A row `ageMin` minutes old, of the image's current snapshot unless told otherwise. */
function row(
  img: ResolvedImage,
  status: PlanRow['status'],
  ageMin = 60,
  snapshotId = img.snapshotId,
): PlanRow {
  const at = new Date(NOW - ageMin * 60_000);
  return {
    id: ++ids,
    os: img.os,
    type: img.type,
    zone: img.zone,
    snapshotId,
    status,
    createdAt: at,
    readyAt: status === 'available' ? at : null,
  };
}

const floorOf = (img: ResolvedImage, floor: number, target = floor): PlanTarget => ({
  os: img.os,
  volumeType: img.type,
  zone: img.zone,
  floor,
  target,
  why: target > floor ? 'demand' : 'floor',
});

function settings(
  policy: Partial<PlanSettings['pool']['policy']> = {},
  targets: PlanSettings['pool']['targets'] = [
    { os: DEB, volumeType: 'sas', zone: '', target: 0, cap: 0 },
    { os: CENT, volumeType: 'sas', zone: '', target: 0, cap: 0 },
  ],
): PlanSettings {
  return {
    concurrency: 3,
    pool: {
      targets,
      drainPerRun: 3,
      createIntervalSeconds: 2,
      volumeNamePrefix: 'wp',
      policy: { quotaMargin: 2, recyclePerRun: 2, ...policy },
    },
  };
}

const plan = (input: Partial<PlanInput> & Pick<PlanInput, 'images'>, s = settings()) =>
  planFill({ rows: [], targets: [], quotaRoom: Infinity, now: NOW, ...input }, s);

const missing = (p: ReturnType<typeof plan>) =>
  Object.fromEntries(p.orders.map((o) => [o.os, o.missing]));

describe('planFill', () => {
  const deb = image(DEB);
  const cent = image(CENT);

  test('missing = target − current stock (creating + available of the current snapshot)', () => {
    const p = plan({
      images: [deb],
      targets: [floorOf(deb, 5)],
      rows: [
        row(deb, 'available'),
        row(deb, 'creating'),
        row(deb, 'reserved'), // a claim's: not stock
        row(deb, 'deleting'),
        row(deb, 'available', 60, 'snap-old'), // stale: not stock
      ],
    });
    assert.equal(p.orders.length, 1);
    assert.deepEqual(
      { ...p.orders[0] },
      { ...deb, missing: 3 },
      'the order carries the current image and its real volume type',
    );
    assert.deepEqual(p.targets, [{ type: 'sas', os: DEB, floor: 5, target: 5, why: 'floor' }]);
  });

  test('a pool at or above its target orders nothing; an unconfigured image has target 0', () => {
    const p = plan({
      images: [deb, cent],
      targets: [floorOf(deb, 1)],
      rows: [row(deb, 'available')],
    });
    assert.deepEqual(p.orders, []);
    assert.equal(p.targets?.[1]?.why, 'not configured');
  });

  test('demand above the floor is capped by the quota room left after every floor', () => {
    // Room 4: the floors take 2 + 1, one volume is left for demand, the first pool gets it.
    const p = plan({
      images: [deb, cent],
      targets: [floorOf(deb, 2, 5), floorOf(cent, 1, 3)],
      quotaRoom: 4,
    });
    assert.deepEqual(missing(p), { [DEB]: 3, [CENT]: 1 });
    assert.deepEqual(
      p.targets?.map((t) => [t.target, t.why]),
      [
        [3, 'quota (leaves 2 free): demand'],
        [1, 'quota (leaves 2 free): demand'],
      ],
    );
  });

  test('floors are kept whatever the quota; unlimited room gives demand its full target', () => {
    const tight = plan({ images: [deb], targets: [floorOf(deb, 2, 4)], quotaRoom: 0 });
    assert.deepEqual(missing(tight), { [DEB]: 2 });
    const free = plan({ images: [deb], targets: [floorOf(deb, 2, 4)], quotaRoom: Infinity });
    assert.deepEqual(missing(free), { [DEB]: 4 });
    assert.equal(free.targets?.[0]?.why, 'demand');
  });

  test('stock already above the floor counts against the room', () => {
    // 3 in stock, floor 2, target 6, room 1: one more, not four.
    const p = plan({
      images: [deb],
      targets: [floorOf(deb, 2, 6)],
      rows: [row(deb, 'available'), row(deb, 'available'), row(deb, 'creating')],
      quotaRoom: 1,
    });
    assert.deepEqual(missing(p), { [DEB]: 1 });
    assert.equal(p.targets?.[0]?.target, 4);
  });

  test('the quota is read only when demand raises a target of a pool with an image', () => {
    assert.equal(demandRaises([deb], [floorOf(deb, 2)]), false);
    assert.equal(demandRaises([deb], [floorOf(deb, 2, 3)]), true);
    assert.equal(demandRaises([deb], [floorOf(cent, 2, 3)]), false, 'no image, no fill');
  });

  test('stale stock is drained oldest first, with stock of pairs no longer configured, bounded per run', () => {
    const gone = image('Windows 2003');
    const stale = [
      row(deb, 'available', 10, 'snap-old'),
      row(deb, 'available', 30, 'snap-old'),
      row(deb, 'reserved', 40, 'snap-old'), // a claim's: never drained here
      row(gone, 'available', 20),
      row(deb, 'available', 50, 'snap-older'),
    ];
    const p = plan({ images: [deb], targets: [floorOf(deb, 0)], rows: stale });
    assert.equal(p.staleTotal, 4);
    const [, d30, , g20, d50] = stale.map((r) => r.id);
    assert.deepEqual(p.drain, [d50, d30, g20], 'the oldest three of four (drainPerRun 3)');
  });

  test('above target: the oldest idle volumes go after the stale ones, the newest stay', () => {
    const rows = [
      row(deb, 'available', 5),
      row(deb, 'available', 50),
      row(deb, 'available', 30),
      row(deb, 'creating', 1),
      row(deb, 'available', 70, 'snap-old'),
    ];
    // Four in stock (the creating one counts), target 2: two go.
    const p = plan({ images: [deb], targets: [floorOf(deb, 2)], rows });
    const [, a50, a30, , stale] = rows.map((r) => r.id);
    assert.equal(p.excessTotal, 2);
    assert.deepEqual(p.drain, [stale, a50, a30]);
    assert.deepEqual(p.orders, []);
  });

  test('idle past max_idle_minute is recycled at the floor: drained and replaced, its own bound', () => {
    const rows = [
      row(deb, 'available', 300),
      row(deb, 'available', 200),
      row(deb, 'available', 150),
      row(deb, 'available', 10),
    ];
    const p = plan(
      { images: [deb], targets: [floorOf(deb, 4)], rows },
      settings({ maxIdleMinutes: 120, recyclePerRun: 2 }),
    );
    const [a300, a200] = rows.map((r) => r.id);
    assert.equal(p.recycled, 2);
    assert.deepEqual(p.drain, [a300, a200]);
    assert.deepEqual(missing(p), { [DEB]: 2 }, 'their replacements are made this run');
  });

  test('no recycling below the floor, nor without max_idle_minute', () => {
    const rows = [row(deb, 'available', 300)];
    const short = plan(
      { images: [deb], targets: [floorOf(deb, 3)], rows },
      settings({ maxIdleMinutes: 120 }),
    );
    assert.deepEqual([short.recycled, short.drain, missing(short)], [0, [], { [DEB]: 2 }]);
    const never = plan({ images: [deb], targets: [floorOf(deb, 1)], rows });
    assert.deepEqual([never.recycled, never.drain], [0, []]);
  });

  describe('zones: a pool is (type, OS, zone)', () => {
    // One OS in two zones, each with its own snapshot (a volume lives in its snapshot's zone).
    const az1 = image(DEB, 'sas', 'snap-az-1', 'az-1');
    const az2 = image(DEB, 'sas', 'snap-az-2', 'az-2');
    const zoned = settings({}, [
      { os: DEB, volumeType: 'sas', zone: 'az-1', target: 0, cap: 0 },
      { os: DEB, volumeType: 'sas', zone: 'az-2', target: 0, cap: 0 },
    ]);

    test('two zones of one (type, OS) each get their own order, from their own snapshot', () => {
      const p = plan(
        {
          images: [az1, az2],
          targets: [floorOf(az1, 3), floorOf(az2, 2)],
          rows: [row(az1, 'available'), row(az1, 'creating')],
        },
        zoned,
      );
      assert.deepEqual(
        p.orders.map((o) => [o.zone, o.snapshotId, o.missing]),
        [
          ['az-1', 'snap-az-1', 1],
          ['az-2', 'snap-az-2', 2],
        ],
      );
      assert.deepEqual(p.targets, [
        { type: 'sas', os: DEB, zone: 'az-1', floor: 3, target: 3, why: 'floor' },
        { type: 'sas', os: DEB, zone: 'az-2', floor: 2, target: 2, why: 'floor' },
      ]);
      assert.deepEqual(p.drain, []);
    });

    test('rows of one zone never count for the other, even of the same snapshot', () => {
      // az-2's image has az-1's snapshot id: only the zone tells the pools apart.
      const twin = image(DEB, 'sas', 'snap-az-1', 'az-2');
      const full = [row(az1, 'available'), row(az1, 'available'), row(az1, 'available')];
      const p = plan(
        { images: [az1, twin], targets: [floorOf(az1, 3), floorOf(twin, 3)], rows: full },
        zoned,
      );
      assert.deepEqual(
        p.orders.map((o) => [o.zone, o.missing]),
        [['az-2', 3]],
        'az-1 is full, az-2 is empty',
      );
      // Nor does az-2's lower target trim az-1's stock, nor its snapshot make az-1's stale.
      const low = plan(
        { images: [az1, az2], targets: [floorOf(az1, 3), floorOf(az2, 0)], rows: full },
        zoned,
      );
      assert.deepEqual([low.drain, low.staleTotal, low.excessTotal], [[], 0, 0]);
    });

    test('stock of a zone no longer configured is drained; the zone-less pool is not a zone', () => {
      const gone = image(DEB, 'sas', 'snap-az-1', 'az-3');
      const plain = image(DEB); // zone '': not one of the configured zones
      const rows = [
        row(az1, 'available', 5),
        row(gone, 'available', 20),
        row(plain, 'available', 10),
      ];
      const p = plan({ images: [az1], targets: [floorOf(az1, 1)], rows }, zoned);
      const [, g20, p10] = rows.map((r) => r.id);
      assert.deepEqual(p.drain, [g20, p10]);
      assert.equal(p.staleTotal, 2);
      assert.deepEqual(p.orders, []);
    });

    test("demand of one zone's pool does not raise another zone's", () => {
      assert.equal(demandRaises([az1], [floorOf(az2, 2, 5)]), false);
      assert.equal(demandRaises([az2], [floorOf(az2, 2, 5)]), true);
    });
  });

  test('the run settings come from the configuration', () => {
    assert.deepEqual(plan({ images: [] }).settings, {
      concurrency: 3,
      createIntervalSeconds: 2,
      drainPerRun: 3,
      namePrefix: 'wp',
    });
  });
});
