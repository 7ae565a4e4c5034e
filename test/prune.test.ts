/**
 * The tables that only grow (claim_log, claim_demand) on the real stack: the status check's
 * schedule prunes them to the configured retention while the fill's schedule is paused, and the
 * prune deletes in bounded batches that never wait for a row another session holds.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import type { Db } from '../lib/pool-state/db';
import { deleteOlderThan } from '../lib/pool-state/prune';
import { ensureSchedules, findTriggeredRun } from '../lib/temporal/schedules';
import { scheduleIds, type CheckResult } from '../contracts/fill';
import { randomProjectId } from './support/env';
import { closeStack, openStack, poolEnv, startWorker, testConfig } from './support/pool';

let client: Client;
let db: Db;

before(async () => ({ client, db } = await openStack(5, { wipe: true })));
after(() => closeStack({ client, db }));

/** `n` claim_log rows answered `ageSeconds` ago, their request ids starting with `tag`. */
async function logClaims(tag: string, n: number, ageSeconds: number): Promise<void> {
  await db.query(
    `INSERT INTO claim_log (request_id, workflow_id, project_id, os, volume_type, outcome,
                            http_status, seconds, at)
     SELECT $1 || i, 'claim-' || $1 || i, $2, 'Debian8 64bit', 'sas', 'pool', 201, 0.2,
            now() - make_interval(secs => $3)
       FROM generate_series(1, $4) AS i`,
    [tag, randomProjectId(), ageSeconds, n],
  );
}

/** `n` claim_demand rows recorded `ageSeconds` ago, their claim ids starting with `tag`. */
async function demandClaims(tag: string, n: number, ageSeconds: number): Promise<void> {
  await db.query(
    `INSERT INTO claim_demand (claim_id, type, os, project_id, hit, at)
     SELECT $1 || i, 'sas', 'Debian8 64bit', $2, true, now() - make_interval(secs => $3)
       FROM generate_series(1, $4) AS i`,
    [tag, randomProjectId(), ageSeconds, n],
  );
}

async function idsOf(table: 'claim_log' | 'claim_demand'): Promise<string[]> {
  const key = table === 'claim_log' ? 'request_id' : 'claim_id';
  const { rows } = await db.query<{ id: string }>(`SELECT ${key} AS id FROM ${table} ORDER BY 1`);
  return rows.map((r) => r.id);
}

const DAY = 86_400;
const MINUTE = 60;

describe('pruning claim_log and claim_demand (real Temporal, PostgreSQL)', () => {
  test('a check run of the schedule prunes past the retention while the fill schedule is paused', async () => {
    await db.query('TRUNCATE claim_log, claim_demand');
    const { config } = testConfig({
      ...poolEnv({ more: 'Debian8 64bit', numsMore: 1 }),
      POOL__VOLUMES_BACKUP__CLAIM_LOG_RETENTION_DAY: '7',
      POOL__VOLUMES_BACKUP__CLAIM_DEMAND_RETENTION_MINUTE: '90',
    });
    await logClaims('old-log-', 3, 8 * DAY);
    await logClaims('new-log-', 2, 6 * DAY);
    await demandClaims('old-demand-', 4, 100 * MINUTE);
    await demandClaims('new-demand-', 2, 80 * MINUTE);

    const ids = scheduleIds(config.temporal.schedulePrefix);
    const worker = await startWorker(config, db, { temporal: client });
    try {
      await ensureSchedules(client, config);
      const fill = client.schedule.getHandle(ids.fill);
      await fill.pause('test: only the check runs');
      const check = client.schedule.getHandle(ids.check);
      const since = new Date();
      await check.trigger();
      const run = await findTriggeredRun(check, since);
      assert.ok(run, 'the triggered check run never showed up');
      const result = await client.workflow
        .getHandle<() => Promise<CheckResult>>(run.workflowId, run.runId)
        .result();

      assert.deepEqual(result.pruned, { claimLog: 3, claimDemand: 4 });
      assert.deepEqual(await idsOf('claim_log'), ['new-log-1', 'new-log-2']);
      assert.deepEqual(await idsOf('claim_demand'), ['new-demand-1', 'new-demand-2']);
      // The fill did none of it: its schedule is paused and started nothing.
      const described = await fill.describe();
      assert.equal(described.state.paused, true);
      assert.equal(described.info.recentActions.length, 0);
      assert.equal(described.info.runningActions.length, 0);
    } finally {
      await worker.stop();
      for (const id of Object.values(ids))
        await client.schedule
          .getHandle(id)
          .delete()
          .catch(() => undefined);
    }
  });

  test('deletes in bounded batches, each pass at most its limit; a row another session holds waits for a later pass', async () => {
    await db.query('TRUNCATE claim_log, claim_demand');
    await logClaims('old-', 25, 2 * DAY);
    await logClaims('new-', 3, 0);
    const limits = { batch: 10, maxBatches: 2 };

    // A claim's session holds one old row (a retried request updating its log entry).
    const holder = await db.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM claim_log WHERE request_id = 'old-1' FOR UPDATE`);
      const started = Date.now();
      const first = await deleteOlderThan(db, 'claim_log', DAY, limits);
      assert.ok(Date.now() - started < 5000, `the prune waited ${Date.now() - started} ms`);
      assert.equal(first, 20, 'two batches of ten, then the pass stops');
      const second = await deleteOlderThan(db, 'claim_log', DAY, limits);
      assert.equal(second, 4, 'the rest but the held row');
      assert.ok((await idsOf('claim_log')).includes('old-1'));
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    assert.equal(await deleteOlderThan(db, 'claim_log', DAY, limits), 1, 'the held row, once free');
    assert.deepEqual(await idsOf('claim_log'), ['new-1', 'new-2', 'new-3']);
  });
});
