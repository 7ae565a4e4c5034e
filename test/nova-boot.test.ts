/**
 * The stack's real Nova as the pool's consumer: a tenant boots a server from a Cinder volume it
 * received by transfer, as the pool hands volumes over. Everything goes through Keystone's
 * catalog (compute, volumev3). In each zone (az-1, az-2) the pool's project makes a volume from
 * that zone's OS-image snapshot (the bootstrap's, source volume bootable): it comes out bootable
 * and in the snapshot's zone; the tenant boots a server from it (`networks: "none"`) that
 * becomes ACTIVE there on the fake virt driver; Cinder shows the volume `in-use`, attached to
 * that server; once the server is deleted the volume is `available` again in the tenant's
 * project. With `[cinder] cross_az_attach = False` Nova refuses a volume of another zone.
 *
 * Nova is part of the stack unless STACK_NOVA=0 (then these tests are skipped); when it is, a
 * nova-api that does not answer fails them.
 */
import { before, after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import axios, { type AxiosResponse } from 'axios';
import { CinderClient, KeystonePasswordAuth } from '../lib/cinder';
import { NOVA_FLAVOR, NOVA_ZONES } from '../scripts/stack/cloud';
import { config, unique, waitFor } from './support/env';

const AUTH_URL = `http://127.0.0.1:${process.env.KEYSTONE_PORT ?? 5000}/v3`;
const NOVA_ROOT = `http://127.0.0.1:${process.env.NOVA_API_PORT ?? 8774}/`;
const PASSWORD = process.env.KEYSTONE_USERS_PASSWORD ?? 'stack-user-secret';
const COMPUTE_VERSION = 'compute 2.37'; // the first with `networks: "none"`
const ATTACHMENTS_VERSION = 'volume 3.27'; // Cinder's attachments API
const TENANT = { user: 'tenant-alpha-user', project: 'tenant-alpha' } as const;
/** The bootstrap's snapshot of this OS and type: one per zone, all of this name. */
const OS_IMAGE = config.pool.snapshotNameRule.format('Debian8 64bit', 'sas', '1');
/** As scripts/stack/nova.sh: Nova is on unless STACK_NOVA=0 (by default, as the Keystone is). */
const SKIP =
  (process.env.STACK_NOVA ?? process.env.STACK_KEYSTONE ?? '1') === '0'
    ? 'STACK_NOVA=0: Nova is not part of this stack'
    : false;

type Zone = (typeof NOVA_ZONES)[number];

const http = axios.create({ timeout: 30_000, validateStatus: () => true });

interface RawVolume {
  id: string;
  status: string;
  availability_zone: string;
  bootable: string;
  attachments: { server_id: string; attachment_id: string }[];
}

function ok<T>(res: AxiosResponse<T>, what: string, status = [200]): T {
  assert.ok(status.includes(res.status), `${what}: HTTP ${res.status} ${JSON.stringify(res.data)}`);
  return res.data;
}

/** A tenant's token and the catalog's public compute and volumev3 endpoints. */
async function tenantLogin() {
  const res = await http.post(`${AUTH_URL}/auth/tokens`, {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: TENANT.user, domain: { name: 'Default' }, password: PASSWORD } },
      },
      scope: { project: { name: TENANT.project, domain: { name: 'Default' } } },
    },
  });
  assert.equal(res.status, 201, `Keystone refused ${TENANT.user}: ${JSON.stringify(res.data)}`);
  const catalog = res.data.token.catalog as {
    type: string;
    endpoints: { interface: string; url: string }[];
  }[];
  const endpoint = (type: string) => {
    const url = catalog
      .find((c) => c.type === type)
      ?.endpoints.find((e) => e.interface === 'public')?.url;
    assert.ok(url, `no public ${type} endpoint in the catalog`);
    return url.replace(/\/+$/, '');
  };
  const token = res.headers['x-subject-token'] as string;
  return {
    projectId: res.data.token.project.id as string,
    compute: endpoint('compute'),
    volume: endpoint('volumev3'),
    nova: { 'X-Auth-Token': token, 'OpenStack-API-Version': COMPUTE_VERSION },
    cinder: { 'X-Auth-Token': token, 'OpenStack-API-Version': ATTACHMENTS_VERSION },
  };
}
type Tenant = Awaited<ReturnType<typeof tenantLogin>>;

const keystone = (username: string, project: { name: string; domain: string } | { id: string }) =>
  new KeystonePasswordAuth({
    authUrl: AUTH_URL,
    username,
    password: PASSWORD,
    userDomain: 'Default',
    project,
  });

