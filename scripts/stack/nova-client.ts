/**
 * A small OpenStack client for the demo (scripts/demo.ts), speaking to the local stack's real
 * Nova and Cinder as a Keystone user would: a password login scoped to a project, the catalog's
 * public `compute` and `volumev3` endpoints, and the few calls a VM-creation service makes —
 * create a server, wait for it to leave BUILD, delete it; look at, wait for and delete volumes;
 * list the project's snapshots. Plain fetch, no state beyond the session.
 */

/** Compute 2.37: the first microversion with `networks: "none"` (the stack has no Neutron). */
export const COMPUTE_VERSION = 'compute 2.37';
const VOLUME_VERSION = 'volume 3.27';

export const keystoneUrl = (): string =>
  process.env.OS_AUTH_URL ?? `http://127.0.0.1:${process.env.KEYSTONE_PORT ?? 5000}/v3`;
export const novaRoot = (): string => `http://127.0.0.1:${process.env.NOVA_API_PORT ?? 8774}/`;
/** The password of the stack's Keystone users (scripts/stack.sh), admin aside. */
export const stackUsersPassword = (): string =>
  process.env.KEYSTONE_USERS_PASSWORD ?? 'stack-user-secret';

export interface Session {
  user: string;
  projectName: string;
  projectId: string;
  token: string;
  /** The catalog's public endpoints, without a trailing slash. */
  compute: string;
  volume: string;
}

export class OpenStackError extends Error {
  override name = 'OpenStackError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function call<T>(
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: unknown,
  expect: number[] = [200],
): Promise<{ status: number; data: T; headers: Headers }> {
  const res = await fetch(url, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!expect.includes(res.status)) {
    throw new OpenStackError(
      `${method} ${url}: HTTP ${res.status} ${typeof data === 'string' ? data : JSON.stringify(data)}`.slice(
        0,
        600,
      ),
      res.status,
    );
  }
  return { status: res.status, data: data as T, headers: res.headers };
}

/** A Keystone v3 password login scoped to `project` (domain Default), with its catalog. */
export async function login(user: string, project: string, password: string): Promise<Session> {
  const res = await call<{
    token: {
      project: { id: string };
      catalog: { type: string; endpoints: { interface: string; url: string }[] }[];
    };
  }>(
    'POST',
    `${keystoneUrl()}/auth/tokens`,
    {},
    {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: user, domain: { name: 'Default' }, password } },
        },
        scope: { project: { name: project, domain: { name: 'Default' } } },
      },
    },
    [201],
  );
  const endpoint = (type: string): string => {
    const url = res.data.token.catalog
      .find((c) => c.type === type)
      ?.endpoints.find((e) => e.interface === 'public')?.url;
    if (!url) throw new Error(`no public ${type} endpoint in the catalog of ${user}@${project}`);
    return url.replace(/\/+$/, '');
  };
  const token = res.headers.get('x-subject-token');
  if (!token) throw new Error(`Keystone gave ${user}@${project} no token`);
  return {
    user,
    projectName: project,
    projectId: res.data.token.project.id,
    token,
    compute: endpoint('compute'),
    volume: endpoint('volumev3'),
  };
}

const novaHeaders = (s: Session) => ({
  'X-Auth-Token': s.token,
  'OpenStack-API-Version': COMPUTE_VERSION,
});
const cinderHeaders = (s: Session) => ({
  'X-Auth-Token': s.token,
  'OpenStack-API-Version': VOLUME_VERSION,
});

export async function flavorId(s: Session, name: string): Promise<string> {
  const { data } = await call<{ flavors: { id: string; name: string }[] }>(
    'GET',
    `${s.compute}/flavors`,
    novaHeaders(s),
  );
  const flavor = data.flavors.find((f) => f.name === name);
  if (!flavor) throw new Error(`no flavor ${name} (scripts/stack/nova.sh makes it)`);
  return flavor.id;
}

/** A `block_device_mapping_v2` entry, as Nova takes it. */
export type BlockDevice = Record<string, unknown>;

/** The path without the pool: Nova makes the boot volume itself from `snap` (kept after). */
export const bootVolumeFromSnapshot = (snap: { id: string; size: number }): BlockDevice => ({
  source_type: 'snapshot',
  destination_type: 'volume',
  uuid: snap.id,
  volume_size: snap.size,
  boot_index: 0,
  delete_on_termination: false,
});

