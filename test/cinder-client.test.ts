/** The Cinder client against the real Cinder of the stack (noauth, fake driver). */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CinderBadRequest,
  CinderClient,
  CinderNotFound,
  CinderOverLimit,
  CinderUnavailable,
  NoAuth,
  type Volume,
} from '../lib/cinder';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import { admin, config, randomProjectId, tenant, unique } from './support/env';
import { osSnapshot, waitVolumeGone, waitVolumeStatus } from './support/cinder';

const created: { client: CinderClient; id: string }[] = [];

async function volumeFromSnapshot(
  client: CinderClient,
  metadata: Record<string, string> = {},
): Promise<Volume> {
  const snap = await osSnapshot();
  const v = await client.createVolume({
    name: unique('client-test'),
    size: snap.size,
    snapshotId: snap.id,
    volumeType: 'sas',
    metadata,
  });
  created.push({ client, id: v.id });
  return waitVolumeStatus(client, v.id, 'available');
}

after(async () => {
  // Leave nothing behind: each test's volumes are deleted whoever owns them now.
  for (const { id } of created) {
    const v = await admin.findVolume(id);
    if (v && v.status !== 'deleting') await admin.deleteVolume(id).catch(() => undefined);
  }
});

describe('Cinder client (real Cinder)', () => {
  test('creates a volume from a snapshot, which becomes available with its name, type and metadata', async () => {
    const snap = await osSnapshot();
    const v = await volumeFromSnapshot(admin, { purpose: 'client-test' });
    assert.equal(v.status, 'available');
    assert.equal(v.snapshotId, snap.id);
    assert.equal(v.volumeType, 'sas');
    assert.equal(v.size, snap.size);
    assert.deepEqual(v.metadata, { purpose: 'client-test' });
  });

  test('renames a volume and replaces its metadata', async () => {
    const v = await volumeFromSnapshot(admin, { a: '1', b: '2' });
    const name = unique('renamed');
    await admin.updateVolume(v.id, { name });
    await admin.replaceVolumeMetadata(v.id, { b: '3' });
    const got = await admin.getVolume(v.id);
    assert.equal(got.name, name);
    assert.deepEqual(got.metadata, { b: '3' });
  });

  test('lists by metadata, name and status filters, across tenants when asked', async () => {
    const tag = unique('tag');
    const a = await volumeFromSnapshot(admin, { 'test-tag': tag });
    const b = await volumeFromSnapshot(tenant('alpha'), { 'test-tag': tag });
    await volumeFromSnapshot(admin, { 'test-tag': `${tag}-other` });

    const mine = await admin.listVolumes({ metadata: { 'test-tag': tag } });
    assert.deepEqual(
      mine.map((v) => v.id),
      [a.id],
    );

    const everyone = await admin.listVolumes({ metadata: { 'test-tag': tag }, allTenants: true });
    assert.deepEqual(everyone.map((v) => v.id).sort(), [a.id, b.id].sort());
    assert.equal(everyone.find((v) => v.id === b.id)?.projectId, TENANT_PROJECTS.alpha);

    const byName = await admin.listVolumes({ name: a.name });
    assert.deepEqual(
      byName.map((v) => v.id),
      [a.id],
    );
    const byStatus = await admin.listVolumes({ metadata: { 'test-tag': tag }, status: 'error' });
    assert.deepEqual(byStatus, []);
  });

  test('pages through long lists', async () => {
    const tag = unique('page');
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await volumeFromSnapshot(admin, { page: tag })).id);
    const listed = await admin.listVolumes({ metadata: { page: tag }, pageSize: 2 });
    assert.deepEqual(listed.map((v) => v.id).sort(), ids.sort());
  });

  for (const api of ['volume-transfers', 'os-volume-transfer'] as const) {
    test(`transfer + accept (${api}) moves the volume to the tenant, keeping name and metadata`, async () => {
      const adminApi = new CinderClient(admin.auth, { transferApi: api });
      const v = await volumeFromSnapshot(admin, { pool: 'test' });
      const t = await adminApi.createTransfer(v.id, unique('handoff'));
      assert.match(t.authKey, /^[0-9a-f]{16}$/);
      assert.equal((await admin.getVolume(v.id)).status, 'awaiting-transfer');
      const pending = await adminApi.listTransfers({ volumeId: v.id });
      assert.deepEqual(
        pending.map((p) => p.id),
        [t.id],
      );

      const alpha = new CinderClient(admin.auth.forProject(TENANT_PROJECTS.alpha, 'tenant-user'), {
        transferApi: api,
      });
      const accepted = await alpha.acceptTransfer(t.id, t.authKey);
      assert.equal(accepted.volumeId, v.id);

      const inTenant = await alpha.getVolume(v.id);
      assert.equal(inTenant.status, 'available');
      assert.equal(inTenant.name, v.name);
      assert.deepEqual(inTenant.metadata, { pool: 'test' });
      const seenByAdmin = (await admin.listVolumes({ name: v.name, allTenants: true }))[0];
      assert.equal(seenByAdmin?.projectId, TENANT_PROJECTS.alpha);
      assert.deepEqual(await adminApi.listTransfers({ volumeId: v.id }), []);
      // The handed-over volume is an ordinary tenant volume: the tenant deletes it.
      await alpha.deleteVolume(v.id);
      await waitVolumeGone(alpha, v.id);
    });
  }

  test('deleting a pending transfer returns the volume to available', async () => {
    const v = await volumeFromSnapshot(admin);
    const t = await admin.createTransfer(v.id, unique('cancel'));
    assert.equal((await admin.getVolume(v.id)).status, 'awaiting-transfer');
    await admin.deleteTransfer(t.id);
    assert.equal((await admin.getVolume(v.id)).status, 'available');
    await assert.rejects(admin.getTransfer(t.id), CinderNotFound);
  });

  test('a wrong auth key is refused with a typed error and the transfer stays pending', async () => {
    const v = await volumeFromSnapshot(admin);
    const t = await admin.createTransfer(v.id, unique('badkey'));
    await assert.rejects(
      tenant('beta').acceptTransfer(t.id, '0000000000000000'),
      (err: unknown) => {
        assert.ok(err instanceof CinderBadRequest, `got ${String(err)}`);
        assert.equal(err.status, 400);
        assert.match(err.message, /auth key/i);
        assert.match(err.requestId ?? '', /^req-/);
        return true;
      },
    );
    assert.equal((await admin.getVolume(v.id)).status, 'awaiting-transfer');
    await admin.deleteTransfer(t.id);
  });

  test('a missing volume is CinderNotFound; findVolume returns null', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    await assert.rejects(admin.getVolume(missing), (err: unknown) => {
      assert.ok(err instanceof CinderNotFound);
      assert.match(err.message, /could not be found/);
      return true;
    });
    assert.equal(await admin.findVolume(missing), null);
  });

  test('an exceeded quota is CinderOverLimit (413) naming the quota', async () => {
    const project = randomProjectId();
    await admin.updateQuota(project, { volumes: 1, gigabytes: 100 });
    const client = admin.asProject(project);
    const first = await volumeFromSnapshot(client);
    const snap = await osSnapshot();
    await assert.rejects(
      client.createVolume({
        name: unique('over'),
        size: snap.size,
        snapshotId: snap.id,
        volumeType: 'sas',
      }),
      (err: unknown) => {
        assert.ok(err instanceof CinderOverLimit, `got ${String(err)}`);
        assert.equal(err.status, 413);
        assert.match(err.message, /quota/i);
        return true;
      },
    );
    const usage = await client.getQuotaUsage();
    assert.equal(usage.volumes?.limit, 1);
    assert.equal(usage.volumes?.inUse, 1);
    await client.deleteVolume(first.id);
  });

  test('extends a volume', async () => {
    const v = await volumeFromSnapshot(admin);
    await admin.extendVolume(v.id, v.size + 1);
    const grown = await waitVolumeStatus(admin, v.id, 'available');
    assert.equal(grown.size, v.size + 1);
  });

  test('an unreachable Cinder is CinderUnavailable, with no token in the error', async () => {
    const dead = new CinderClient(
      new NoAuth('http://127.0.0.1:9/v3', 'admin', config.auth.projectId as string),
      {
        timeoutMs: 2000,
      },
    );
    await assert.rejects(dead.getVolume('x'), (err: unknown) => {
      assert.ok(err instanceof CinderUnavailable);
      assert.equal(err.retryable, true);
      assert.doesNotMatch(JSON.stringify(err) + String(err.cause), /admin:/);
      return true;
    });
  });

  test('knows the server speaks volume-transfers (3.55+)', async () => {
    const v = await admin.maxMicroversion();
    assert.ok(v && /^3\.\d+$/.test(v), `got ${v}`);
  });
});
