/** Who serves a task queue, from the server's poller list: the rules, without a server. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  POLL_FRESH_MS,
  describeServing,
  livePollers,
  pollersFor,
  served,
  type Poller,
  type QueueWorkers,
} from '../../lib/temporal/pollers';

const now = new Date('2026-12-01T12:00:00Z');
const ago = (ms: number) => new Date(now.getTime() - ms);
const poller = (p: Partial<Poller>): Poller => ({
  identity: '1@host',
  kind: 'workflow',
  buildId: 'b1',
  lastSeen: ago(1000),
  ...p,
});

describe('livePollers', () => {
  test('a poll older than one long poll (plus margin) is a worker gone', () => {
    const fresh = poller({ lastSeen: ago(POLL_FRESH_MS - 1) });
    const stale = poller({ identity: '2@host', lastSeen: ago(POLL_FRESH_MS + 1) });
    assert.deepEqual(livePollers([fresh, stale], [], now), [fresh]);
  });

  test('a clean stop counts at once; a poll after it (a restart, same identity) is live', () => {
    const stoppedAt = ago(10_000);
    const last = poller({ lastSeen: new Date(stoppedAt.getTime() + 50) }); // its polls ended
    assert.deepEqual(livePollers([last], [{ identity: '1@host', at: stoppedAt }], now), []);
    const restarted = poller({ lastSeen: ago(1000) });
    assert.deepEqual(livePollers([restarted], [{ identity: '1@host', at: stoppedAt }], now), [
      restarted,
    ]);
    const other = poller({ identity: '2@host', lastSeen: new Date(stoppedAt.getTime() + 50) });
    assert.deepEqual(livePollers([other], [{ identity: '1@host', at: stoppedAt }], now), [other]);
  });
});

describe('serving a build', () => {
  const queue = (live: Poller[], currentBuild: string | null = 'b1'): QueueWorkers => ({
    taskQueue: 'tq',
    currentBuild,
    live,
    lastPoll: ago(30_000),
  });

  test('both kinds of tasks must be polled, by a worker of the build asked for', () => {
    const both = [poller({}), poller({ kind: 'activity' })];
    assert.equal(served(queue(both)), true);
    assert.equal(
      describeServing(queue(both), undefined, now),
      '1 worker(s) of build b1 poll task queue tq',
    );
    assert.equal(served(queue([poller({})])), false);
    assert.equal(
      describeServing(queue([poller({})]), undefined, now),
      'NO WORKER of build b1 takes activity tasks from task queue tq (last seen 30 s ago)',
    );
    // A pinned run of build b0: workers of b1 do not serve it.
    assert.deepEqual(pollersFor(queue(both), 'b0'), { workflow: 0, activity: 0 });
    assert.equal(
      describeServing(queue(both), 'b0', now),
      'NO WORKER of build b0 polls task queue tq (last seen 30 s ago); workers of build b1 do',
    );
  });

  test('an unversioned queue: any worker serves new runs; none at all is said plainly', () => {
    const plain = [poller({ buildId: null }), poller({ buildId: null, kind: 'activity' })];
    assert.equal(served(queue(plain, null)), true);
    assert.equal(
      describeServing(
        { taskQueue: 'tq', currentBuild: null, live: [], lastPoll: null },
        undefined,
        now,
      ),
      'NO WORKER polls task queue tq (none in the last minutes)',
    );
  });
});