export interface Server {
  id: string;
  status: string;
  'OS-EXT-AZ:availability_zone'?: string;
  'os-extended-volumes:volumes_attached'?: { id: string }[];
  fault?: { message?: string; details?: string };
}

/** Creates a server without network in `zone`, booting from `blockDevices`; its id. */
export async function createServer(
  s: Session,
  server: { name: string; flavorRef: string; zone: string; blockDevices: BlockDevice[] },
): Promise<string> {
  const { data } = await call<{ server: { id: string } }>(
    'POST',
    `${s.compute}/servers`,
    novaHeaders(s),
    {
      server: {
        name: server.name,
        flavorRef: server.flavorRef,
        networks: 'none',
        availability_zone: server.zone,
        block_device_mapping_v2: server.blockDevices,
      },
    },
    [202],
  );
  return data.server.id;
}

export async function getServer(s: Session, id: string): Promise<Server | null> {
  const res = await call<{ server: Server }>(
    'GET',
    `${s.compute}/servers/${id}`,
    novaHeaders(s),
    undefined,
    [200, 404],
  );
  return res.status === 404 ? null : res.data.server;
}

/** Waits for the server to leave BUILD; throws unless it is ACTIVE (with Nova's fault). */
export async function waitActive(s: Session, id: string, timeoutMs = 300_000): Promise<Server> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const server = await getServer(s, id);
    if (!server) throw new Error(`server ${id} vanished while building`);
    if (server.status === 'ACTIVE') return server;
    if (server.status !== 'BUILD') {
      throw new Error(
        `server ${id} is ${server.status}: ${server.fault?.message ?? 'no fault recorded'}`,
      );
    }
    if (Date.now() > deadline) throw new Error(`server ${id} still BUILD after ${timeoutMs} ms`);
    await sleep(250);
  }
}

/** Deletes the server and waits until Nova no longer knows it. */
export async function deleteServer(s: Session, id: string, timeoutMs = 120_000): Promise<void> {
  await call('DELETE', `${s.compute}/servers/${id}`, novaHeaders(s), undefined, [204, 404]);
  const deadline = Date.now() + timeoutMs;
  while ((await getServer(s, id)) !== null) {
    if (Date.now() > deadline) throw new Error(`server ${id} not gone after ${timeoutMs} ms`);
    await sleep(500);
  }
}

export interface Volume {
  id: string;
  name: string | null;
  status: string;
  size: number;
  availability_zone: string;
  bootable: string;
}

export async function getVolume(s: Session, id: string): Promise<Volume | null> {
  const res = await call<{ volume: Volume }>(
    'GET',
    `${s.volume}/volumes/${id}`,
    cinderHeaders(s),
    undefined,
    [200, 404],
  );
  return res.status === 404 ? null : res.data.volume;
}

/** Waits until the volume is no longer attached or being detached (`available` or gone). */
export async function waitVolumeFree(
  s: Session,
  id: string,
  timeoutMs = 120_000,
): Promise<Volume | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await getVolume(s, id);
    if (!v || !['in-use', 'detaching', 'attaching', 'reserved', 'creating'].includes(v.status))
      return v;
    if (Date.now() > deadline)
      throw new Error(`volume ${id} still ${v.status} after ${timeoutMs} ms`);
    await sleep(500);
  }
}

/** Deletes the volume once it is free; a volume already gone is fine. */
export async function deleteVolume(s: Session, id: string): Promise<void> {
  const v = await waitVolumeFree(s, id);
  if (!v) return;
  await call('DELETE', `${s.volume}/volumes/${id}`, cinderHeaders(s), undefined, [202, 404]);
}

export interface Snapshot {
  id: string;
  name: string | null;
  status: string;
  size: number;
  volume_id: string;
}

/** The session's project's snapshots. */
export async function listSnapshots(s: Session): Promise<Snapshot[]> {
  const { data } = await call<{ snapshots: Snapshot[] }>(
    'GET',
    `${s.volume}/snapshots/detail`,
    cinderHeaders(s),
  );
  return data.snapshots;
}

/** Whether the stack's nova-api answers (STACK_NOVA=0 or STACK_KEYSTONE=0: it does not). */
export async function novaAnswers(): Promise<boolean> {
  try {
    const res = await fetch(novaRoot(), { signal: AbortSignal.timeout(3_000) });
    return res.status === 200;
  } catch {
    return false;
  }
}
