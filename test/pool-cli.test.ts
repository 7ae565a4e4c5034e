/** The operator CLI (`npm run pool -- …`) as a real process, against the real stack. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { Client } from '@temporalio/client';
import { connectClient } from '../lib/temporal/connect';
import { ensureSchedules } from '../lib/temporal/schedules';
import { scheduleIds } from '../contracts/fill';
import { createDb, type Db } from '../lib/pool-state/db';
import { PoolRepository } from '../lib/pool-state/repository';
import { config as stackConfig, unique } from './support/env';
import {
  poolEnv,
  startWorker,
  taggedVolumes,
  testConfig,
  wipePool,
  type RunningWorker,
} from './support/pool';

let client: Client;
let db: Db;
let worker: RunningWorker;
const { config, env } = testConfig(
  poolEnv({ more: 'Debian8 64bit', less: 'Centos7.3 64bit', numsMore: 2, numsLess: 1 }),
);

/** Runs the CLI without blocking this process: the worker serving its workflows lives here. */
function pool(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return runCli(args, env);
}

function runCli(
  args: string[],
  cliEnv: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/pool.ts', ...args], {
      env: cliEnv,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

before(async () => {
  client = await connectClient(stackConfig);
  db = createDb(stackConfig.databaseUrl, 5);
  await wipePool(db);
  worker = await startWorker(config, db);
  await ensureSchedules(client, config);
});
after(async () => {
  await worker.stop();
  for (const id of Object.values(scheduleIds(config.temporal.schedulePrefix)))
    await client.schedule
      .getHandle(id)
      .delete()
      .catch(() => undefined);
  await wipePool(db);
  await client.connection.close();
  await db.end();
});

describe('pool CLI', () => {
  test('bad usage exits 2 with a message and does nothing', async () => {
    for (const args of [
      [],
      ['explode'],
      ['status', 'extra'],
      ['drain', '--bogus'],
      ['drain', '--os'],
    ]) {
      const r = await pool(...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, /usage: npm run pool/);
    }
    const os = await pool('drain', '--os', 'Plan9');
    assert.equal(os.code, 2);
    assert.match(os.err, /unknown OS "Plan9"; configured: Debian8 64bit, Centos7\.3 64bit/);
    const type = await pool('drain', '--type', 'nvme');
    assert.equal(type.code, 2);
    assert.match(type.err, /unknown volume type "nvme"/);
  });

  test('sync-os lists each OS image; fill-now --wait fills; status shows the levels', async () => {
    const sync = await pool('sync-os');
    assert.equal(sync.code, 0, sync.err);
    assert.match(sync.out, /sas\s+Debian8 64bit\s+os-image Debian8 64bit sas v\d+/);
    const { rows } = await db.query(`SELECT os FROM os_images ORDER BY os`);
    assert.deepEqual(
      rows.map((r) => r.os),
      ['Centos7.3 64bit', 'Debian8 64bit'],
    );

    const fill = await pool('fill-now', '--wait');
    assert.equal(fill.code, 0, fill.err);
    assert.match(fill.out, /fill done: 3\/3 available, 0 failed/);
    // It names the run its trigger started: the one it waited for.
    assert.match(fill.out, /triggered \S+-fill: fill \S+-fill-\S+ \(run [0-9a-f-]{36}\) started /);

    const status = await pool('status');
    assert.equal(status.code, 0, status.err);
    // type, os, [zone,] floor, target, available, creating, reserved, stale (a zone column
    // when the pool names zones)
    const zone = config.pool.zones[0] ? `${config.pool.zones[0]}\\s+` : '';
    assert.match(
      status.out,
      new RegExp(`sas\\s+Debian8 64bit\\s+${zone}2\\s+2\\s+2\\s+0\\s+0\\s+0`),
    );
    assert.match(status.out, new RegExp(`sas\\s+Centos7\\.3 64bit\\s+${zone}1\\s+1\\s+1\\s+0`));
    assert.match(status.out, /last fill: .* finished; planned 3, available 3/);
    assert.match(status.out, /schedule .*-fill: active/);
    assert.match(
      status.out,
      new RegExp(
        `workers: 1 worker\\(s\\) of build \\S+ poll task queue ${config.temporal.taskQueue}`,
      ),
    );
  });

  test('pause and resume the schedules', async () => {
    assert.equal((await pool('pause', '--reason', 'image maintenance')).code, 0);
    let d = await client.schedule
      .getHandle(scheduleIds(config.temporal.schedulePrefix).fill)
      .describe();
    assert.equal(d.state.paused, true);
    assert.match((await pool('status')).out, /PAUSED \(image maintenance\)/);
    assert.equal((await pool('resume')).code, 0);
    d = await client.schedule
      .getHandle(scheduleIds(config.temporal.schedulePrefix).fill)
      .describe();
    assert.equal(d.state.paused, false);
  });

  test('drain one pool; reconcile reports', async () => {
    const r = await pool('drain', '--os', 'Debian8 64bit');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /drained 2 of 2 idle volume\(s\)/);
    const left = await new PoolRepository(db).listAll();
    assert.deepEqual(
      left.map((x) => x.os),
      ['Centos7.3 64bit'],
    );
    const tagged = await taggedVolumes();
    assert.deepEqual(
      tagged.map((v) => v.id),
      left.map((x) => x.volumeId),
    );
    const rec = await pool('reconcile');
    assert.equal(rec.code, 0, rec.err);
    assert.match(rec.out, /reconcile: 1 tagged volumes; 0 unknown/);
  });

  test('no worker polls its task queue: the commands that need one exit 1 at once and say so', async () => {
    const idle = { ...env, POOL__TEMPORAL__TASK_QUEUE: unique('idle-tq') };
    for (const args of [['fill-now', '--wait'], ['sync-os'], ['drain', '--stale'], ['reconcile']]) {
      const t0 = Date.now();
      const r = await runCli(args, idle);
      const ms = Date.now() - t0;
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.out}${r.err}`);
      assert.ok(ms < 10_000, `${args.join(' ')} took ${ms} ms`);
      assert.match(
        r.err,
        new RegExp(`NO WORKER .*polls task queue ${idle.POOL__TEMPORAL__TASK_QUEUE}`),
      );
    }
    const status = await runCli(['status'], idle);
    assert.equal(status.code, 0, status.err);
    assert.match(status.out, /workers: NO WORKER .*: fills, checks and claims wait until one does/);
  });

  test('Temporal unreachable: exit 1 with a clear message', async () => {
    const r = await runCli(['status'], { ...env, TEMPORAL_ADDRESS: '127.0.0.1:1' });
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot reach Temporal at 127\.0\.0\.1:1/);
  });
});
