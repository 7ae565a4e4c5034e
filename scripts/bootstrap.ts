/**
 * Makes the local Cinder look like an operator's cloud: the pool's volume types, quotas for the
 * admin and tenant projects, and for every (type × OS) of the configuration a source volume and
 * an OS-image snapshot named by the snapshot naming rule. Idempotent: existing things are kept.
 * Acts as the configuration's identity: noauth by default, a Keystone cloud with OS_CLOUD.
 */
import { loadConfig } from '../lib/config/load';
import { cinderFromConfig, type CinderClient, type Snapshot, type Volume } from '../lib/cinder';
import {
  ADMIN_QUOTA,
  FAKE_BACKEND,
  OS_IMAGE_SIZE_GB,
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

  const rule = config.pool.snapshotNameRule;
  const oses = [...config.pool.osMore, ...config.pool.osLess];
  const snapshots = await cinder.listSnapshots();
  const volumes = await cinder.listVolumes();
  let made = 0;
  for (const volumeType of config.pool.volumeTypes) {
    for (const os of oses) {
      if (
        snapshots.some(
          (s) => rule.match(s.name, os, volumeType) !== null && s.status === 'available',
        )
      )
        continue;
      const sourceName = `os-source ${os} ${volumeType}`;
      let source: Volume | undefined = volumes.find(
        (v) => v.name === sourceName && v.status === 'available',
      );
      source ??= await cinder.createVolume({
        name: sourceName,
        size: OS_IMAGE_SIZE_GB,
        volumeType,
      });
      await waitStatus(
        `source volume ${sourceName}`,
        () => cinder.getVolume(source.id),
        'available',
      );
      const snap: Snapshot = await cinder.createSnapshot({
        volumeId: source.id,
        name: rule.format(os, volumeType, '1'),
      });
      await waitStatus(`snapshot ${snap.name}`, () => cinder.getSnapshot(snap.id), 'available');
      made++;
    }
  }
  log(
    `  OS images: ${oses.length} OS × ${config.pool.volumeTypes.length} types, ${made} snapshot(s) created`,
  );
}

if (require.main === module) {
  bootstrap(cinderFromConfig(loadConfig())).catch((err) => {
    console.error(`bootstrap failed: ${(err as Error).message}`);
    process.exit(1);
  });
}
