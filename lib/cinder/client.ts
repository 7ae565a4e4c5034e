/**
 * A typed Cinder v3 client with just what the pool needs. It never retries by itself: retries
 * belong to the caller (Temporal activities), which knows whether a call is idempotent.
 * It never logs tokens or transfer auth keys.
 *
 * Cinder quirks respected here:
 * - an unknown list filter is silently ignored by some versions and empties the list on others:
 *   only filters Cinder documents for the resource are ever sent;
 * - transfers use `volume-transfers` (microversion 3.55) when the server offers it, else the
 *   legacy `os-volume-transfer`;
 * - a volume must be `available` to be transferred and is `awaiting-transfer` meanwhile.
 */
import axios, { type AxiosInstance, type AxiosResponse, type Method } from 'axios';
import type { Authenticator, Session } from './auth';
import { CreatingVolumes } from './creating';
import { CinderError, CinderUnavailable, cinderMessage, errorForStatus } from './errors';
import type {
  CreateVolumeRequest,
  CreatedTransfer,
  ListSnapshotsQuery,
  ListVolumesQuery,
  QuotaUsage,
  Snapshot,
  Transfer,
  Volume,
  VolumeType,
} from './types';

export interface CinderClientOptions {
  timeoutMs?: number;
  /** Calls in flight at once for this client and those derived from it; the rest queue. */
  maxConcurrentCalls?: number;
  /** Aborts every call of this client (see withSignal). */
  signal?: AbortSignal;
  /** 'auto' asks the server's version document once; tests can force either API. */
  transferApi?: 'auto' | 'volume-transfers' | 'os-volume-transfer';
  log?: (event: {
    method: string;
    path: string;
    status?: number;
    ms: number;
    requestId?: string;
  }) => void;
}

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  microversion?: string;
}

const TRANSFER_MICROVERSION = '3.55';

type Raw = Record<string, unknown>;

function toVolume(v: Raw): Volume {
  return {
    id: v.id as string,
    name: (v.name as string | null) ?? '',
    description: (v.description as string | null) ?? '',
    status: v.status as string,
    size: v.size as number,
    volumeType: (v.volume_type as string | null) ?? null,
    snapshotId: (v.snapshot_id as string | null) ?? null,
    availabilityZone: (v.availability_zone as string | null) ?? '',
    bootable: String(v.bootable) === 'true',
    metadata: (v.metadata as Record<string, string>) ?? {},
    projectId: v['os-vol-tenant-attr:tenant_id'] as string | undefined,
    createdAt: v.created_at as string,
    updatedAt: (v.updated_at as string | null) ?? null,
  };
}

function toSnapshot(s: Raw): Snapshot {
  return {
    id: s.id as string,
    name: (s.name as string | null) ?? '',
    status: s.status as string,
    size: s.size as number,
    volumeId: s.volume_id as string,
    metadata: (s.metadata as Record<string, string>) ?? {},
    projectId: s['os-extended-snapshot-attributes:project_id'] as string | undefined,
    createdAt: s.created_at as string,
  };
}

function toTransfer(t: Raw): Transfer {
  return {
    id: t.id as string,
    name: (t.name as string | null) ?? null,
    volumeId: t.volume_id as string,
    createdAt: t.created_at as string | undefined,
  };
}

/** What a client and every client derived from it (asProject, withSignal) share. */
interface Shared {
  /** One HTTP agent: a derived client differs only in identity and abort signal. */
  http: AxiosInstance;
  /** The transfer API the server offers: probed once per root client, not per derived one. */
  transferApi?: Promise<'volume-transfers' | 'os-volume-transfer'>;
  /** HTTP requests sent to Cinder (the pool's cost in Cinder calls). */
  calls: number;
  /** The `creating` lists waiters share (see creatingWatch). */
  creating: CreatingVolumes;
  /** Bounds the calls in flight (maxConcurrentCalls). */
  slots: Slots;
}

/** A counting semaphore: `take` waits for a free slot (or the signal), `give` frees one. */
class Slots {
  private free: number;
  private readonly queue: (() => void)[] = [];
  /** Served before `queue`: calls that start long backend work (see `first`). */
  private readonly firstQueue: (() => void)[] = [];

  constructor(size: number) {
    this.free = size;
  }

