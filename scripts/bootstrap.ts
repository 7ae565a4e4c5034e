/**
 * Makes the local Cinder look like an operator's cloud: the pool's volume types, quotas for the
 * admin and tenant projects, and for every (type × OS) of the configuration, in each of the
 * stack's zones (STACK_ZONES; BOOTSTRAP_ZONES=az-1,... overrides), a bootable source volume and
 * an OS-image snapshot named by the snapshot naming rule. Idempotent: existing things are kept.
 * Acts as the configuration's identity: noauth by default, a Keystone cloud with OS_CLOUD.
 */
import axios from 'axios';
import { loadConfig } from '../lib/config/load';
import { cinderFromConfig, type CinderClient, type Snapshot } from '../lib/cinder';
import {
  ADMIN_QUOTA,
  FAKE_BACKEND,
  OS_IMAGE_SIZE_GB,
  STACK_ZONES,
  TENANT_PROJECTS,
  TENANT_QUOTA,
} from './stack/cloud';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitStatus<T extends { status: string }>(
  what: string,
  get: () => Promise<T>,
  want: string,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const cur = await get();
    if (cur.status === want) return cur;
    if (cur.status === 'error') throw new Error(`${what} went to error`);
    if (Date.now() > deadline) throw new Error(`${what} still ${cur.status} after ${timeoutMs} ms`);
    await sleep(300);
  }
}

export async function bootstrap(
  cinder: CinderClient,
  log: (m: string) => void = console.log,
): Promise<void> {
  const config = loadConfig();
  const adminProject = await cinder.projectId();

  const types = await cinder.listVolumeTypes();
  for (const name of config.pool.volumeTypes) {
    if (!types.some((t) => t.name === name)) {
      await cinder.createVolumeType(name, { volume_backend_name: FAKE_BACKEND });
      log(`  volume type ${name} created`);
    }
  }

  // Never below what a project holds already (Cinder refuses that): a stack that ran benches.
  const atLeastUsed = async (project: string, quota: Record<string, number>) => {
    const usage = await cinder.getQuotaUsage(project);
    const limits = Object.fromEntries(
      Object.entries(quota).map(([k, v]) => [k, Math.max(v, usage[k]?.inUse ?? 0)]),
    );
    await cinder.updateQuota(project, limits);
  };
  await atLeastUsed(adminProject, ADMIN_QUOTA);
  // The noauth stack's fixed tenant ids, or a Keystone cloud's (the stack passes them).
  const tenants = process.env.BOOTSTRAP_TENANT_PROJECTS?.split(',').filter(Boolean) ?? [
    ...Object.values(TENANT_PROJECTS),
  ];
  for (const id of tenants) await atLeastUsed(id, TENANT_QUOTA);
  log(
    `  quotas set: admin ${JSON.stringify(ADMIN_QUOTA)}, tenants ${JSON.stringify(TENANT_QUOTA)}`,
  );

  const made = await osImageSnapshots(cinder, config.pool);
  log(
    `  OS images: ${made.oses} OS × ${made.types} types × ${made.zones.length} zones (${made.zones.join(', ')}): ` +
      `${made.snapshots} snapshot(s) created, ${made.madeBootable} source volume(s) marked bootable`,
  );
}

/** The parts of a Cinder volume the bootstrap needs that the pool's client does not map. */
interface RawVolume {
  id: string;
  name: string | null;
  status: string;
  availability_zone: string;
  bootable: string;
}

/**
 * Plain Cinder calls for what the pool's client does not do: a volume's zone and bootable flag,
 * and `os-set_bootable`. As the client's identity, on its endpoint.
 */
