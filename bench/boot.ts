/**
 * `npm run bench:boot`: a VM's boot time end to end with the stack's Nova, with the pool and
 * without. For each create delay of the stack's Cinder (BENCH_BOOT_DELAYS, default 0,5,30 s: a
 * Ceph flatten's stand-in) and each zone (BENCH_BOOT_ZONES, default the configuration's: az-1,
 * az-2), in alternating rounds (BENCH_ROUNDS, 3):
 *
 * - pool: the tenant's system disk is claimed through the API (POST /v1/claims, a worker and the
 *   API in this process, as bench:claim), then the tenant (Keystone login) creates a server from
 *   the claim's `blockDeviceMapping` in the claim's zone and waits for ACTIVE. Timed: the claim
 *   alone, and claim → ACTIVE. Checked: the claim came from the pool, the server runs in the zone,
 *   and Nova and Cinder show the volume `in-use`, attached to that server.
 * - bare: Nova makes the volume itself from the zone's OS snapshot (`source_type: snapshot`,
 *   `destination_type: volume`, same flavor, same zone), timed create → ACTIVE. As the demo does,
 *   in the Keystone project `warmpool`, which has its own OS snapshots per zone (a tenant cannot
 *   read the pool's).
 *
 * The pool is stocked once, before any delay is set, by a fill at delay 0 (pool volumes are made
 * ahead of time by design); no refill runs meanwhile. After every step its servers are deleted
 * (waited for) and then its volumes (waited for). Prints per delay and zone the medians and
 * spreads of both and the ratio pool / bare. Nova looks at a volume it is making every 3 s
 * (`block_device_allocate_retries_interval`), and nova-client polls a server every 250 ms: both
 * are part of what a caller waits.
 *
 * A call Nova or Cinder refuses with 401 (a token revoked meanwhile: the stack is shared) is made
 * again once after a new login, and counted. Run it under the stack's lock when the stack is
 * shared; STACK_DIR must be the running stack's (bench/fill/cinder.ts). BENCH_CPUS=shared|split
 * places the processes.
 */
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig } from '../lib/config/load';
import { cinderFromConfig } from '../lib/cinder';
import { createDb } from '../lib/pool-state/db';
import { connectClient } from '../lib/temporal/connect';
import { buildApi } from '../api/server';
import { fillPoolWorkflow } from '../workflows';
import { NOVA_FLAVOR } from '../scripts/stack/cloud';
import * as nova from '../scripts/stack/nova-client';
import { setCreateDelay, startWorker, wipePool } from '../test/support/pool';
import { alternate, roundCount, showSpread, spread } from './support/rounds';
import { runPlaced } from './support/stack-cpus';
import { checkStackDir, ensureQuotaRoom } from './fill/cinder';
import {
  KeystoneUser,
  claimThroughApi,
  deleteVolumeAndWait,
  volumeAttachments,
  zoneSnapshots,
} from './boot/openstack';

const OS = process.env.BENCH_BOOT_OS ?? 'Debian8 64bit';
const TYPE = 'sas';
const TENANT = { user: 'tenant-alpha-user', project: 'tenant-alpha' } as const;
/** The Keystone project (and user) with OS snapshots of its own: the bare path's. */
const SNAPSHOT_OWNER = 'warmpool';
const STACK_CONFIG = loadConfig();
const list = (v: string | undefined) =>
  v
    ?.split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const DELAYS = (list(process.env.BENCH_BOOT_DELAYS) ?? ['0', '5', '30']).map(Number);
const ZONES = list(process.env.BENCH_BOOT_ZONES) ?? STACK_CONFIG.pool.zones;
const ROUNDS = roundCount();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const since = (t: number) => performance.now() - t;

interface PoolRun {
  claimMs: number;
  activeMs: number;
}

