/**
 * Resolving each OS to its newest snapshot (the seed's os table, 方案2 of its discussion 1):
 * every fill looks at Cinder's snapshots by the naming rule, so a new image is picked up without
 * anyone remembering to run sync-os; sync-os rebuilds the table on demand.
 */
import { log } from '@temporalio/activity';
import { compareVersions } from '../../lib/config/snapshot-name-rule';
import { OsImageRepository } from '../../lib/pool-state/repository';
import type { CinderClient, Snapshot } from '../../lib/cinder';
import type { SnapshotNameRule } from '../../lib/config/snapshot-name-rule';
import type { ResolvedImage, ResolveResult } from '../../contracts/fill';
import type { Deps } from '../deps';

/** A snapshot's zone given by the operator (snapshot metadata) wins over its source volume's. */
export const SNAPSHOT_ZONE_KEY = 'availability_zone';

export interface Candidate {
  snap: Snapshot;
  version: string;
}

/** The available snapshots the rule names for (os, type), newest version (then created) first. */
export function rankSnapshots(
  snapshots: Snapshot[],
  rule: SnapshotNameRule,
  os: string,
  type: string,
): Candidate[] {
  return snapshots
    .filter((snap) => snap.status === 'available')
    .map((snap) => ({ snap, version: rule.match(snap.name, os, type) }))
    .filter((c): c is Candidate => c.version !== null)
    .sort(
      (a, b) =>
        compareVersions(b.version, a.version) || b.snap.createdAt.localeCompare(a.snap.createdAt),
    );
}

/**
 * The newest of `ranked` in `zone` ('' : the pool names no zones, the newest of any). A
 * snapshot's zone: its metadata, else its source volume's (`sourceZone`; null: unknown).
 */
export async function newestInZone(
  ranked: Candidate[],
  zone: string,
  sourceZone: (snap: Snapshot) => Promise<string | null>,
): Promise<Candidate | undefined> {
  if (!zone) return ranked[0];
  for (const c of ranked)
    if ((c.snap.metadata[SNAPSHOT_ZONE_KEY] || (await sourceZone(c.snap))) === zone) return c;
  return undefined;
}

/** The current snapshot of (os, type) in `zone`, straight from Cinder (benches, tests). */
export async function currentOsSnapshot(
  cinder: CinderClient,
  rule: SnapshotNameRule,
  os: string,
  type: string,
  zone: string,
): Promise<Snapshot | undefined> {
  const ranked = rankSnapshots(await cinder.listSnapshots({ status: 'available' }), rule, os, type);
  const found = await newestInZone(
    ranked,
    zone,
    async (snap) => (await cinder.findVolume(snap.volumeId))?.availabilityZone ?? null,
  );
  return found?.snap;
}

export function resolveImagesActivity({
  config,
  cinder,
  db,
}: Pick<Deps, 'config' | 'cinder' | 'db'>) {
  const repo = new OsImageRepository(db);
  const zoned = config.pool.zones.length > 0;
  /** Source volume id → its zone and real Cinder type; neither changes for a volume's snapshots. */
  const sources = new Map<string, { zone: string; volumeType: string | null } | null>();

  async function sourceOf(snap: Snapshot) {
    if (!sources.has(snap.volumeId)) {
      // The snapshot's source volume carries the real Cinder type (on Ceph: pool + type) and
      // the zone: a volume made from the snapshot lands in that zone (cloned_volume_same_az).
      const v = await cinder.findVolume(snap.volumeId);
      // A source volume gone (deleted after its snapshot) is asked again next time, not cached.
      if (!v) return null;
      sources.set(snap.volumeId, { zone: v.availabilityZone, volumeType: v.volumeType });
      if (sources.size > 10_000) sources.delete(sources.keys().next().value as string);
    }
    return sources.get(snap.volumeId) ?? null;
  }

  const sourceZone = async (snap: Snapshot) => (await sourceOf(snap))?.zone ?? null;

  return async function resolveImages(opts: { replaceAll?: boolean } = {}): Promise<ResolveResult> {
    const rule = config.pool.snapshotNameRule;
    const key = (os: string, type: string, zone: string) => `${os}\u0000${type}\u0000${zone}`;
    const known = new Map((await repo.list()).map((i) => [key(i.os, i.type, i.zone), i]));
    const snapshots = await cinder.listSnapshots({ status: 'available' });
    const images: ResolvedImage[] = [];
    const skipped: ResolveResult['skipped'] = [];
    const changed: ResolveResult['changed'] = [];
    const ranked = new Map<string, Candidate[]>(); // per (os, type)

    for (const { os, volumeType: type, zone } of config.pool.targets) {
      let candidates = ranked.get(key(os, type, ''));
      if (!candidates) {
        candidates = rankSnapshots(snapshots, rule, os, type);
        ranked.set(key(os, type, ''), candidates);
      }
      const best = await newestInZone(candidates, zone, sourceZone);
      const where = zone ? ` in zone ${zone}` : '';
      if (!best) {
        const unplaced = zoned
          ? ' (a snapshot with neither an availability_zone metadata nor a source volume has no zone)'
          : '';
        const reason = `no available snapshot named like "${rule.format(os, type, '<version>')}"${where}${candidates.length > 0 ? unplaced : ''}`;
        log.warn(`skipping ${type}/${os}${where}: ${reason}`);
        skipped.push({ os, type, ...(zone ? { zone } : {}), reason });
        continue;
      }
      const prev = known.get(key(os, type, zone));
      const volumeType =
        (prev?.snapshotId === best.snap.id ? prev.volumeType : undefined) ??
        (await sourceOf(best.snap))?.volumeType ??
        type;
      const image: ResolvedImage = {
        os,
        type,
        zone,
        snapshotId: best.snap.id,
        snapshotName: best.snap.name,
        version: best.version,
        volumeType,
        sizeGb: best.snap.size,
      };
      images.push(image);
      if (prev?.snapshotId !== image.snapshotId) {
        changed.push({
          os,
          type,
          ...(zone ? { zone } : {}),
          from: prev?.snapshotId ?? null,
          to: image.snapshotId,
        });
        if (prev)
          log.info(
            `new image for ${type}/${os}${where}: ${best.snap.name}; older stock is now stale`,
          );
      }
    }

    if (opts.replaceAll) await repo.replaceAll(db, images);
    else {
      for (const img of images) await repo.upsert(img);
      // Images of pools no longer configured (a zone turned on or off, an OS dropped) go: their
      // stock is stale and drains, and `drain --stale` must see it so.
      await repo.keepOnly(
        config.pool.targets.map((t) => ({ os: t.os, type: t.volumeType, zone: t.zone })),
      );
    }
    return { images, skipped, changed };
  };
}