const cleanup: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
});

let pool: CinderClient;
let tenant: Tenant;
let tenantCinder: CinderClient;
let flavorId: string;
/** Per zone: the volume the tenant received, made from that zone's snapshot. */
const handedOver = new Map<Zone, { id: string; madeMs: number }>();

/** A volume as the pool's project (admin) sees it, with the fields the client does not map. */
async function poolVolume(id: string): Promise<RawVolume> {
  const { endpoint, token } = await pool.auth.session();
  return ok(
    await http.get(`${endpoint}/volumes/${id}`, { headers: { 'X-Auth-Token': token } }),
    'volume',
  ).volume;
}

const tenantVolume = async (id: string): Promise<RawVolume> =>
  ok(await http.get(`${tenant.volume}/volumes/${id}`, { headers: tenant.cinder }), 'volume').volume;

/**
 * The pool's hand-over in `zone`: a volume from that zone's OS-image snapshot in the pool's
 * project (no zone asked: Cinder puts it in the snapshot's), transferred to the tenant, who
 * accepts it. Nothing marks it bootable: the snapshot's source volume is.
 */
async function handOver(zone: Zone): Promise<string> {
  const candidates = (await pool.listSnapshots()).filter(
    (s) => s.name === OS_IMAGE && s.status === 'available',
  );
  const zones = await Promise.all(
    candidates.map(async (s) => (await poolVolume(s.volumeId)).availability_zone),
  );
  const snapshot = candidates.find((_, i) => zones[i] === zone);
  assert.ok(snapshot, `no OS-image snapshot in ${zone} in the pool's project (stack bootstrap)`);
  const started = Date.now();
  const { id } = await pool.createVolume({
    name: unique(`nova-boot-${zone}`),
    size: snapshot.size,
    snapshotId: snapshot.id,
  });
  cleanup.push(() => pool.deleteVolume(id));
  const made = await waitFor(
    `the pool volume in ${zone}`,
    () => poolVolume(id),
    (v) => v.status !== 'creating',
    120_000,
  );
  assert.equal(made.status, 'available');
  assert.deepEqual([made.availability_zone, made.bootable], [zone, 'true']);
  const transfer = await pool.createTransfer(id, 'nova-boot test');
  await tenantCinder.acceptTransfer(transfer.id, transfer.authKey);
  cleanup.push(() => tenantCinder.deleteVolume(id));
  handedOver.set(zone, { id, madeMs: Date.now() - started });
  return id;
}

before(async () => {
  if (SKIP) return;
  const root = await http.get(NOVA_ROOT, { timeout: 3_000 }).catch((e: Error) => e);
  assert.ok(
    !(root instanceof Error) && root.status === 200,
    `nova-api does not answer at ${NOVA_ROOT} (bash scripts/stack.sh up starts it; STACK_NOVA=0 skips these tests)`,
  );
  pool = new CinderClient(keystone('warmpool', { name: 'warmpool', domain: 'Default' }));
  tenant = await tenantLogin();
  tenantCinder = new CinderClient(keystone(TENANT.user, { id: tenant.projectId }));
  const flavors = ok(
    await http.get(`${tenant.compute}/flavors`, { headers: tenant.nova }),
    'flavors',
  ).flavors as { id: string; name: string }[];
  const flavor = flavors.find((f) => f.name === NOVA_FLAVOR);
  assert.ok(flavor, `flavor ${NOVA_FLAVOR} missing (scripts/stack/nova.sh makes it)`);
  flavorId = flavor.id;
  await Promise.all(NOVA_ZONES.map(handOver));
});

function bootFromVolume(volumeId: string, zone: string) {
  return http.post(
    `${tenant.compute}/servers`,
    {
      server: {
        name: unique('nova-boot'),
        flavorRef: flavorId,
        networks: 'none',
        availability_zone: zone,
        block_device_mapping_v2: [
          {
            source_type: 'volume',
            destination_type: 'volume',
            boot_index: 0,
            uuid: volumeId,
            delete_on_termination: false,
          },
        ],
      },
    },
    { headers: tenant.nova },
  );
}