/** What a step made, undone servers first (they hold the volumes), then volumes. */
class Leftovers {
  private servers: (() => Promise<void>)[] = [];
  private volumes: (() => Promise<void>)[] = [];
  server(u: KeystoneUser, id: string) {
    this.servers.push(async () => {
      // The volumes Nova made for it (the bare path) go after it.
      const server = await u.call((s) => nova.getServer(s, id));
      for (const v of server?.['os-extended-volumes:volumes_attached'] ?? []) this.volume(u, v.id);
      await u.call((s) => nova.deleteServer(s, id));
    });
  }
  volume(u: KeystoneUser, id: string) {
    this.volumes.push(() => u.call((s) => deleteVolumeAndWait(s, id)));
  }
  /** Undoes everything; what failed, in words. */
  async clean(): Promise<string[]> {
    const failed: string[] = [];
    const run = async (steps: (() => Promise<void>)[]) => {
      for (const step of steps.splice(0))
        await step().catch((e: Error) => void failed.push(e.message));
    };
    await run(this.servers);
    await run(this.volumes);
    return failed;
  }
}

/** Until Cinder shows `volumeId` in-use, attached to `serverId` (a few seconds at most). */
async function attachedTo(
  u: KeystoneUser,
  volumeId: string,
  serverId: string,
): Promise<{ status: string; zone: string; servers: string[]; waitedMs: number }> {
  const t = performance.now();
  for (;;) {
    const v = await u.call((s) => volumeAttachments(s, volumeId));
    if (!v) throw new Error(`volume ${volumeId} is gone`);
    if ((v.status === 'in-use' && v.servers.includes(serverId)) || since(t) > 10_000)
      return { ...v, waitedMs: since(t) };
    await sleep(100);
  }
}

async function main(): Promise<void> {
  checkStackDir();
  // The worker warns at every claim that its refill request found no fill schedule (none
  // exists here, on purpose: no refill may create volumes at the delay being measured).
  Runtime.install({
    logger: new DefaultLogger('WARN', (e) => {
      if (!e.message.startsWith('refill trigger failed'))
        console.error(`[${e.level}] ${e.message}`, e.meta ?? '');
    }),
  });
  await runPlaced(bench, () => setCreateDelay(0));
}