  async take(signal?: AbortSignal, first = false): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    const queue = first ? this.firstQueue : this.queue;
    await new Promise<void>((resolve, reject) => {
      const turn = () => {
        signal?.removeEventListener('abort', abort);
        resolve();
      };
      const abort = () => {
        const at = queue.indexOf(turn);
        if (at >= 0) queue.splice(at, 1);
        reject(Object.assign(new Error('canceled'), { code: 'ERR_CANCELED' }));
      };
      if (signal?.aborted) return abort();
      queue.push(turn);
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  give(): void {
    const next = this.firstQueue.shift() ?? this.queue.shift();
    if (next) next();
    else this.free++;
  }
}

export class CinderClient {
  private readonly shared: Shared;

  constructor(
    readonly auth: Authenticator,
    private readonly opts: CinderClientOptions = {},
    shared?: Shared,
  ) {
    this.shared = shared ?? {
      calls: 0,
      creating: new CreatingVolumes(),
      slots: new Slots(opts.maxConcurrentCalls ?? Infinity),
      http: axios.create({
        timeout: opts.timeoutMs ?? 30_000,
        validateStatus: () => true,
        // Cinder answers small JSON documents; anything huge is a bug, not a volume list.
        maxContentLength: 64 * 1024 * 1024,
      }),
    };
  }

  private get http(): AxiosInstance {
    return this.shared.http;
  }

  /** The same client acting as another project (the tenant side of a transfer). */
  asProject(projectId: string, userId?: string): CinderClient {
    return new CinderClient(this.auth.forProject(projectId, userId), this.opts, this.shared);
  }

  /** Requests sent to Cinder by this client and every client derived from it. */
  get callCount(): number {
    return this.shared.calls;
  }

  /**
   * The same client whose calls are aborted when `signal` fires (an activity's cancellation):
   * a cancelled or timed-out attempt stops talking to Cinder instead of racing its retry.
   */
  withSignal(signal: AbortSignal): CinderClient {
    return new CinderClient(this.auth, { ...this.opts, signal }, this.shared);
  }

  async projectId(): Promise<string> {
    return (await this.auth.session()).projectId;
  }

  /**
   * A waiter's view of whether volume `id` (of this client's project) is still `creating`, for
   * polling it: the first answer is false (the caller looks at the volume itself first; a retry
   * may find it done), later ones come from one list of the project's creating volumes shared by
   * every waiter of this client family (see CreatingVolumes), fresh within half a poll and never
   * older than the wait. The caller GETs its volume only when the answer is false.
   */
  creatingWatch(id: string, pollMs: number): () => Promise<boolean> {
    const since = Date.now();
    let first = true;
    return async () => {
      if (first) {
        first = false;
        return false;
      }
      return this.shared.creating.stillCreating(
        await this.projectId(),
        id,
        { notBefore: since, freshMs: pollMs / 2 },
        // Shared by many waiters: no single attempt's cancellation may abort it.
        () =>
          new CinderClient(this.auth, { ...this.opts, signal: undefined }, this.shared).listVolumes(
            { status: 'creating' },
          ),
      );
    };
  }

  // ------------------------------------------------------------------ volumes

  async createVolume(req: CreateVolumeRequest): Promise<Volume> {
    const body = {
      volume: {
        name: req.name,
        size: req.size,
        snapshot_id: req.snapshotId,
        volume_type: req.volumeType,
        metadata: req.metadata ?? {},
        description: req.description,
        availability_zone: req.availabilityZone,
      },
    };
    const res = await this.request<{ volume: Raw }>('POST', '/volumes', { body });
    return toVolume(res.volume);
  }

  async getVolume(id: string): Promise<Volume> {
    const res = await this.request<{ volume: Raw }>('GET', `/volumes/${encodeURIComponent(id)}`);
    return toVolume(res.volume);
  }

  /** The volume, or null if Cinder does not know it (deleted). */
  async findVolume(id: string): Promise<Volume | null> {
    try {
      return await this.getVolume(id);
    } catch (err) {
      if (err instanceof CinderError && err.status === 404) return null;
      throw err;
    }
  }

  async listVolumes(q: ListVolumesQuery = {}): Promise<Volume[]> {
    const query: RequestOptions['query'] = {
      name: q.name,
      status: q.status,
      metadata: q.metadata ? JSON.stringify(q.metadata) : undefined,
      all_tenants: q.allTenants ? 1 : undefined,
    };
    const pages = await this.paginate('/volumes/detail', 'volumes', query, q.pageSize ?? 500);
    return pages.map(toVolume);
  }

  /** Renames/redescribes; `metadata` replaces the whole set (Cinder's PUT takes all in one call). */
  async updateVolume(
    id: string,
    patch: { name?: string; description?: string; metadata?: Record<string, string> },
  ): Promise<Volume> {
    const res = await this.request<{ volume: Raw }>('PUT', `/volumes/${encodeURIComponent(id)}`, {
      body: { volume: patch },
    });
    return toVolume(res.volume);
  }

  /** Replaces the whole metadata set (PUT semantics: idempotent). */
  async replaceVolumeMetadata(
    id: string,
    metadata: Record<string, string>,
  ): Promise<Record<string, string>> {
    const res = await this.request<{ metadata: Record<string, string> }>(
      'PUT',
      `/volumes/${encodeURIComponent(id)}/metadata`,
      { body: { metadata } },
    );
    return res.metadata;
  }

  async deleteVolume(id: string, opts: { cascade?: boolean } = {}): Promise<void> {
    await this.request('DELETE', `/volumes/${encodeURIComponent(id)}`, {
      query: { cascade: opts.cascade ? 'true' : undefined },
    });
  }

  /** Grows a volume to `newSizeGb` (an `available` volume; Cinder refuses to shrink). */
  async extendVolume(id: string, newSizeGb: number): Promise<void> {
    await this.action(id, { 'os-extend': { new_size: newSizeGb } });
  }

  /** Admin: force a volume's status (tests and operators use it to recover stuck volumes). */
  async resetVolumeStatus(id: string, status: string): Promise<void> {
    await this.action(id, { 'os-reset_status': { status } });
  }

  private async action(id: string, body: unknown): Promise<void> {
    await this.request('POST', `/volumes/${encodeURIComponent(id)}/action`, { body });
  }

  // ------------------------------------------------------------------ snapshots

  async listSnapshots(q: ListSnapshotsQuery = {}): Promise<Snapshot[]> {
    const query = {
      name: q.name,
      status: q.status,
      volume_id: q.volumeId,
      all_tenants: q.allTenants ? 1 : undefined,
    };
    const pages = await this.paginate('/snapshots/detail', 'snapshots', query, q.pageSize ?? 500);
    return pages.map(toSnapshot);
  }

  async getSnapshot(id: string): Promise<Snapshot> {
    const res = await this.request<{ snapshot: Raw }>(
      'GET',
      `/snapshots/${encodeURIComponent(id)}`,
    );
    return toSnapshot(res.snapshot);
  }

  async createSnapshot(req: {
    volumeId: string;
    name: string;
    metadata?: Record<string, string>;
  }): Promise<Snapshot> {
    const res = await this.request<{ snapshot: Raw }>('POST', '/snapshots', {
      body: { snapshot: { volume_id: req.volumeId, name: req.name, metadata: req.metadata ?? {} } },
    });
    return toSnapshot(res.snapshot);
  }

  async deleteSnapshot(id: string): Promise<void> {
    await this.request('DELETE', `/snapshots/${encodeURIComponent(id)}`);
  }

  // ------------------------------------------------------------------ volume types

  async listVolumeTypes(): Promise<VolumeType[]> {
    const res = await this.request<{ volume_types: Raw[] }>('GET', '/types');
    return res.volume_types.map((t) => ({
      id: t.id as string,
      name: t.name as string,
      extraSpecs: (t.extra_specs as Record<string, string>) ?? {},
    }));
  }

  async createVolumeType(
    name: string,
    extraSpecs: Record<string, string> = {},
  ): Promise<VolumeType> {
    const res = await this.request<{ volume_type: Raw }>('POST', '/types', {
      body: { volume_type: { name, extra_specs: extraSpecs } },
    });
    const t = res.volume_type;
    return {
      id: t.id as string,
      name: t.name as string,
      extraSpecs: (t.extra_specs as Record<string, string>) ?? {},
    };
  }

  // ------------------------------------------------------------------ transfers

  /** Offers the volume for transfer. The returned auth key is a secret: never log or persist it. */
  async createTransfer(volumeId: string, name: string): Promise<CreatedTransfer> {
    const api = await this.transfers();
    const res = await this.request<{ transfer: Raw }>('POST', `/${api}`, {
      body: { transfer: { volume_id: volumeId, name } },
      microversion: api === 'volume-transfers' ? TRANSFER_MICROVERSION : undefined,
    });
    return { ...toTransfer(res.transfer), authKey: res.transfer.auth_key as string };
  }

  async getTransfer(id: string): Promise<Transfer> {
    const api = await this.transfers();
    const res = await this.request<{ transfer: Raw }>('GET', `/${api}/${encodeURIComponent(id)}`, {
      microversion: api === 'volume-transfers' ? TRANSFER_MICROVERSION : undefined,
    });
    return toTransfer(res.transfer);
  }

  /** Pending transfers; `volumeId` narrows to one volume (a model column, so a safe filter). */
  async listTransfers(q: { volumeId?: string; allTenants?: boolean } = {}): Promise<Transfer[]> {
    const api = await this.transfers();
    const res = await this.request<{ transfers: Raw[] }>('GET', `/${api}/detail`, {
      query: { volume_id: q.volumeId, all_tenants: q.allTenants ? 1 : undefined },
      microversion: api === 'volume-transfers' ? TRANSFER_MICROVERSION : undefined,
    });
    const all = res.transfers.map(toTransfer);
    // Belt and braces: an older server that ignores the filter must not make us act on another volume.
    return q.volumeId ? all.filter((t) => t.volumeId === q.volumeId) : all;
  }

  /** Cancels a pending transfer; the volume goes back to `available`. */
  async deleteTransfer(id: string): Promise<void> {
    const api = await this.transfers();
    await this.request('DELETE', `/${api}/${encodeURIComponent(id)}`, {
      microversion: api === 'volume-transfers' ? TRANSFER_MICROVERSION : undefined,
    });
  }

  /** Accepts a transfer as this client's project: the volume moves here, keeping name and metadata. */
  async acceptTransfer(
    id: string,
    authKey: string,
  ): Promise<{ transferId: string; volumeId: string }> {
    const api = await this.transfers();
    const res = await this.request<{ transfer: Raw }>(
      'POST',
      `/${api}/${encodeURIComponent(id)}/accept`,
      {
        body: { accept: { auth_key: authKey } },
        microversion: api === 'volume-transfers' ? TRANSFER_MICROVERSION : undefined,
      },
    );
    return { transferId: res.transfer.id as string, volumeId: res.transfer.volume_id as string };
  }

  // ------------------------------------------------------------------ quotas

  async getQuotaUsage(projectId?: string): Promise<Record<string, QuotaUsage>> {
    const pid = projectId ?? (await this.projectId());
    const res = await this.request<{ quota_set: Record<string, unknown> }>(
      'GET',
      `/os-quota-sets/${encodeURIComponent(pid)}`,
      { query: { usage: 'true' } },
    );
    const out: Record<string, QuotaUsage> = {};
    for (const [k, v] of Object.entries(res.quota_set)) {
      if (v && typeof v === 'object' && 'limit' in v) {
        const u = v as { limit: number; in_use: number; reserved: number };
        out[k] = { limit: u.limit, inUse: u.in_use, reserved: u.reserved };
      }
    }
    return out;
  }

  /** Admin: set quota limits of a project (e.g. { volumes: 100, gigabytes: 1000 }). */
  async updateQuota(projectId: string, limits: Record<string, number>): Promise<void> {
    await this.request('PUT', `/os-quota-sets/${encodeURIComponent(projectId)}`, {
      body: { quota_set: limits },
    });
  }

  // ------------------------------------------------------------------ services (health)

  async listServices(): Promise<{ binary: string; host: string; state: string; status: string }[]> {
    const res = await this.request<{ services: Raw[] }>('GET', '/os-services');
    return res.services.map((s) => ({
      binary: s.binary as string,
      host: s.host as string,
      state: s.state as string,
      status: s.status as string,
    }));
  }

  // ------------------------------------------------------------------ plumbing

  private transfers(): Promise<'volume-transfers' | 'os-volume-transfer'> {
    const forced = this.opts.transferApi;
    if (forced && forced !== 'auto') return Promise.resolve(forced);
    this.shared.transferApi ??= this.maxMicroversion().then(
      (v) =>
        v && compareMicroversion(v, TRANSFER_MICROVERSION) >= 0
          ? 'volume-transfers'
          : 'os-volume-transfer',
      (err: unknown) => {
        // A failed probe says nothing about the server: ask again next time instead of pinning
        // the legacy API for the life of the process.
        this.shared.transferApi = undefined;
        throw err instanceof CinderError
          ? err
          : new CinderUnavailable(`Cinder version probe failed: ${(err as Error).message}`, {
              method: 'GET',
              path: '/',
            });
      },
    );
    return this.shared.transferApi;
  }

  /** The highest microversion the server speaks, from its unauthenticated version document. */
  async maxMicroversion(): Promise<string | undefined> {
    const { endpoint, token } = await this.auth.session();
    const at = endpoint.search(/\/v3(\/|$)/);
    const url = at >= 0 ? `${endpoint.slice(0, at)}/v3/` : `${endpoint}/`;
    // Under noauth a tokenless request gets a 204 "here is a token" instead of the document.
    this.shared.calls++;
    const res = await this.http.get(url, { headers: { 'X-Auth-Token': token } });
    if (res.status >= 500) throw new Error(`HTTP ${res.status}`);
    const doc = res.data as {
      version?: { version?: string };
      versions?: { id: string; version?: string }[];
    };
    return (
      doc.version?.version ?? doc.versions?.find((v) => v.id.startsWith('v3'))?.version ?? undefined
    );
  }

  private async paginate(
    path: string,
    key: string,
    query: RequestOptions['query'],
    pageSize: number,
  ): Promise<Raw[]> {
    const out: Raw[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await this.request<Record<string, Raw[]>>('GET', path, {
        query: { ...query, limit: pageSize, marker },
      });
      const items = page[key] ?? [];
      out.push(...items);
      if (items.length < pageSize) return out;
      marker = items[items.length - 1]?.id as string;
    }
  }

  private async request<T = unknown>(
    method: Method,
    path: string,
    opts: RequestOptions = {},
  ): Promise<T> {
    let session = await this.auth.session();
    let res = await this.send(session, method, path, opts);
    if (res.status === 401 && this.auth.kind === 'keystone') {
      // Revoked or expired early: one fresh token (shared with every caller refused the same
      // token), then give up.
      session = await this.auth.session(session.token);
      res = await this.send(session, method, path, opts);
    }
    if (res.status >= 200 && res.status < 300) return res.data as T;
    const requestId = (res.headers['x-openstack-request-id'] ??
      res.headers['x-compute-request-id']) as string | undefined;
    const retryAfter = Number(res.headers['retry-after']);
    throw errorForStatus(res.status, cinderMessage(res.data) ?? `HTTP ${res.status}`, {
      method: method.toUpperCase(),
      path,
      requestId,
      retryAfterSeconds: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
    });
  }

  private async send(
    session: Session,
    method: Method,
    path: string,
    opts: RequestOptions,
  ): Promise<AxiosResponse> {
    const started = Date.now();
    const params: Record<string, string | number | boolean> = {};
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) params[k] = v;
    const headers: Record<string, string> = {
      'X-Auth-Token': session.token,
      Accept: 'application/json',
    };
    if (opts.microversion) headers['OpenStack-API-Version'] = `volume ${opts.microversion}`;
    try {
      // A volume create goes first: the backend's work (minutes on Ceph) then overlaps with the
      // API calls queued behind it, instead of starting after them.
      await this.shared.slots.take(this.opts.signal, method === 'POST' && path === '/volumes');
      this.shared.calls++;
      const res = await this.http
        .request({
          method,
          url: `${session.endpoint}${path}`,
          params,
          data: opts.body,
          headers,
          signal: this.opts.signal,
        })
        .finally(() => this.shared.slots.give());
      this.opts.log?.({
        method: method.toUpperCase(),
        path,
        status: res.status,
        ms: Date.now() - started,
        requestId: res.headers['x-openstack-request-id'] as string | undefined,
      });
      return res;
    } catch (err) {
      this.opts.log?.({ method: method.toUpperCase(), path, ms: Date.now() - started });
      const e = err as { code?: string; message: string };
      const what =
        e.code === 'ERR_CANCELED'
          ? 'call cancelled'
          : e.code === 'ECONNABORTED' || e.code === 'ETIMEDOUT'
            ? 'timed out'
            : 'unreachable';
      throw new CinderUnavailable(`Cinder ${what}: ${e.code ?? ''} ${e.message}`.trim(), {
        method: method.toUpperCase(),
        path,
        // Not the axios error itself: its config holds the X-Auth-Token header.
        cause: e.code,
      });
    }
  }
}

export function compareMicroversion(a: string, b: string): number {
  const [a1 = 0, a2 = 0] = a.split('.').map(Number);
  const [b1 = 0, b2 = 0] = b.split('.').map(Number);
  return a1 - b1 || a2 - b2;
}
