/**
 * `npm run bench:fill`: time to fill the default configuration's pool from empty to target, with
 * the creation interval at 0 s and at 1 s, and Cinder calls per created volume. Needs the stack
 * (`npm run stack:up`); it empties the pool first.
 *
 * Zones: the pool serves the stack configuration's default zone only (az-1 of config/pool.ini),
 * each of its pools made from that zone's snapshot; BENCH_ZONES=az-1,az-2 fills every zone listed
 * (each with its own counts) in one run, and BENCH_ZONES= (empty) none (Cinder's default zone).
 */
import { loadConfig } from '../lib/config/load';
import { cinderFromConfig } from '../lib/cinder';
import { createDb } from '../lib/pool-state/db';
import { connectClient } from '../lib/temporal/connect';
import { fillPoolWorkflow } from '../workflows';
import { setCreateDelay, startWorker, wipePool } from '../test/support/pool';

/** The zones the pool serves during the bench (availability_zones); see above. */
const ZONES = process.env.BENCH_ZONES ?? loadConfig().pool.defaultZone;

async function main(): Promise<void> {
  const intervals = (process.env.BENCH_INTERVALS ?? '0,1').split(',').map(Number);
  setCreateDelay(0);
  for (const interval of intervals) {
    const config = loadConfig({
      env: {
        ...process.env,
        POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: String(interval),
        POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: '0.5',
        POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: ZONES,
        POOL__TEMPORAL__TASK_QUEUE: `bench-${process.pid}-${interval}`,
      },
    });
    const db = createDb(config.databaseUrl, 10);
    await wipePool(db);
    const calls = new Map<string, number>();
    const cinder = cinderFromConfig(config, {
      log: (e) => {
        const key = `${e.method} ${e.path.replace(/[0-9a-f-]{36}/g, '{id}')}`;
        calls.set(key, (calls.get(key) ?? 0) + 1);
      },
    });
    const worker = await startWorker(config, db, { cinder });
    const client = await connectClient(config);
    // The targets of the zones served (each zone's own counts, or the common ones).
    const target = config.pool.targets.reduce((n, t) => n + t.target, 0);
    const perZone = new Map<string, number>();
    for (const t of config.pool.targets) perZone.set(t.zone, (perZone.get(t.zone) ?? 0) + t.target);
    const zones = config.pool.zones.length
      ? [...perZone].map(([zone, n]) => `${zone} (target ${n})`).join(', ')
      : "none (Cinder's default zone)";
    const started = Date.now();
    const result = await client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `bench-fill-${process.pid}-${interval}`,
      args: [{ reason: 'bench' }],
    });
    const seconds = (Date.now() - started) / 1000;
    const total = [...calls.values()].reduce((a, b) => a + b, 0);
    console.log(
      `interval ${interval} s, concurrency ${config.concurrency}, zones ${zones}: ` +
        `${result.available}/${target} volumes in ${seconds.toFixed(1)} s ` +
        `(${(result.available / seconds).toFixed(2)} volumes/s); Cinder calls ${total} = ${(total / Math.max(1, result.available)).toFixed(2)} per volume`,
    );
    for (const [k, n] of [...calls.entries()].sort((a, b) => b[1] - a[1]))
      console.log(`    ${String(n).padStart(5)}  ${k}`);
    await wipePool(db);
    await worker.stop();
    await client.connection.close();
    await db.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