async function bench(): Promise<void> {
  if (!(await nova.novaAnswers()))
    throw new Error(`nova-api does not answer at ${nova.novaRoot()} (STACK_NOVA=0?)`);
  if (ZONES.length === 0) throw new Error('no zones: BENCH_BOOT_ZONES or availability_zones');
  const tag = `benchboot${process.pid}`;
  const stock = DELAYS.length * ROUNDS + 1;
  const config = loadConfig({
    env: {
      ...process.env,
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_TYPES: TYPE,
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_MORE: OS,
      POOL__VOLUMES_BACKUP__VOLUME_BACKUP_OS_LESS: '',
      POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: String(stock),
      POOL__VOLUMES_BACKUP__BACKUP_NUMS_LESS: '0',
      POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: ZONES.join(', '),
      POOL__VOLUMES_BACKUP__DEFAULT_AVAILABILITY_ZONE: '',
      POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: '0',
      POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: '0.5',
      POOL__VOLUMES_BACKUP__DEMAND_TARGETS: 'false',
      POOL__VOLUMES__CONCURRENCY: '8',
      POOL__TEMPORAL__TASK_QUEUE: `${tag}-tq`,
      POOL__TEMPORAL__SCHEDULE_PREFIX: tag,
      POOL__TEMPORAL__MANAGE_SCHEDULES: 'false',
      POOL__TEMPORAL__WORKER_METRICS_ADDRESS: '',
      POOL__API__CLAIM_WAIT_SECOND: '120',
    },
  });
  const password = nova.stackUsersPassword();
  const tenantUser = new KeystoneUser(TENANT.user, TENANT.project, password);
  const ownerUser = new KeystoneUser(SNAPSHOT_OWNER, SNAPSHOT_OWNER, password);
  const tenant = await tenantUser.login();
  const owner = await ownerUser.login();
  const flavorRef = await nova.flavorId(tenant, NOVA_FLAVOR);
  const snapshots = await zoneSnapshots(owner, config.pool.snapshotNameRule, OS, TYPE, ZONES);
  for (const zone of ZONES)
    if (!snapshots.has(zone))
      throw new Error(`no snapshot of ${OS} ${TYPE} in ${zone} in project ${SNAPSHOT_OWNER}`);

  const admin = cinderFromConfig(config);
  // Room for a few volumes in both Keystone projects (earlier runs may have left theirs).
  const quotas = [
    await ensureQuotaRoom(admin, tenant.projectId, 4, 1),
    await ensureQuotaRoom(admin, owner.projectId, 4, 1),
  ];
  const db = createDb(config.databaseUrl, 10);
  const leftovers = new Leftovers();
  setCreateDelay(0);
  await wipePool(db);
  const client = await connectClient(config);
  const worker = await startWorker(config, db, { cinder: admin, temporal: client });
  const api = buildApi({ config, db, temporal: client });
  const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };
  try {
    console.log(
      `OS ${OS}, type ${TYPE}, flavor ${NOVA_FLAVOR}, zones ${ZONES.join(', ')}, create delays ` +
        `${DELAYS.join(', ')} s, ${ROUNDS} alternating round(s) each` +
        (ROUNDS === 1 ? ' (one round: no spread)' : ''),
    );
    console.log(
      `pool path: tenant ${TENANT.project} (${tenant.projectId}) claims through the API, boots from ` +
        `the answer's block device mapping; bare path: project ${SNAPSHOT_OWNER} (${owner.projectId}) ` +
        `boots from its snapshot ${ZONES.map((z) => `${z} ${snapshots.get(z)?.id}`).join(', ')}`,
    );
    console.log(`quota: tenant ${quotas[0]?.said}; ${SNAPSHOT_OWNER} ${quotas[1]?.said}`);
    const t0 = performance.now();
    const fill = await client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: `${tag}-stock`,
      args: [{ reason: 'bench' }],
    });
    console.log(
      `stock: ${fill.available}/${fill.planned} pool volumes (${stock} per zone) made at create ` +
        `delay 0 in ${(since(t0) / 1000).toFixed(1)} s, before any delay is set; no fill ` +
        `schedule, so no refill runs (the claims' refill requests fail, their warnings muted)`,
    );
    if (fill.available < stock * ZONES.length) throw new Error(`stock short: ${fill.errors}`);

    const poolStep = async (delay: number, zone: string, r: number): Promise<PoolRun> => {
      const requestId = `${tag}-d${delay}-${zone}-r${r}`;
      const t = performance.now();
      const claim = await claimThroughApi(api, headers, {
        requestId,
        projectId: tenant.projectId,
        name: `${requestId}-sys`,
        os: OS,
        volumeType: TYPE,
        availabilityZone: zone,
      });
      const claimMs = since(t);
      leftovers.volume(tenantUser, claim.volumeId);
      if (claim.outcome !== 'pool') throw new Error(`${requestId}: outcome ${claim.outcome}`);
      if (claim.availabilityZone !== zone || !claim.blockDeviceMapping)
        throw new Error(`${requestId}: zone ${claim.availabilityZone}, no mapping`);
      const mapping = claim.blockDeviceMapping;
      const relogins = tenantUser.relogins;
      const serverId = await tenantUser.call((s) =>
        nova.createServer(s, { name: requestId, flavorRef, zone, blockDevices: [{ ...mapping }] }),
      );
      leftovers.server(tenantUser, serverId);
      const server = await tenantUser.call((s) => nova.waitActive(s, serverId));
      const activeMs = since(t);
      // From Nova and from Cinder: the server runs in the zone on the claimed volume.
      const novaSees = (server['os-extended-volumes:volumes_attached'] ?? []).map((v) => v.id);
      const cinderSees = await attachedTo(tenantUser, claim.volumeId, serverId);
      const ok =
        server['OS-EXT-AZ:availability_zone'] === zone &&
        novaSees.includes(claim.volumeId) &&
        cinderSees.status === 'in-use' &&
        cinderSees.servers.includes(serverId) &&
        cinderSees.zone === zone;
      console.log(
        `  pool ${zone} r${r + 1}: claim ${claimMs.toFixed(0)} ms, claim → ACTIVE ` +
          `${activeMs.toFixed(0)} ms; ${ok ? 'checked' : 'CHECK FAILED'}: server in ` +
          `${server['OS-EXT-AZ:availability_zone']}, Nova: volumes [${novaSees.join(', ')}], ` +
          `Cinder: ${claim.volumeId} ${cinderSees.status} in ${cinderSees.zone}, attached to ` +
          `[${cinderSees.servers.join(', ')}]` +
          (cinderSees.waitedMs > 150 ? ` (after ${cinderSees.waitedMs.toFixed(0)} ms)` : '') +
          (tenantUser.relogins > relogins ? '; a 401 made the tenant log in again' : ''),
      );
      if (!ok) throw new Error(`${requestId}: the server is not on the claimed volume`);
      const failed = await leftovers.clean();
      if (failed.length) console.log(`    clean-up failed: ${failed.join('; ')}`);
      return { claimMs, activeMs };
    };

    const bareStep = async (delay: number, zone: string, r: number): Promise<number> => {
      const snap = snapshots.get(zone) as nova.Snapshot;
      const relogins = ownerUser.relogins;
      const t = performance.now();
      const serverId = await ownerUser.call((s) =>
        nova.createServer(s, {
          name: `${tag}-bare-d${delay}-${zone}-r${r}`,
          flavorRef,
          zone,
          blockDevices: [nova.bootVolumeFromSnapshot(snap)],
        }),
      );
      leftovers.server(ownerUser, serverId);
      const server = await ownerUser.call((s) => nova.waitActive(s, serverId, 600_000));
      const ms = since(t);
      const volumes = (server['os-extended-volumes:volumes_attached'] ?? []).map((v) => v.id);
      console.log(
        `  bare ${zone} r${r + 1}: snapshot → ACTIVE ${ms.toFixed(0)} ms; server in ` +
          `${server['OS-EXT-AZ:availability_zone']}, volumes [${volumes.join(', ')}]` +
          (ownerUser.relogins > relogins ? '; a 401 made the owner log in again' : ''),
      );
      if (server['OS-EXT-AZ:availability_zone'] !== zone)
        throw new Error(`bare server ${serverId} in ${server['OS-EXT-AZ:availability_zone']}`);
      const failed = await leftovers.clean();
      if (failed.length) console.log(`    clean-up failed: ${failed.join('; ')}`);
      return ms;
    };

    const results: { delay: number; zone: string; pool: PoolRun[]; bare: number[] }[] = [];
    for (const delay of DELAYS) {
      setCreateDelay(delay);
      for (const zone of ZONES) {
        console.log(`\n== create delay ${delay} s, zone ${zone}`);
        const out = await alternate<PoolRun | number>(ROUNDS, {
          pool: (r) => poolStep(delay, zone, r),
          bare: (r) => bareStep(delay, zone, r),
        });
        results.push({
          delay,
          zone,
          pool: (out.pool ?? []) as PoolRun[],
          bare: (out.bare ?? []) as number[],
        });
      }
    }
    setCreateDelay(0);

    const sec = (ms: number[]) =>
      ms.length > 1
        ? showSpread(spread(ms.map((m) => m / 1000)), 2, ' s')
        : `${((ms[0] ?? NaN) / 1000).toFixed(2)} s`;
    const ratio = (v: number[]) =>
      v.length > 1 ? showSpread(spread(v)) : (v[0] ?? NaN).toFixed(2);
    console.log(
      `\n== summary: median (min–max over the rounds); Keystone logins again after a 401: ` +
        `tenant ${tenantUser.relogins}, ${SNAPSHOT_OWNER} ${ownerUser.relogins}`,
    );
    for (const x of results) {
      const ratios = x.pool.map((p, i) => p.activeMs / (x.bare[i] as number));
      console.log(
        `delay ${String(x.delay).padStart(2)} s, ${x.zone}: claim ${sec(x.pool.map((p) => p.claimMs))}; ` +
          `pool claim → ACTIVE ${sec(x.pool.map((p) => p.activeMs))}; ` +
          `bare snapshot → ACTIVE ${sec(x.bare)}; pool / bare ${ratio(ratios)}`,
      );
    }
  } finally {
    setCreateDelay(0);
    const failed = await leftovers.clean();
    if (failed.length) console.log(`clean-up failed: ${failed.join('; ')}`);
    await api.close();
    await worker.stop();
    await wipePool(db).catch((e: Error) => console.log(`wipe: ${e.message}`));
    for (const q of quotas) await q.restore().catch(() => undefined);
    await client.connection.close();
    await db.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
