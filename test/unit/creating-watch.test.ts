/**
 * CreatingVolumes: waiters on volumes of one project share one `creating` list while it is
 * fresh; a list older than the waiter's volume is never trusted; a failed list sends the waiter
 * to fetch its volume itself. (The claim and fill waits use it against the real Cinder: see the
 * claim tests' call counts.)
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CreatingVolumes } from '../../lib/cinder/creating';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function lister(creating: string[], delayMs = 20) {
  const calls: number[] = [];
  return {
    calls,
    list: async () => {
      calls.push(Date.now());
      await sleep(delayMs);
      return creating.map((id) => ({ id }));
    },
  };
}

describe('CreatingVolumes', () => {
  test('twenty waiters of one project: one list answers them all', async () => {
    const watch = new CreatingVolumes();
    const { calls, list } = lister(['a', 'b']);
    const since = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        watch.stillCreating('p1', i % 2 ? 'a' : 'gone', { notBefore: since, freshMs: 500 }, list),
      ),
    );
    assert.equal(calls.length, 1);
    assert.deepEqual(
      answers,
      Array.from({ length: 20 }, (_, i) => i % 2 === 1),
    );
  });

  test('each project its own list; a stale one is listed again', async () => {
    const watch = new CreatingVolumes();
    const { calls, list } = lister(['a']);
    const since = Date.now();
    await watch.stillCreating('p1', 'a', { notBefore: since, freshMs: 50 }, list);
    await watch.stillCreating('p2', 'a', { notBefore: since, freshMs: 50 }, list);
    assert.equal(calls.length, 2);
    await watch.stillCreating('p1', 'a', { notBefore: since, freshMs: 50 }, list);
    assert.equal(calls.length, 2, 'fresh: reused');
    await sleep(80);
    await watch.stillCreating('p1', 'a', { notBefore: since, freshMs: 50 }, list);
    assert.equal(calls.length, 3, 'stale: listed again');
  });

  test('a list started before the volume existed is never trusted for it', async () => {
    const watch = new CreatingVolumes();
    const { calls, list } = lister(['old']);
    await watch.stillCreating('p1', 'old', { notBefore: Date.now(), freshMs: 10_000 }, list);
    await sleep(5);
    const made = Date.now();
    await watch.stillCreating('p1', 'new', { notBefore: made, freshMs: 10_000 }, list);
    assert.equal(calls.length, 2);
    assert.ok((calls[1] as number) >= made);
  });

  test('a failed list: "not known to be creating", so the waiter fetches its volume', async () => {
    const watch = new CreatingVolumes();
    const failing = async (): Promise<{ id: string }[]> => {
      throw new Error('Cinder unreachable');
    };
    assert.equal(
      await watch.stillCreating('p1', 'a', { notBefore: Date.now(), freshMs: 500 }, failing),
      false,
    );
  });
});
