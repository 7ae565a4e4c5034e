import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentStarts } from '../../api/admission';

test('recent starts: counted within the window, forgotten after it', () => {
  let now = 1_000;
  const recent = new RecentStarts(10_000, () => now);
  assert.equal(recent.count(), 0);
  for (let i = 0; i < 1000; i++) recent.add();
  assert.equal(recent.count(), 1000, 'a burst within one instant counts in full at once');
  now += 6_000;
  recent.add();
  assert.equal(recent.count(), 1001);
  now += 4_001; // the burst is 10,001 ms old, the last start 4,001 ms
  assert.equal(recent.count(), 1);
  now += 6_000;
  assert.equal(recent.count(), 0);
});
