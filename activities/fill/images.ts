/**
 * Resolving each OS to its newest snapshot (the seed's os table, 方案2 of its discussion 1):
 * every fill looks at Cinder's snapshots by the naming rule, so a new image is picked up without
 * anyone remembering to run sync-os; sync-os rebuilds the table on demand.
 */
import { log } from '@temporalio/activity';
import { compareVersions } from '../../lib/config/snapshot-name-rule';
import { OsImageRepository } from '../../lib/pool-state/repository';
import type { Snapshot } from '../../lib/cinder';
import type { ResolvedImage, ResolveResult } from '../../contracts/fill';
import type { Deps } from '../deps';

function newest(candidates: { snap: Snapshot; version: string }[]) {
  return candidates.sort(
    (a, b) =>
      compareVersions(b.version, a.version) || b.snap.createdAt.localeCompare(a.snap.createdAt),
  )[0];
}

export function resolveImagesActivity({
  config,
  cinder,
  db,
}: Pick<Deps, 'config' | 'cinder' | 'db'>) {
  const repo = new OsImageRepository(db);
  return async function resolveImages(opts: { replaceAll?: boolean } = {}): Promise<ResolveResult> {
    const rule = config.pool.snapshotNameRule;
    const known = new Map((await repo.list()).map((i) => [`${i.os}\u0000${i.type}`, i]));
    const snapshots = (await cinder.listSnapshots({ status: 'available' })).filter(
      (s) => s.status === 'available',
    );
    const sourceTypes = new Map<string, string | null>(); // source volume id → its real Cinder type
    const images: ResolvedImage[] = [];
    const skipped: ResolveResult['skipped'] = [];
    const changed: ResolveResult['changed'] = [];

    for (const { os, volumeType: type } of config.pool.targets) {
      const candidates = snapshots
        .map((snap) => ({ snap, version: rule.match(snap.name, os, type) }))
        .filter((c): c is { snap: Snapshot; version: string } => c.version !== null);
      const best = newest(candidates);
      if (!best) {
        const reason = `no available snapshot named like "${rule.format(os, type, '<version>')}"`;
        log.warn(`skipping ${type}/${os}: ${reason}`);
        skipped.push({ os, type, reason });
        continue;
      }
      const prev = known.get(`${os}\u0000${type}`);
      let volumeType = prev?.snapshotId === best.snap.id ? prev.volumeType : undefined;
      if (!volumeType) {
        // The snapshot's source volume carries the real Cinder type (on Ceph: pool + type).
        if (!sourceTypes.has(best.snap.volumeId)) {
          const source = await cinder.findVolume(best.snap.volumeId);
          sourceTypes.set(best.snap.volumeId, source?.volumeType ?? null);
        }
        volumeType = sourceTypes.get(best.snap.volumeId) ?? type;
      }
      const image = {
        os,
        type,
        snapshotId: best.snap.id,
        snapshotName: best.snap.name,
        version: best.version,
        volumeType,
        sizeGb: best.snap.size,
      };
      images.push(image);
      if (prev?.snapshotId !== image.snapshotId) {
        changed.push({ os, type, from: prev?.snapshotId ?? null, to: image.snapshotId });
        if (prev)
          log.info(`new image for ${type}/${os}: ${best.snap.name}; older stock is now stale`);
      }
    }

    if (opts.replaceAll) await repo.replaceAll(db, images);
    else for (const img of images) await repo.upsert(img);
    return { images, skipped, changed };
  };
}
