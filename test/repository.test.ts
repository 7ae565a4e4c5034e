/** The pool repository against the real PostgreSQL of the stack. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { createDb, migrate, STATEMENT_TIMEOUT_MS, type Db } from '../lib/pool-state/db';
import { LOCK_SESSIONS } from '../activities/guard';
import { HandOffRows } from '../lib/pool-state/handoff';
import { OsImageRepository, PoolRepository } from '../lib/pool-state/repository';
import { config, unique } from './support/env';

let db: Db;
let repo: PoolRepository;
// Each test run works on its own pool type, so runs and other suites never see each other's rows.
const type = unique('repo-type');
/** The pool of one OS: rows this suite inserts have no zone (''), the single-zone pool. */
const pool = (os: string) => ({ type, os, zone: '' });

before(async () => {
  db = createDb(config.databaseUrl, 40);
  await migrate(config.databaseUrl); // idempotent: the stack already migrated
  repo = new PoolRepository(db);
});

after(async () => {
  await db.query(`DELETE FROM pool_volumes WHERE type = $1`, [type]);
  await db.query(`DELETE FROM os_images WHERE type = $1`, [type]);
  await db.end();
});

async function stock(os: string, n: number, snapshotId = 'snap-1'): Promise<void> {
  for (let i = 0; i < n; i++) {
    await repo.upsert({
      name: unique('vol'),
      type,
      os,
      snapshotId,
      volumeId: crypto.randomUUID(),
      status: 'available',
      sizeGb: 1,
    });
  }
}