test("Cinder and Nova offer the same zones, and each zone's pool volume is bootable there", async (t: TestContext) => {
  if (SKIP) return t.skip(SKIP);
  const cinderZones = ok(
    await http.get(`${tenant.volume}/os-availability-zone`, { headers: tenant.cinder }),
    'volume zones',
  ).availabilityZoneInfo as { zoneName: string }[];
  const novaZones = ok(
    await http.get(`${tenant.compute}/os-availability-zone`, { headers: tenant.nova }),
    'compute zones',
  ).availabilityZoneInfo as { zoneName: string; zoneState: { available: boolean } }[];
  assert.deepEqual(cinderZones.map((z) => z.zoneName).sort(), [...NOVA_ZONES]);
  assert.deepEqual(
    novaZones
      .filter((z) => z.zoneState.available)
      .map((z) => z.zoneName)
      .sort(),
    [...NOVA_ZONES],
  );
  for (const zone of NOVA_ZONES) {
    const got = handedOver.get(zone);
    assert.ok(got);
    const v = await tenantVolume(got.id);
    assert.deepEqual([v.status, v.availability_zone, v.bootable], ['available', zone, 'true']);
    t.diagnostic(`${zone}: pool volume made from the zone's snapshot in ${got.madeMs} ms`);
  }
});

test('cross_az_attach = False: Nova refuses a volume of another zone', async (t: TestContext) => {
  if (SKIP) return t.skip(SKIP);
  const [volumeZone, otherZone] = NOVA_ZONES;
  const volumeId = handedOver.get(volumeZone)?.id;
  assert.ok(volumeId);
  const res = await bootFromVolume(volumeId, otherZone);
  if (res.status === 202)
    cleanup.push(() =>
      http.delete(`${tenant.compute}/servers/${res.data.server.id}`, { headers: tenant.nova }),
    );
  assert.equal(res.status, 400, JSON.stringify(res.data));
  assert.match(
    res.data.badRequest.message,
    new RegExp(`Server is in: ${otherZone}\\. Volumes are in: ${volumeZone}`),
  );
  assert.equal((await tenantVolume(volumeId)).status, 'available');
});

/** Boots, checks the attachment, deletes the server, and checks the volume is back. */
async function bootAndGiveBack(t: TestContext, zone: Zone): Promise<void> {
  const volumeId = handedOver.get(zone)?.id;
  assert.ok(volumeId);
  const started = Date.now();
  const created = ok(await bootFromVolume(volumeId, zone), 'create server', [202]);
  const serverUrl = `${tenant.compute}/servers/${created.server.id}`;
  cleanup.push(() => http.delete(serverUrl, { headers: tenant.nova }));
  const server = await waitFor(
    `the server in ${zone} to leave BUILD`,
    async () => ok(await http.get(serverUrl, { headers: tenant.nova }), 'server').server,
    (s) => s.status !== 'BUILD',
    180_000,
    500,
  );
  const bootMs = Date.now() - started;
  assert.equal(server.status, 'ACTIVE', `server ${server.id}: ${JSON.stringify(server.fault)}`);
  t.diagnostic(`${zone}: server ACTIVE ${bootMs} ms after the create request`);
  assert.equal(server['OS-EXT-AZ:availability_zone'], zone);
  assert.deepEqual(
    server['os-extended-volumes:volumes_attached'].map((v: { id: string }) => v.id),
    [volumeId],
  );

  const inUse = await tenantVolume(volumeId);
  assert.equal(inUse.status, 'in-use');
  assert.deepEqual(
    inUse.attachments.map((a) => a.server_id),
    [server.id],
  );
  const attachments = async () =>
    ok(
      await http.get(`${tenant.volume}/attachments/detail`, {
        headers: tenant.cinder,
        params: { volume_id: volumeId },
      }),
      'attachments',
    ).attachments as { instance: string; status: string; volume_id: string }[];
  assert.deepEqual(
    (await attachments()).map((a) => [a.volume_id, a.instance, a.status]),
    [[volumeId, server.id, 'attached']],
  );

  ok(await http.delete(serverUrl, { headers: tenant.nova }), 'delete server', [204]);
  await waitFor(
    `the server in ${zone} to be gone`,
    async () => (await http.get(serverUrl, { headers: tenant.nova })).status,
    (status) => status === 404,
    120_000,
    500,
  );
  const back = await waitFor(
    'the volume back',
    () => tenantVolume(volumeId),
    (v) => v.status === 'available',
  );
  assert.deepEqual(back.attachments, []);
  assert.deepEqual(await attachments(), []);
  // Still the tenant's (the pool's user is admin: it sees the volume's project).
  assert.equal((await pool.getVolume(volumeId)).projectId, tenant.projectId);
}

test(
  'a tenant boots a server in each zone from a transferred pool volume, and gets the volume back',
  { concurrency: true },
  async (t: TestContext) => {
    if (SKIP) return t.skip(SKIP);
    await Promise.all(NOVA_ZONES.map((zone) => t.test(zone, (st) => bootAndGiveBack(st, zone))));
  },
);
