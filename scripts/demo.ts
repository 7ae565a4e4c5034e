/**
 * The main job in one run (`npm run demo`, after scripts/demo.sh started the stack, the worker and
 * the API): fill a small pool, make claims that hit it, claims that fall back, one duplicate and
 * one data disk, all through the HTTP API, and print outcomes, timings, the pool's levels before
 * and after, and where each claim's history is in the Temporal Web UI.
 *
 * Then, with the stack's Nova, VMs boot: in each zone a Keystone tenant's system disk is claimed
 * and a server boots from the claim's `blockDeviceMapping`, beside the path without the pool —
 * Nova making the volume itself from the zone's OS snapshot, the backend as slow as Ceph's
 * flatten (the fake driver's create delay) — and a table compares the two.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { loadConfig } from '../lib/config/load';
import { connectClient } from '../lib/temporal/connect';
import { findTriggeredRun } from '../lib/temporal/schedules';
import { scheduleIds } from '../contracts/fill';
import { historyUrl } from '../lib/temporal/workflows';
import { claimWorkflowId } from '../contracts/claim';
import { NOVA_FLAVOR, TENANT_PROJECTS } from './stack/cloud';
import type { PoolLevel } from '../lib/pool-state/levels';
import { compareVersions } from '../lib/config/snapshot-name-rule';
import type { ClaimResult } from '../contracts/claim';
import * as nova from './stack/nova-client';

const config = loadConfig();
const base = `http://${config.api.host}:${config.api.port}`;
const headers = {
  authorization: `Bearer ${config.api.apiKeys[0]}`,
  'content-type': 'application/json',
};

async function api<T>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as T };
}

function printLevels(title: string, levels: PoolLevel[]): void {
  console.log(`\n${title}`);
  console.log('  type  os                 zone   target  available  creating  stale');
  for (const l of levels) {
    console.log(
      `  ${l.volumeType.padEnd(5)} ${l.os.padEnd(18)} ${(l.zone || '-').padEnd(6)} ${String(l.target).padStart(6)}  ${String(l.available).padStart(9)}  ${String(l.creating).padStart(8)}  ${String(l.stale).padStart(5)}`,
    );
  }
}

// ------------------------------------------------------------------ VMs boot (the stack's Nova)

const VM_OS = 'Debian8 64bit';
const VM_TYPE = 'sas';
const TENANT = { user: 'tenant-alpha-user', project: 'tenant-alpha' } as const;
/** The Keystone project (and user) that owns the bootstrap's OS snapshots of the Keystone cloud. */
const SNAPSHOT_OWNER = 'warmpool';
/** Seconds a create from a snapshot takes during the comparison (Ceph's flatten); 0: none. */
const CREATE_DELAY_SECONDS = Number(process.env.DEMO_CREATE_DELAY_SECONDS ?? 20);
const STACK_DIR = process.env.STACK_DIR ?? resolve(__dirname, '../.stack');
const CREATE_DELAY_FILE = `${STACK_DIR}/cinder/create-delay-seconds`;

/** The fake driver reads this file at each create from a snapshot (test/support/pool.ts does the same). */
function setCreateDelay(seconds: number): void {
  mkdirSync(`${STACK_DIR}/cinder`, { recursive: true });
  writeFileSync(CREATE_DELAY_FILE, String(seconds));
}

const ms = (from: number) => Math.round(performance.now() - from);

/** POST /v1/claims, following a 202 (still running) until the claim completes or fails. */
async function claimUntilDone(body: Record<string, unknown>): Promise<ClaimResult> {
  const first = await api<ClaimResult & { status?: string; error?: string }>(
    'POST',
    '/v1/claims',
    body,
  );
  let res = first;
  const deadline = Date.now() + 300_000;
  while (res.status === 202 || (res.status === 200 && res.body.status === 'running')) {
    if (Date.now() > deadline) throw new Error(`claim ${String(body.requestId)} still running`);
    await new Promise((r) => setTimeout(r, 250));
    res = await api('GET', `/v1/claims/${encodeURIComponent(String(body.requestId))}`);
  }
  if (![200, 201].includes(res.status) || res.body.status !== 'completed')
    throw new Error(
      `claim ${String(body.requestId)}: HTTP ${res.status} ${res.body.error ?? JSON.stringify(res.body)}`,
    );
  return res.body;
}

