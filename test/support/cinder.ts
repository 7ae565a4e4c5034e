import { randomUUID } from 'node:crypto';
import axios from 'axios';
import { admin, waitFor } from './env';
import { config } from './env';
import type { CinderClient, Snapshot, Volume } from '../../lib/cinder';
import { SNAPSHOT_ZONE_KEY } from '../../activities/fill/images';

/**
 * The bootstrap's OS-image snapshot for (os, type), found by the naming rule; with `zone`, one in
 * that zone as the fill tells it (the snapshot's zone metadata, else its source volume's zone).
 * '' (no zones configured): any zone.
 */
export async function osSnapshot(
  os = 'Debian8 64bit',
  volumeType = 'sas',
  zone = '',
): Promise<Snapshot> {
  const rule = config.pool.snapshotNameRule;
  const snaps = (await admin.listSnapshots()).filter(
    (s) => s.status === 'available' && rule.match(s.name, os, volumeType) !== null,
  );
  for (const snap of snaps) {
    if (!zone) return snap;
    const where =
      snap.metadata[SNAPSHOT_ZONE_KEY] || (await admin.findVolume(snap.volumeId))?.availabilityZone;
    if (where === zone) return snap;
  }
  throw new Error(
    `no snapshot for ${os}/${volumeType}${zone ? ` in zone ${zone}` : ''}: run npm run stack:up`,
  );
}

export async function waitVolumeStatus(
  client: CinderClient,
  id: string,
  status: string,
  timeoutMs = 60_000,
): Promise<Volume> {
  return waitFor(
    `volume ${id} → ${status}`,
    () => client.getVolume(id),
    (v) => v.status === status,
    timeoutMs,
  );
}

export async function waitVolumeGone(
  client: CinderClient,
  id: string,
  timeoutMs = 60_000,
): Promise<void> {
  await waitFor(
    `volume ${id} deleted`,
    () => client.findVolume(id),
    (v) => v === null,
    timeoutMs,
  );
}

/**
 * Attaches a volume the way Nova reserves one (Cinder's attachments API, microversion 3.27):
 * the volume turns `reserved` and Cinder refuses to delete it. Returns the detach.
 */
export async function attachVolume(volumeId: string): Promise<() => Promise<void>> {
  const { token, endpoint } = await admin.auth.session();
  const http = axios.create({
    baseURL: endpoint,
    headers: { 'X-Auth-Token': token, 'OpenStack-API-Version': 'volume 3.27' },
  });
  const res = await http.post<{ attachment: { id: string } }>('/attachments', {
    attachment: { volume_uuid: volumeId, instance_uuid: randomUUID() },
  });
  const id = res.data.attachment.id;
  return async () => {
    await http.delete(`/attachments/${id}`);
  };
}