describe('pool repository (real PostgreSQL)', () => {
  test('N concurrent reservers on M rows get min(N, M) distinct rows', async () => {
    const os = unique('os');
    const M = 7;
    const N = 30;
    await stock(os, M);
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => repo.reserve(pool(os), `claim-${os}-${i}`)),
    );
    const won = results.filter((r) => r !== null);
    assert.equal(won.length, Math.min(N, M));
    assert.equal(new Set(won.map((r) => r.id)).size, won.length, 'a row was handed out twice');
    for (const r of won) assert.equal(r.status, 'reserved');
    const counts = (await repo.countByTypeOsStatus()).filter((c) => c.type === type && c.os === os);
    assert.deepEqual(
      counts.map((c) => [c.status, c.count]),
      [['reserved', M]],
    );
  });

  test('reserving again for the same claim returns the same row (idempotent retry)', async () => {
    const os = unique('os');
    await stock(os, 3);
    const first = await repo.reserve(pool(os), `claim-${os}`);
    const again = await repo.reserve(pool(os), `claim-${os}`);
    assert.ok(first && again);
    assert.equal(again.id, first.id);
  });

  test('the hand-off fence: only the holder takes the row, each take a new epoch, a stale epoch changes nothing', async () => {
    const os = unique('os');
    await stock(os, 1);
    const r = await repo.reserve(pool(os), 'holder');
    assert.ok(r);
    assert.equal(r.handoffState, 'reserved');
    assert.equal(await repo.reserve(pool(os), 'other'), null, 'the only row is taken');
    const rows = new HandOffRows(db);
    assert.equal(await rows.take(r.id, 'other'), null, 'not the holder');
    const first = await rows.take(r.id, 'holder', true);
    assert.ok(first);
    assert.deepEqual([first.was, first.state], ['reserved', 'transferring']);
    const second = await rows.take(r.id, 'holder');
    assert.ok(second);
    assert.equal(second.fence.epoch, first.fence.epoch + 1);
    assert.deepEqual([second.was, second.state], ['transferring', 'transferring']);
    // The first attempt's epoch is over: none of its compare-and-sets lands.
    assert.equal(await rows.advance(first.fence, 'transferring', 'accepted'), false);
    assert.equal(await rows.release(first.fence, 'transferring'), false);
    assert.equal(await rows.remove(first.fence, 'transferring'), false);
    assert.equal(await rows.deliver(first.fence, 'p'), false);
    assert.equal((await repo.get(r.id))?.handoffState, 'transferring');
    assert.equal(await rows.advance(second.fence, 'transferring', 'transferring', 'tr-1'), true);
    assert.equal(await rows.release(second.fence, 'transferring'), true);
    const free = await repo.get(r.id);
    assert.deepEqual(
      [free?.status, free?.reservedBy, free?.handoffState],
      ['available', null, null],
    );
    const again = await repo.reserve(pool(os), 'other');
    assert.equal(again?.id, r.id);
    assert.equal(await repo.delete(r.id), true);
    assert.equal(await repo.get(r.id), null);
  });

  test('the fence survives a PostgreSQL session loss that releases every advisory lock', async () => {
    const os = unique('os');
    await stock(os, 1);
    const r = await repo.reserve(pool(os), 'survivor');
    assert.ok(r);
    // The first attempt's sessions are its own, as a worker's are.
    const session = new pg.Pool({
      connectionString: config.databaseUrl,
      application_name: 'fence-a',
    });
    session.on('error', () => undefined);
    const first = await new HandOffRows(session).take(r.id, 'survivor', true);
    assert.ok(first);
    // Its sessions are cut (as a server restart does): an advisory lock it held would be gone.
    await db.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'fence-a'`,
    );
    await session.end().catch(() => undefined);
    const rows = new HandOffRows(db);
    const second = await rows.take(r.id, 'survivor');
    assert.ok(second);
    // The first attempt's fence is over all the same: the state is in the row, not the session.
    assert.equal(await rows.advance(first.fence, 'transferring', 'accepted'), false);
    assert.equal(await rows.advance(second.fence, 'transferring', 'reserved', null), true);
  });

  test('every session is bounded, and two workers with the API stay under the connection limit', async () => {
    const { rows } = await db.query<{ statement_timeout: string }>('SHOW statement_timeout');
    assert.equal(rows[0]?.statement_timeout, `${STATEMENT_TIMEOUT_MS / 1000}s`);
    const limit = Number(
      (await db.query<{ max_connections: string }>('SHOW max_connections')).rows[0]
        ?.max_connections,
    );
    const perWorker = 10 + LOCK_SESSIONS; // the query pool and the lock sessions
    const api = 10;
    assert.ok(2 * perWorker + api < limit, `2 × ${perWorker} + ${api} connections vs ${limit}`);
  });

  test('only stock of the requested snapshot is reserved; counts tell current from stale', async () => {
    const os = unique('os');
    await stock(os, 2, 'old-snap');
    await stock(os, 1, 'new-snap');
    await new OsImageRepository(db).upsert({
      os,
      type,
      zone: '',
      snapshotId: 'new-snap',
      snapshotName: 'x',
      version: '2',
      volumeType: 'sas',
      sizeGb: 1,
    });
    const r = await repo.reserve(pool(os), 'c1', 'new-snap');
    assert.equal(r?.snapshotId, 'new-snap');
    assert.equal(await repo.reserve(pool(os), 'c2', 'new-snap'), null);
    const counts = (await repo.countByTypeOsStatus()).filter((c) => c.type === type && c.os === os);
    assert.deepEqual(
      counts.map((c) => [c.status, c.current, c.count]),
      [
        ['available', false, 2],
        ['reserved', true, 1],
      ],
    );
  });

  test('upsert by name fills in the volume id later and keeps a reservation', async () => {
    const os = unique('os');
    const name = unique('pending');
    const pending = await repo.upsert({ name, type, os, snapshotId: 's' });
    assert.equal(pending.volumeId, null);
    assert.equal(pending.status, 'creating');
    const id = crypto.randomUUID();
    const done = await repo.upsert({
      name,
      type,
      os,
      snapshotId: 's',
      volumeId: id,
      status: 'available',
    });
    assert.equal(done.id, pending.id);
    assert.equal(done.volumeId, id);
    assert.equal((await repo.findByVolumeId(id))?.name, name);
    assert.ok(await repo.transition(done.id, 'available', 'creating'));
    assert.equal(await repo.transition(done.id, 'available', 'deleting'), false);
  });

  test('the database refuses a reserved row without holder', async () => {
    await assert.rejects(
      db.query(
        `INSERT INTO pool_volumes (name, type, os, snapshot_id, status) VALUES ($1, $2, 'x', 's', 'reserved')`,
        [unique('bad'), type],
      ),
      /pool_volumes_reservation/,
    );
  });
});
