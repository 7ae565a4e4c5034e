/**
 * `npm run bench:claim`: claim latency through the API (median and p99) for pool hits and for
 * plain creations, and two peers in the same run: the bare Cinder calls a pool hit needs
 * (transfer + accept + rename), and Temporal's floor (the claim's workflow shape with no work in
 * it, ./floor). Claims run one after another so each measures the path, not the queue. Needs
 * the stack.
 */
import { loadConfig } from '../lib/config/load';
import { cinderFromConfig } from '../lib/cinder';
import { createDb } from '../lib/pool-state/db';
import { connectClient } from '../lib/temporal/connect';
import { buildApi } from '../api/server';
import { fillPoolWorkflow } from '../workflows';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import { setCreateDelay, startWorker, wipePool } from '../test/support/pool';
import { startFloor } from './floor';

const N = Number(process.env.BENCH_CLAIMS ?? 100);

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number;
  return `n=${s.length} median ${at(0.5).toFixed(0)} ms, p99 ${at(0.99).toFixed(0)} ms, max ${(s[s.length - 1] as number).toFixed(0)} ms`;
}

async function main(): Promise<void> {
  setCreateDelay(0);
  const tag = `bench${process.pid}`;
  const config = loadConfig({
    env: {
      ...process.env,
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES: 'sas',
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE: 'Debian8 64bit',
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS: '',
      POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: String(N + 10),
      POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: '0',
      POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: '0.2',
      POOL__VOLUMES__CONCURRENCY: '8',
      POOL__TEMPORAL__TASK_QUEUE: `${tag}-tq`,
      POOL__TEMPORAL__SCHEDULE_PREFIX: tag,
      POOL__API__CLAIM_WAIT_SECOND: '120',
    },
  });
  const db = createDb(config.databaseUrl, 10);
  await wipePool(db);
  const cinder = cinderFromConfig(config);
  const client = await connectClient(config);
  const worker = await startWorker(config, db, { cinder, temporal: client });
  const api = buildApi({ config, db, temporal: client });
  const floor = await startFloor(client, config.temporal.address, tag);
  const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };

  try {
    const t0 = Date.now();
    const fill = await client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `${tag}-fill`,
      args: [{}],
    });
    console.log(
      `stocked ${fill.available} pool volumes in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );

    const claimOnce = async (i: number, kind: string) => {
      const body = {
        requestId: `${tag}-${kind}-${i}`,
        projectId: TENANT_PROJECTS.alpha,
        name: `${tag}-${kind}-${i}`,
        os: 'Debian8 64bit',
        volumeType: 'sas',
      };
      const t = performance.now();
      const res = await api.inject({ method: 'POST', url: '/v1/claims', headers, payload: body });
      const ms = performance.now() - t;
      if (res.statusCode !== 201) throw new Error(`claim ${i}: ${res.statusCode} ${res.body}`);
      return {
        ms,
        outcome: res.json().outcome as string,
        steps: res.json().timingsMs as Record<string, number>,
      };
    };

    // The bare Cinder calls of a pool hit (transfer + accept + rename), without Temporal or the
    // database, on volumes made the same way; run alternately with the claims so both see the
    // same machine and the same Cinder.
    const snap = (await cinder.listSnapshots()).find(
      (s) => config.pool.snapshotNameRule.match(s.name, 'Debian8 64bit', 'sas') !== null,
    );
    if (!snap) throw new Error('no snapshot');
    const tenantClient = cinder.asProject(TENANT_PROJECTS.beta, TENANT_USER);
    const vols = [];
    for (let i = 0; i < N; i++)
      vols.push(
        await cinder.createVolume({
          name: `${tag}-bare-${i}`,
          size: snap.size,
          snapshotId: snap.id,
          volumeType: 'sas',
        }),
      );
    for (const v of vols)
      while ((await cinder.getVolume(v.id)).status !== 'available')
        await new Promise((r) => setTimeout(r, 100));

    // BENCH_CREATE_DELAY=s makes each create from a snapshot take that long (like a Ceph flatten).
    setCreateDelay(Number(process.env.BENCH_CREATE_DELAY ?? 0));
    const pool: number[] = [];
    const bare: number[] = [];
    const floorMs: number[] = [];
    const calls: number[] = [];
    const steps: Record<string, number[]> = {};
    for (let i = 0; i < N; i++) {
      // No fill schedule exists here, so no refill adds Cinder calls to the claim's count.
      const before = cinder.callCount;
      const r = await claimOnce(i, 'pool');
      calls.push(cinder.callCount - before);
      for (const [k, v] of Object.entries(r.steps)) (steps[k] ??= []).push(v);
      if (r.outcome !== 'pool') throw new Error(`claim ${i} was ${r.outcome}`);
      pool.push(r.ms);
      const v = vols[i] as (typeof vols)[number];
      const t = performance.now();
      const tr = await cinder.createTransfer(v.id, 'bench');
      await tenantClient.acceptTransfer(tr.id, tr.authKey);
      await tenantClient.updateVolume(v.id, { name: `${tag}-bare-renamed`, metadata: {} });
      bare.push(performance.now() - t);
      floorMs.push(await floor.once(String(i)));
    }
    // Empty what is left so every following claim falls back to plain creation.
    await wipePool(db);
    const created: number[] = [];
    for (let i = 0; i < N; i++) {
      const r = await claimOnce(i, 'created');
      if (r.outcome !== 'created') throw new Error(`claim ${i} was ${r.outcome}`);
      created.push(r.ms);
    }
    setCreateDelay(0);

    const q = (ms: number[], p: number) => {
      const sorted = [...ms].sort((a, b) => a - b);
      return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] as number;
    };
    console.log(`claim via API, outcome pool:    ${stats(pool)}`);
    console.log(`claim via API, outcome created: ${stats(created)}`);
    console.log(`bare Cinder transfer + accept + rename: ${stats(bare)}`);
    console.log(
      `pool hit / bare calls: p50 ${(q(pool, 0.5) / q(bare, 0.5)).toFixed(2)}x, ` +
        `p99 ${(q(pool, 0.99) / q(bare, 0.99)).toFixed(2)}x`,
    );
    console.log(`Temporal floor (the claim's shape, no work): ${stats(floorMs)}`);
    console.log(
      `pool hit − bare calls, p50: ${(q(pool, 0.5) - q(bare, 0.5)).toFixed(0)} ms, of which ` +
        `the floor ${q(floorMs, 0.5).toFixed(0)} ms; (bare + floor) / bare: p50 ` +
        `${((q(bare, 0.5) + q(floorMs, 0.5)) / q(bare, 0.5)).toFixed(2)}x`,
    );
    console.log(
      `pool hit, median ms from the workflow's start: ${Object.entries(steps)
        .map(([k, v]) => `${k} ${q(v, 0.5)}`)
        .join(', ')}`,
    );
    console.log(
      `Cinder calls per pool hit: first ${calls[0]} (incl. the one-off version probe), then ` +
        `median ${q(calls.slice(1), 0.5)}, max ${Math.max(...calls.slice(1))}`,
    );

    for (const v of vols) await tenantClient.deleteVolume(v.id).catch(() => undefined);
    const alpha = cinder.asProject(TENANT_PROJECTS.alpha, TENANT_USER);
    for (const v of await alpha.listVolumes())
      if (v.name.startsWith(tag)) await alpha.deleteVolume(v.id).catch(() => undefined);
  } finally {
    await floor.stop();
    await worker.stop();
  }
  await api.close();
  await client.connection.close();
  await db.end();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
