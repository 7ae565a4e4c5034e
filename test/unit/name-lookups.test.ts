/** NameLookups: the reservation's early name lookup, taken by the hand-off at most once. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LOOKUP_FRESH_MS, NameLookups } from '../../activities/claim/name-lookups';

describe('NameLookups', () => {
  test('a started lookup is taken once, by its claim only', async () => {
    const lookups = new NameLookups();
    let calls = 0;
    lookups.start('claim-a', async () => {
      calls += 1;
      return { volumeId: 'vol-1', status: 'available' };
    });
    assert.equal(lookups.take('claim-b'), undefined);
    assert.deepEqual(await lookups.take('claim-a'), { volumeId: 'vol-1', status: 'available' });
    assert.equal(lookups.take('claim-a'), undefined, 'a second take looks the name up itself');
    assert.equal(calls, 1);
    assert.equal(lookups.size, 0);
  });

  test('a re-run reservation replaces the earlier lookup', async () => {
    const lookups = new NameLookups();
    lookups.start('claim-a', async () => null);
    lookups.start('claim-a', async () => ({ volumeId: 'vol-2', status: 'creating' }));
    assert.equal(lookups.size, 1);
    assert.deepEqual(await lookups.take('claim-a'), { volumeId: 'vol-2', status: 'creating' });
  });

  test('a failed lookup is no unhandled rejection; the taker sees the failure', async () => {
    const lookups = new NameLookups();
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown) => unhandled.push(r);
    process.on('unhandledRejection', onUnhandled);
    try {
      lookups.start('claim-a', () => Promise.reject(new Error('Cinder said 503')));
      lookups.start('claim-b', () => Promise.reject(new Error('never taken')));
      await new Promise((r) => setTimeout(r, 20));
      await assert.rejects(lookups.take('claim-a') as Promise<unknown>, /503/);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('a lookup older than LOOKUP_FRESH_MS is not taken', (t) => {
    t.mock.timers.enable({ apis: ['Date', 'setTimeout'] });
    const lookups = new NameLookups();
    lookups.start('claim-a', async () => null);
    t.mock.timers.tick(LOOKUP_FRESH_MS + 1);
    assert.equal(lookups.take('claim-a'), undefined);
    assert.equal(lookups.size, 0);
  });
});
