/**
 * `npm run bench:soak`: steady claims for a while (BENCH_SOAK_MINUTES, default 10) with the fill
 * and check schedules running and random faults injected between the pool and Cinder (a loopback
 * proxy): 5xx bursts, connection resets, slow calls, replies lost after Cinder acted. Prints
 * claims, p50/p99, fallbacks and failures, then checks the invariants from Cinder itself. Bounded
 * in time and loopback only; not part of CI. Needs the stack (npm run stack:up).
 *   BENCH_SOAK_MINUTES=2 BENCH_SOAK_CLAIMERS=3 npm run bench:soak
 *
 * Zones: the pool serves the stack configuration's zones (config/pool.ini: az-1, and az-2 with
 * its smaller counts), and the claims take turns among them: a claim for the default zone names
 * none, one for another zone names it. Every delivered volume must be in its claim's zone.
 */
import { loadConfig } from '../lib/config/load';
import { createDb } from '../lib/pool-state/db';
import { PoolRepository } from '../lib/pool-state/repository';
import { connectClient } from '../lib/temporal/connect';
import { ensureSchedules } from '../lib/temporal/schedules';
import { scheduleIds } from '../contracts/fill';
import { buildApi } from '../api/server';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import { admin, config as stackConfig } from '../test/support/env';
import { FaultProxy, type FaultAction } from '../test/support/fault-proxy';
import { startWorker, taggedVolumes, wipePool } from '../test/support/pool';

const MINUTES = Number(process.env.BENCH_SOAK_MINUTES ?? 10);
const CLAIMERS = Number(process.env.BENCH_SOAK_CLAIMERS ?? 3);
const FAULT_EVERY_MS = 15_000;

const FAULTS: {
  what: string;
  method?: string;
  path: RegExp;
  action: FaultAction;
  times?: number;
}[] = [
  {
    what: '503 on every volume GET for 3 s',
    method: 'GET',
    path: /\/volumes\/[0-9a-f-]{36}$/,
    action: { kind: 'status', status: 503 },
  },
  {
    what: 'connection reset on transfer creates',
    method: 'POST',
    path: /transfer$|transfers$/,
    action: { kind: 'reset' },
    times: 2,
  },
  {
    what: 'accept done, reply lost',
    method: 'POST',
    path: /\/accept$/,
    action: { kind: 'lose-reply' },
    times: 1,
  },
  {
    what: 'volume create done, reply lost',
    method: 'POST',
    path: /\/volumes$/,
    action: { kind: 'lose-reply' },
    times: 1,
  },
  {
    what: 'slow renames (4 s)',
    method: 'PUT',
    path: /\/volumes\/[0-9a-f-]{36}$/,
    action: { kind: 'delay', ms: 4000 },
    times: 3,
  },
  {
    what: '500 on volume lists for 3 s',
    method: 'GET',
    path: /\/volumes\/detail$/,
    action: { kind: 'status', status: 500 },
  },
];

function pct(ms: number[], q: number): number {
  const s = [...ms].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] as number) : NaN;
}