function rawCinder(cinder: CinderClient) {
  const http = axios.create({ timeout: 30_000, validateStatus: () => true });
  const call = async <T>(method: 'GET' | 'POST', path: string, data?: unknown): Promise<T> => {
    const { endpoint, token } = await cinder.auth.session();
    const res = await http.request({
      method,
      url: `${endpoint}${path}`,
      data,
      headers: { 'X-Auth-Token': token, Accept: 'application/json' },
    });
    if (res.status >= 300)
      throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(res.data)}`);
    return res.data as T;
  };
  return {
    volume: async (id: string) =>
      (await call<{ volume: RawVolume }>('GET', `/volumes/${id}`)).volume,
    setBootable: (id: string) =>
      call('POST', `/volumes/${id}/action`, { 'os-set_bootable': { bootable: true } }),
  };
}

/** Polls every id at once until `get` says `want` for each (each every 300 ms). */
async function waitAll<T extends { status: string }>(
  what: string,
  ids: string[],
  get: (id: string) => Promise<T>,
  want: string,
): Promise<void> {
  await Promise.all(ids.map((id) => waitStatus(`${what} ${id}`, () => get(id), want)));
}

/**
 * For every (type × OS × zone) an OS-image snapshot of the rule's name, version 1, whose source
 * volume (`os-source {os} {type}`, in that zone) is bootable, as a volume made from a Glance
 * image is: volumes made from the snapshot are bootable too. The same name in every zone: the
 * pool tells the zones apart by the source volume's availability_zone. Existing snapshots are
 * kept (their source volumes marked bootable when they are not); the missing ones are made all
 * at once.
 */
async function osImageSnapshots(cinder: CinderClient, pool: ReturnType<typeof loadConfig>['pool']) {
  const raw = rawCinder(cinder);
  const zones = process.env.BOOTSTRAP_ZONES?.split(',').filter(Boolean) ?? [...STACK_ZONES];
  const rule = pool.snapshotNameRule;
  const oses = [...pool.osMore, ...pool.osLess];
  const snapshots = (await cinder.listSnapshots()).filter(
    (s) =>
      s.status === 'available' &&
      oses.some((os) => pool.volumeTypes.some((type) => rule.match(s.name, os, type) !== null)),
  );
  const sourceIds = [...new Set(snapshots.map((s) => s.volumeId))];
  const sources = new Map(
    (await Promise.all(sourceIds.map((id) => raw.volume(id).catch(() => undefined))))
      .filter((v): v is RawVolume => v !== undefined)
      .map((v) => [v.id, v]),
  );
  const volumes = await cinder.listVolumes();
  const toMarkBootable = new Set<string>();
  const missing: { os: string; volumeType: string; zone: string; sourceName: string }[] = [];
  for (const volumeType of pool.volumeTypes) {
    for (const os of oses) {
      for (const zone of zones) {
        const have = snapshots.find(
          (s) =>
            rule.match(s.name, os, volumeType) !== null &&
            sources.get(s.volumeId)?.availability_zone === zone,
        );
        if (have) {
          const source = sources.get(have.volumeId);
          if (source && source.bootable !== 'true') toMarkBootable.add(source.id);
        } else missing.push({ os, volumeType, zone, sourceName: `os-source ${os} ${volumeType}` });
      }
    }
  }

  // The source volumes: an available one of that name in that zone, else a new one.
  const reusable = new Map<string, RawVolume>();
  for (const v of volumes.filter(
    (v) => v.status === 'available' && v.name.startsWith('os-source '),
  ))
    if (!sources.has(v.id)) {
      const r = await raw.volume(v.id);
      reusable.set(`${r.name} @ ${r.availability_zone}`, r);
    }
  const todo: ((typeof missing)[number] & { sourceId: string })[] = [];
  for (const m of missing) {
    const found = reusable.get(`${m.sourceName} @ ${m.zone}`);
    if (found) reusable.delete(`${m.sourceName} @ ${m.zone}`);
    const sourceId =
      found?.id ??
      (
        await cinder.createVolume({
          name: m.sourceName,
          size: OS_IMAGE_SIZE_GB,
          volumeType: m.volumeType,
          availabilityZone: m.zone,
        })
      ).id;
    todo.push({ ...m, sourceId });
  }
  await waitAll(
    'source volume',
    todo.map((t) => t.sourceId),
    raw.volume,
    'available',
  );
  for (const t of todo) toMarkBootable.add(t.sourceId);
  for (const id of toMarkBootable) await raw.setBootable(id);

  const snaps: Snapshot[] = [];
  for (const t of todo) {
    snaps.push(
      await cinder.createSnapshot({
        volumeId: t.sourceId,
        name: rule.format(t.os, t.volumeType, '1'),
      }),
    );
  }
  await waitAll(
    'snapshot',
    snaps.map((s) => s.id),
    (id) => cinder.getSnapshot(id),
    'available',
  );
  return {
    oses: oses.length,
    types: pool.volumeTypes.length,
    zones,
    snapshots: snaps.length,
    madeBootable: toMarkBootable.size - todo.length,
  };
}

if (require.main === module) {
  bootstrap(cinderFromConfig(loadConfig())).catch((err) => {
    console.error(`bootstrap failed: ${(err as Error).message}`);
    process.exit(1);
  });
}
