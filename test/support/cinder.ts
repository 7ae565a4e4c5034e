import { randomUUID } from 'node:crypto';
import axios from 'axios';
import { admin, waitFor } from './env';
import { config } from './env';
import type { CinderClient, Snapshot, Volume } from '../../lib/cinder';
import { currentOsSnapshot } from '../../activities/fill/images';

/**
 * The bootstrap's OS-image snapshot for (os, type), found as the fill finds it: the newest the
 * naming rule names, with `zone` the newest in that zone. '' (no zones configured): any zone.
 */
export async function osSnapshot(
  os = 'Debian8 64bit',
  volumeType = 'sas',
  zone = '',
): Promise<Snapshot> {
  const snap = await currentOsSnapshot(admin, config.pool.snapshotNameRule, os, volumeType, zone);
  if (snap) return snap;
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