/** Waits (bounded) until the pool of (VM_TYPE, VM_OS) has stock in every zone; the levels seen. */
async function waitForStock(zones: readonly string[], timeoutMs: number): Promise<PoolLevel[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const levels = (await api<{ levels: PoolLevel[] }>('GET', '/v1/pool')).body.levels.filter(
      (l) => l.volumeType === VM_TYPE && l.os === VM_OS && zones.includes(l.zone),
    );
    const stocked = zones.every((z) => (levels.find((l) => l.zone === z)?.available ?? 0) > 0);
    if (stocked || Date.now() > deadline) return levels;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * The newest OS-image snapshot of (VM_OS, VM_TYPE) per zone in the session's project: the
 * bootstrap makes one per zone under the same name, told apart by the source volume's zone.
 */
async function zoneSnapshots(
  s: nova.Session,
  zones: readonly string[],
): Promise<Map<string, nova.Snapshot & { version: string }>> {
  const rule = config.pool.snapshotNameRule;
  const candidates = (await nova.listSnapshots(s)).flatMap((snap) => {
    const version =
      snap.status === 'available' ? rule.match(snap.name ?? '', VM_OS, VM_TYPE) : null;
    return version === null ? [] : [{ ...snap, version }];
  });
  const byZone = new Map<string, nova.Snapshot & { version: string }>();
  for (const snap of candidates) {
    const zone = (await nova.getVolume(s, snap.volume_id))?.availability_zone;
    if (!zone || !zones.includes(zone)) continue;
    const had = byZone.get(zone);
    if (!had || compareVersions(snap.version, had.version) > 0) byZone.set(zone, snap);
  }
  return byZone;
}

interface ZoneRun {
  zone: string;
  outcome?: string;
  claimMs?: number;
  bootMs?: number;
  activeMs?: number;
  historyUrl?: string;
  baselineMs?: number;
  baselineSnapshot?: string;
  error?: string;
  baselineError?: string;
}

const cell = (n: number | undefined, width: number) =>
  (n === undefined ? 'failed' : String(n)).padStart(width);

async function bootVms(run: string): Promise<void> {
  console.log(
    '\nVMs boot from the pool (the stack\'s Nova, as tenant "tenant-alpha" through Keystone):',
  );
  if (!(await nova.novaAnswers())) {
    console.log(
      `  nova-api does not answer at ${nova.novaRoot()} (STACK_NOVA=0 or STACK_KEYSTONE=0 leave Nova out): no VMs booted`,
    );
    return;
  }
  const zones = config.pool.zones;
  if (zones.length === 0) {
    console.log('  the pool serves no zones (availability_zones is empty): no VMs booted');
    return;
  }
  const password = nova.stackUsersPassword();
  const tenant = await nova.login(TENANT.user, TENANT.project, password);
  const owner = await nova.login(SNAPSHOT_OWNER, SNAPSHOT_OWNER, password);
  const flavorRef = await nova.flavorId(tenant, NOVA_FLAVOR);
  console.log(
    `  tenant project ${TENANT.project} = ${tenant.projectId} (Keystone); the demo's pool runs under noauth and hands the volumes to that project id`,
  );

  const levels = await waitForStock(zones, 90_000);
  console.log(
    `  stock of ${VM_TYPE} / ${VM_OS} before the claims: ${zones.map((z) => `${z} ${levels.find((l) => l.zone === z)?.available ?? 0}`).join(', ')}`,
  );
  const snapshots = await zoneSnapshots(owner, zones);

  const cleanup: { what: string; step: () => Promise<unknown> }[] = [];
  const runs: ZoneRun[] = zones.map((zone) => ({ zone }));
  // Ctrl-C or a kill: the create delay must not stay behind on the shared stack.
  const restore = () => {
    setCreateDelay(0);
    process.exit(130);
  };
  process.once('SIGINT', restore);
  process.once('SIGTERM', restore);
  setCreateDelay(CREATE_DELAY_SECONDS);
  console.log(
    `  create delay of the stack's Cinder set to ${CREATE_DELAY_SECONDS} s per volume made from a snapshot (like Ceph's flatten), for both paths`,
  );
  try {
    // With the pool: claim in the zone, then boot from the answer's block device mapping.
    await Promise.all(
      runs.map(async (r) => {
        const requestId = `demo-${run}-vm-${r.zone}`;
        r.historyUrl = historyUrl(config.temporal, claimWorkflowId(requestId));
        try {
          const t0 = performance.now();
          const claim = await claimUntilDone({
            requestId,
            projectId: tenant.projectId,
            name: `demo-vm-${run}-${r.zone}-sys`,
            os: VM_OS,
            volumeType: VM_TYPE,
            availabilityZone: r.zone,
          });
          r.claimMs = ms(t0);
          r.outcome = claim.outcome;
          cleanup.push({
            what: `claimed volume ${claim.volumeId}`,
            step: () => nova.deleteVolume(tenant, claim.volumeId),
          });
          if (claim.availabilityZone !== r.zone || !claim.blockDeviceMapping)
            throw new Error(
              `claim answered zone ${claim.availabilityZone ?? '(none)'}, mapping ${JSON.stringify(claim.blockDeviceMapping)}`,
            );
          const t1 = performance.now();
          const serverId = await nova.createServer(tenant, {
            name: `demo-vm-${run}-${r.zone}`,
            flavorRef,
            zone: r.zone,
            blockDevices: [{ ...claim.blockDeviceMapping }],
          });
          cleanup.push({
            what: `server ${serverId}`,
            step: () => nova.deleteServer(tenant, serverId),
          });
          await nova.waitActive(tenant, serverId);
          r.bootMs = ms(t1);
          r.activeMs = ms(t0);
        } catch (err) {
          r.error = (err as Error).message;
        }
      }),
    );
    for (const r of runs) {
      console.log(
        r.error
          ? `  ${r.zone}: FAILED ${r.error}`
          : `  ${r.zone}: claim ${r.claimMs} ms (${r.outcome}), server create → ACTIVE ${r.bootMs} ms, claim → ACTIVE ${r.activeMs} ms`,
      );
      console.log(`        claim's history: ${r.historyUrl}`);
    }

    // Without the pool: Nova makes the volume from the zone's snapshot while the server builds.
    console.log(
      `\nwithout the pool: Nova makes the system disk from the zone's OS snapshot (source_type snapshot → volume),` +
        `\n  in Keystone project ${SNAPSHOT_OWNER} (a tenant cannot read the pool's snapshots; ${SNAPSHOT_OWNER} has its own per zone):`,
    );
    await Promise.all(
      runs.map(async (r) => {
        const snap = snapshots.get(r.zone);
        try {
          if (!snap)
            throw new Error(
              `no snapshot of ${VM_OS} ${VM_TYPE} in ${r.zone} in project ${SNAPSHOT_OWNER}`,
            );
          const t0 = performance.now();
          const serverId = await nova.createServer(owner, {
            name: `demo-nopool-${run}-${r.zone}`,
            flavorRef,
            zone: r.zone,
            blockDevices: [nova.bootVolumeFromSnapshot(snap)],
          });
          cleanup.push({
            what: `server ${serverId} and its volume`,
            step: async () => {
              const server = await nova.getServer(owner, serverId);
              const volumes = server?.['os-extended-volumes:volumes_attached'] ?? [];
              await nova.deleteServer(owner, serverId);
              for (const v of volumes) await nova.deleteVolume(owner, v.id);
            },
          });
          await nova.waitActive(owner, serverId);
          r.baselineMs = ms(t0);
          r.baselineSnapshot = `"${snap.name}" (${snap.id})`;
        } catch (err) {
          r.baselineError = (err as Error).message;
        }
      }),
    );
    for (const r of runs)
      console.log(
        r.baselineError
          ? `  ${r.zone}: FAILED ${r.baselineError}`
          : `  ${r.zone}: snapshot ${r.baselineSnapshot} → ACTIVE ${r.baselineMs} ms`,
      );
  } finally {
    setCreateDelay(0);
    process.removeListener('SIGINT', restore);
    process.removeListener('SIGTERM', restore);
    // Servers first (they hold the volumes; a baseline's goes with its server), then the claimed
    // volumes, each step on its own.
    const isServer = (c: { what: string }) => c.what.startsWith('server');
    const failed: string[] = [];
    const attempt = (c: (typeof cleanup)[number]) =>
      c.step().catch((e: Error) => failed.push(`${c.what}: ${e.message}`));
    await Promise.all(cleanup.filter(isServer).map(attempt));
    for (const c of cleanup.filter((c) => !isServer(c))) await attempt(c);
    console.log(
      `\ncreate delay back to 0; cleaned up ${cleanup.length - failed.length}/${cleanup.length} (servers, then the claimed volumes)` +
        (failed.length ? `; left: ${failed.join('; ')}` : ''),
    );
  }

  console.log(
    `\n  zone  | claim ms | claim→ACTIVE ms | without pool (snapshot→ACTIVE) ms   (create delay ${CREATE_DELAY_SECONDS} s)`,
  );
  for (const r of runs)
    console.log(
      `  ${r.zone.padEnd(5)} | ${cell(r.claimMs, 8)} | ${cell(r.activeMs, 15)} | ${cell(r.baselineMs, 33)}`,
    );
  if (runs.some((r) => r.error || r.baselineError)) throw new Error('a VM did not boot (above)');
}

async function main(): Promise<void> {
  const client = await connectClient(config);
  const run = Date.now().toString(36);
  printLevels(
    'pool before the fill:',
    (await api<{ levels: PoolLevel[] }>('GET', '/v1/pool')).body.levels,
  );

  console.log('\nfilling the pool (fill-now on the fill schedule)...');
  const schedule = client.schedule.getHandle(scheduleIds(config.temporal.schedulePrefix).fill);
  const since = new Date();
  await schedule.trigger(ScheduleOverlapPolicy.SKIP);
  const fillRun = await findTriggeredRun(schedule, since, 60_000);
  if (!fillRun) throw new Error('the fill schedule started no fill');
  const r = await client.workflow.getHandle(fillRun.workflowId, fillRun.runId).result();
  console.log(`  fill ${fillRun.workflowId}: ${r.available}/${r.planned} created`);
  printLevels(
    'pool after the fill:',
    (await api<{ levels: PoolLevel[] }>('GET', '/v1/pool')).body.levels,
  );

  // These claims name no zone: they take the default zone's stock.
  const stock =
    config.pool.targets.find((t) => t.os === 'Debian8 64bit' && t.zone === config.pool.defaultZone)
      ?.target ?? 0;
  const claims: { label: string; body: Record<string, unknown> }[] = [];
  for (let i = 0; i < stock + 2; i++) {
    claims.push({
      label: i < stock ? 'system disk (stock)' : 'system disk (pool empty)',
      body: {
        requestId: `demo-${run}-${i}`,
        projectId: i % 2 ? TENANT_PROJECTS.beta : TENANT_PROJECTS.alpha,
        name: `demo-vm-${run}-${i}-sys`,
        os: 'Debian8 64bit',
        volumeType: 'sas',
      },
    });
  }
  claims.push({ label: 'duplicate of the first', body: { ...claims[0]!.body } });
  claims.push({
    label: 'data disk',
    body: {
      requestId: `demo-${run}-data`,
      projectId: TENANT_PROJECTS.alpha,
      name: `demo-vm-${run}-data`,
      volumeType: 'ssd',
      sizeGb: 2,
      systemDisk: false,
    },
  });

  // Refills after each pool hit would restock at once on this fast fake backend: pause the fill
  // schedule during the claims so that the claims beyond the stock show the fallback.
  await schedule.pause('demo: show the fallback');
  console.log(
    '\nclaims through POST /v1/claims (one after another; fill schedule paused meanwhile):',
  );
  console.log(
    '  request                  kind                      status  outcome   ms     volume',
  );
  for (const c of claims) {
    const t = performance.now();
    const res = await api<{ outcome?: string; volumeId?: string; error?: string }>(
      'POST',
      '/v1/claims',
      c.body,
    );
    const ms = (performance.now() - t).toFixed(0);
    console.log(
      `  ${String(c.body.requestId).padEnd(24)} ${c.label.padEnd(25)} ${res.status}     ${(res.body.outcome ?? res.body.error ?? '').padEnd(9)} ${ms.padStart(5)}  ${res.body.volumeId ?? ''}`,
    );
  }
  printLevels(
    'pool after the claims:',
    (await api<{ levels: PoolLevel[] }>('GET', '/v1/pool')).body.levels,
  );
  await schedule.unpause('demo over');
  await schedule.trigger(ScheduleOverlapPolicy.SKIP);
  await new Promise((r) => setTimeout(r, 8000));
  printLevels(
    'pool after the refill:',
    (await api<{ levels: PoolLevel[] }>('GET', '/v1/pool')).body.levels,
  );

  const ui = historyUrl(config.temporal);
  console.log(
    `\nWeb UI, every claim's history: ${ui}?query=${encodeURIComponent("WorkflowType='claimVolumeWorkflow'")}`,
  );
  console.log(
    `  e.g. ${historyUrl(config.temporal, claimWorkflowId(String(claims[0]!.body.requestId)))}`,
  );
  console.log(
    `  search by outcome: PoolOutcome='pool' | 'created' | 'existing'; by PoolProject, PoolOs, PoolVolumeType, PoolZone`,
  );
  await client.connection.close();

  await bootVms(run);
}

main().catch((err) => {
  console.error(`demo failed: ${(err as Error).message}`);
  process.exit(1);
});