async function main(): Promise<void> {
  const proxy = await FaultProxy.start(new URL(stackConfig.auth.cinderUrl as string).origin);
  const tag = `soak${process.pid}`;
  const config = loadConfig({
    env: {
      ...process.env,
      POOL__AUTH_ARGS__CINDER_URL: proxy.cinderUrl,
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES: 'sas',
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE: 'Debian8 64bit',
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS: 'Ubuntu16.04 64bit',
      POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: '8',
      POOL__VOLUMES_BACKUP__BACKUP_NUMS_LESS: '3',
      POOL__VOLUMES_BACKUP__BACKUP_FREQUENCY_MINUTE: '1',
      POOL__VOLUMES_BACKUP__CHECK_STATE_FREQUENCY_MINUTE: '1',
      POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: '0',
      POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: '0.3',
      POOL__VOLUMES__CONCURRENCY: '4',
      POOL__TEMPORAL__TASK_QUEUE: `${tag}-tq`,
      POOL__TEMPORAL__SCHEDULE_PREFIX: tag,
      POOL__API__CLAIM_WAIT_SECOND: '300',
    },
  });
  const db = createDb(config.databaseUrl, 20);
  await wipePool(db);
  const client = await connectClient(config);
  const worker = await startWorker(config, db, { temporal: client });
  await ensureSchedules(client, config);
  const api = buildApi({ config, db, temporal: client });
  const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };
  // The zones claims go to ('' alone: the pool names none, Cinder's default zone).
  const zones = config.pool.zones.length ? config.pool.zones : [''];
  const until = Date.now() + MINUTES * 60_000;
  const latency: Record<string, number[]> = {};
  const statuses: Record<string, number> = {};
  const delivered: { id: string; projectId: string; name: string; zone: string }[] = [];
  const faultsInjected: string[] = [];
  let n = 0;

  const faults = (async () => {
    while (Date.now() < until - FAULT_EVERY_MS) {
      await new Promise((r) => setTimeout(r, FAULT_EVERY_MS));
      const f = FAULTS[Math.floor(Math.random() * FAULTS.length)] as (typeof FAULTS)[number];
      const rule = proxy.add({ method: f.method, path: f.path, action: f.action, times: f.times });
      faultsInjected.push(f.what);
      setTimeout(() => rule.remove(), 3000);
    }
  })();

  const claimer = async (c: number) => {
    while (Date.now() < until) {
      const i = n++;
      const projectId = i % 2 ? TENANT_PROJECTS.alpha : TENANT_PROJECTS.beta;
      // Both tenants in every zone: the zone turns every second claim.
      const zone = zones[Math.floor(i / 2) % zones.length] as string;
      const payload = {
        requestId: `${tag}-${i}`,
        projectId,
        name: `${tag}-vm-${i}`,
        os: i % 3 ? 'Debian8 64bit' : 'Ubuntu16.04 64bit',
        volumeType: 'sas',
        ...(zone && zone !== config.pool.defaultZone ? { availabilityZone: zone } : {}),
      };
      const t0 = Date.now();
      const res = await api.inject({ method: 'POST', url: '/v1/claims', headers, payload });
      const ms = Date.now() - t0;
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (res.statusCode === 201) {
        const body = res.json() as { volumeId: string; outcome: string };
        (latency[zone ? `${body.outcome} in ${zone}` : body.outcome] ??= []).push(ms);
        delivered.push({ id: body.volumeId, projectId, name: payload.name, zone });
      } else console.log(`claim ${i} (claimer ${c}): ${res.statusCode} ${res.body}`);
    }
  };

  try {
    console.log(
      `soak: ${MINUTES} min, ${CLAIMERS} claimers, a fault every ${FAULT_EVERY_MS / 1000} s; ` +
        `zones ${config.pool.zones.join(', ') || "none (Cinder's default)"}` +
        (config.pool.zones.length ? `, default ${config.pool.defaultZone}` : ''),
    );
    await Promise.all([...Array.from({ length: CLAIMERS }, (_, c) => claimer(c)), faults]);
    proxy.clear();
    for (const id of Object.values(scheduleIds(config.temporal.schedulePrefix)))
      await client.schedule.getHandle(id).pause('soak over');
    // Let the last fill or check finish before looking.
    const running = `TaskQueue = '${config.temporal.taskQueue}' AND ExecutionStatus = 'Running'`;
    for (let t = 0; t < 120; t++) {
      let left = 0;
      for await (const _ of client.workflow.list({ query: running })) left++;
      if (left === 0) break;
      await new Promise((r) => setTimeout(r, 1000));
    }

    const all = Object.values(latency).flat();
    console.log(`\nclaims: ${n}, HTTP statuses: ${JSON.stringify(statuses)}`);
    console.log(`all delivered: p50 ${pct(all, 0.5)} ms, p99 ${pct(all, 0.99)} ms`);
    for (const [outcome, ms] of Object.entries(latency))
      console.log(`  ${outcome}: n=${ms.length} p50 ${pct(ms, 0.5)} ms, p99 ${pct(ms, 0.99)} ms`);
    console.log(
      `faults injected: ${faultsInjected.length} (${[...new Set(faultsInjected)].join('; ')})`,
    );

    // Invariants, from Cinder itself.
    const problems: string[] = [];
    const everyone = await admin.listVolumes({ allTenants: true });
    for (const d of delivered) {
      const named = everyone.filter((v) => v.name === d.name && v.status !== 'deleting');
      if (named.length !== 1 || named[0]?.id !== d.id)
        problems.push(`${d.name}: ${named.length} volumes`);
      else if (named[0].projectId !== d.projectId) problems.push(`${d.name}: wrong project`);
      else if (d.zone && named[0].availabilityZone !== d.zone)
        problems.push(`${d.name}: in zone ${named[0].availabilityZone}, claimed in ${d.zone}`);
    }
    if (new Set(delivered.map((d) => d.id)).size !== delivered.length)
      problems.push('a volume was handed out twice');
    const rows = await new PoolRepository(db).listAll();
    if (rows.some((r) => r.status === 'reserved')) problems.push('rows left reserved');
    const tagged = await taggedVolumes();
    const rowIds = new Set(rows.map((r) => r.volumeId));
    for (const v of tagged)
      if (!rowIds.has(v.id)) problems.push(`tagged volume ${v.id} has no row`);
    if (tagged.some((v) => v.status === 'awaiting-transfer'))
      problems.push('awaiting-transfer left');
    console.log(
      problems.length ? `INVARIANTS BROKEN:\n  ${problems.join('\n  ')}` : 'invariants: all hold',
    );
    for (const d of delivered) await admin.deleteVolume(d.id).catch(() => undefined);
    if (problems.length) process.exitCode = 1;
  } finally {
    for (const id of Object.values(scheduleIds(config.temporal.schedulePrefix)))
      await client.schedule
        .getHandle(id)
        .delete()
        .catch(() => undefined);
    await api.close();
    await worker.stop();
    await wipePool(db);
    await proxy.close();
    await client.connection.close();
    await db.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
