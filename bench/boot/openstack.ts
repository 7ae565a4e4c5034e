/**
 * What bench:boot needs of the stack's Nova and Cinder beyond scripts/stack/nova-client.ts, as a
 * Keystone user sees them: each zone's newest OS-image snapshot of a project, a volume's
 * attachments, waiting until a volume is gone, and claims through the in-process API.
 */
import type { FastifyInstance } from 'fastify';
import type { ClaimResult } from '../../contracts/claim';
import { compareVersions, type SnapshotNameRule } from '../../lib/config/snapshot-name-rule';
import * as nova from '../../scripts/stack/nova-client';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A Keystone user's session that logs in again when a call is refused with 401 (a token revoked
 * meanwhile: on the shared stack other runs may change users), once per call. The session object
 * keeps its identity: whoever holds it uses the new token from then on.
 */
export class KeystoneUser {
  session!: nova.Session;
  /** How many times a 401 made it log in again. */
  relogins = 0;

  constructor(
    readonly user: string,
    readonly project: string,
    private readonly password: string,
  ) {}

  async login(): Promise<nova.Session> {
    const fresh = await nova.login(this.user, this.project, this.password);
    this.session = this.session ? Object.assign(this.session, fresh) : fresh;
    return this.session;
  }

  /** `fn` with the session; refused with 401, once more after a new login. */
  async call<T>(fn: (s: nova.Session) => Promise<T>): Promise<T> {
    try {
      return await fn(this.session);
    } catch (err) {
      if (!(err instanceof nova.OpenStackError && err.status === 401)) throw err;
      this.relogins++;
      await this.login();
      return fn(this.session);
    }
  }
}

/**
 * The newest OS-image snapshot of (os, type) per zone among the session's project's snapshots:
 * the bootstrap makes one per zone under one name, told apart by the source volume's zone.
 */
export async function zoneSnapshots(
  s: nova.Session,
  rule: SnapshotNameRule,
  os: string,
  type: string,
  zones: readonly string[],
): Promise<Map<string, nova.Snapshot>> {
  const byZone = new Map<string, nova.Snapshot & { version: string }>();
  for (const snap of await nova.listSnapshots(s)) {
    const version = snap.status === 'available' ? rule.match(snap.name ?? '', os, type) : null;
    if (version === null) continue;
    const zone = (await nova.getVolume(s, snap.volume_id))?.availability_zone;
    if (!zone || !zones.includes(zone)) continue;
    const had = byZone.get(zone);
    if (!had || compareVersions(version, had.version) > 0) byZone.set(zone, { ...snap, version });
  }
  return byZone;
}

/** A volume's status and the servers it is attached to, as the session's Cinder shows them. */
export async function volumeAttachments(
  s: nova.Session,
  id: string,
): Promise<{ status: string; zone: string; servers: string[] } | null> {
  const res = await fetch(`${s.volume}/volumes/${id}`, {
    headers: { 'X-Auth-Token': s.token, 'OpenStack-API-Version': 'volume 3.27' },
    signal: AbortSignal.timeout(30_000),
  });
  if (res.status === 404) return null;
  if (res.status !== 200)
    throw new nova.OpenStackError(`GET volume ${id}: HTTP ${res.status}`, res.status);
  const { volume } = (await res.json()) as {
    volume: { status: string; availability_zone: string; attachments: { server_id: string }[] };
  };
  return {
    status: volume.status,
    zone: volume.availability_zone,
    servers: volume.attachments.map((a) => a.server_id),
  };
}

/** Deletes the volume once it is free (nova-client) and waits until Cinder no longer has it. */
export async function deleteVolumeAndWait(
  s: nova.Session,
  id: string,
  timeoutMs = 120_000,
): Promise<void> {
  await nova.deleteVolume(s, id);
  const deadline = Date.now() + timeoutMs;
  while ((await nova.getVolume(s, id)) !== null) {
    if (Date.now() > deadline) throw new Error(`volume ${id} not gone after ${timeoutMs} ms`);
    await sleep(250);
  }
}

/**
 * POST /v1/claims through the in-process API (fastify inject), following a 202 until the claim
 * completes; the claim's answer.
 */
export async function claimThroughApi(
  api: Pick<FastifyInstance, 'inject'>,
  headers: Record<string, string>,
  body: { requestId: string } & Record<string, unknown>,
  timeoutMs = 300_000,
): Promise<ClaimResult> {
  let res = await api.inject({ method: 'POST', url: '/v1/claims', headers, payload: body });
  const deadline = Date.now() + timeoutMs;
  const running = () =>
    res.statusCode === 202 ||
    (res.statusCode === 200 && (res.json() as { status?: string }).status === 'running');
  while (running()) {
    if (Date.now() > deadline) throw new Error(`claim ${body.requestId} still running`);
    await sleep(100);
    res = await api.inject({
      method: 'GET',
      url: `/v1/claims/${encodeURIComponent(body.requestId)}`,
      headers,
    });
  }
  const answer = res.json() as ClaimResult & { status?: string; error?: string };
  if (res.statusCode === 201 || (res.statusCode === 200 && answer.status === 'completed'))
    return answer;
  throw new Error(`claim ${body.requestId}: HTTP ${res.statusCode} ${res.body}`);
}
