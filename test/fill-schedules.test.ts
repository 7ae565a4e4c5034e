/**
 * Schedules on the real Temporal dev server: the seed's tests 5 (the periodic jobs run at the
 * configured intervals), 6 (a tick while a fill still runs starts no second fill) and 10 (a
 * changed configuration changes the schedules).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import { ensureSchedules } from '../lib/temporal/schedules';
import { scheduleIds } from '../contracts/fill';
import { type Db } from '../lib/pool-state/db';
import { sleep, unique } from './support/env';
import {
  poolEnv,
  setCreateDelay,
  startWorker,
  testConfig,
  openStack,
  closeStack,
} from './support/pool';

let client: Client;
let db: Db;

before(async () => ({ client, db } = await openStack(5, { wipe: true })));
after(() => closeStack({ client, db }));

async function runsOf(scheduleId: string) {
  const out: { scheduled: number; start: number; close: number | null }[] = [];
  for await (const wf of client.workflow.list({
    query: `TemporalScheduledById = '${scheduleId}'`,
  })) {
    // The schedule stamps each run with the time it planned; the start time itself drifts with
    // the machine's load, so spacing is asserted on the plan and the lag is bounded apart.
    const [planned] = (wf.searchAttributes.TemporalScheduledStartTime ?? []) as Date[];
    out.push({
      scheduled: planned ? new Date(planned).getTime() : NaN,
      start: wf.startTime.getTime(),
      close: wf.closeTime?.getTime() ?? null,
    });
  }
  return out.sort((a, b) => a.start - b.start);
}

describe('schedules (real Temporal)', () => {
  test('seed 5+6: fill and check run at their intervals; a fill still running makes the next tick skip', async () => {
    setCreateDelay(5); // each fill takes longer than the fill interval
    const prefix = unique('sched');
    const { config } = testConfig({
      ...poolEnv({ more: 'Debian8 64bit', numsMore: 2, concurrency: 2 }),
      POOL__TEMPORAL__SCHEDULE_PREFIX: prefix,
      POOL__VOLUMES_BACKUP__BACKUP_FREQUENCY_MINUTE: '0.05', // 3 s
      POOL__VOLUMES_BACKUP__CHECK_STATE_FREQUENCY_MINUTE: '0.05',
    });
    const ids = scheduleIds(config.temporal.schedulePrefix);
    const worker = await startWorker(config, db);
    try {
      const made = await ensureSchedules(client, config);
      assert.deepEqual(
        made.map((m) => m.split(' ')[0]),
        ['created', 'created'],
      );
      await sleep(16_000);
      await client.schedule.getHandle(ids.fill).pause('test over');
      await client.schedule.getHandle(ids.check).pause('test over');

      const fill = await client.schedule.getHandle(ids.fill).describe();
      assert.ok(
        fill.info.numActionsSkippedOverlap >= 1,
        `skipped ${fill.info.numActionsSkippedOverlap}`,
      );
      const fills = await runsOf(ids.fill);
      assert.ok(fills.length >= 1 && fills.length <= 3, `${fills.length} fills`);
      for (let i = 1; i < fills.length; i++) {
        const prev = fills[i - 1]!;
        assert.ok(
          prev.close !== null && prev.close <= fills[i]!.start,
          'two fills ran at the same time',
        );
      }

      const checks = await runsOf(ids.check);
      assert.ok(checks.length >= 3, `${checks.length} checks in 16 s at one per 3 s`);
      for (let i = 1; i < checks.length; i++) {
        const gap = checks[i]!.scheduled - checks[i - 1]!.scheduled;
        // 3 s, or 6 s when a tick was skipped because the previous check was still running
        assert.ok(gap === 3000 || gap === 6000, `checks planned ${gap} ms apart, configured 3000`);
      }
      for (const c of checks) {
        const lag = c.start - c.scheduled;
        assert.ok(lag >= 0 && lag < 3000, `a check started ${lag} ms after its planned time`);
      }
    } finally {
      await worker.stop();
      for (const id of Object.values(ids))
        await client.schedule
          .getHandle(id)
          .delete()
          .catch(() => undefined);
    }
  });

  test('seed 10: a changed configuration updates the schedules on restart; a pause survives it', async () => {
    const prefix = unique('sched');
    const env = {
      POOL__TEMPORAL__SCHEDULE_PREFIX: prefix,
      POOL__VOLUMES_BACKUP__BACKUP_FREQUENCY_MINUTE: '20',
    };
    const first = testConfig(env).config;
    const ids = scheduleIds(first.temporal.schedulePrefix);
    try {
      await ensureSchedules(client, first);
      const every = async (id: string) => {
        const d = await client.schedule.getHandle(id).describe();
        return Number(d.spec.intervals?.[0]?.every);
      };
      assert.equal(await every(ids.fill), 20 * 60_000);
      assert.equal(await every(ids.check), 5 * 60_000);
      await client.schedule.getHandle(ids.fill).pause('maintenance');

      const second = testConfig({
        ...env,
        POOL__VOLUMES_BACKUP__BACKUP_FREQUENCY_MINUTE: '7',
        POOL__VOLUMES_BACKUP__CHECK_STATE_FREQUENCY_MINUTE: '2',
      }).config;
      const made = await ensureSchedules(client, second);
      assert.deepEqual(
        made.map((m) => m.split(' ')[0]),
        ['updated', 'updated'],
      );
      assert.equal(await every(ids.fill), 7 * 60_000);
      assert.equal(await every(ids.check), 2 * 60_000);
      const d = await client.schedule.getHandle(ids.fill).describe();
      assert.equal(d.state.paused, true);
      assert.equal(d.policies.overlap, 'SKIP');
    } finally {
      for (const id of Object.values(ids))
        await client.schedule
          .getHandle(id)
          .delete()
          .catch(() => undefined);
    }
  });
});
