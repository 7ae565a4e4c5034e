/**
 * The whole pool in Keystone mode, against the stack's real Keystone and its keystone-checked
 * Cinder: the worker (a real `npm run worker` process) and the API take their identity from
 * clouds.yaml (OS_CLOUD), find Cinder in the catalog, fill the pool in the `warmpool` project,
 * hand volumes to two tenant projects the pool serves and fall back to plain creation there. A
 * tenant project the pool holds no role in gets a clear 422 and the volume goes back to the
 * pool. Keystone down for a while: the claim waits and then completes. No token, password or
 * transfer key reaches a workflow history or the worker's debug log.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../api/server';
import { cinderFromConfig, type CinderClient } from '../lib/cinder';
import { PoolRepository } from '../lib/pool-state/repository';
import { TAGS } from '../lib/pool-state/naming';
import { fillPoolWorkflow } from '../workflows';
import { unique, waitFor } from './support/env';
import {
  exited,
  openStack,
  poolEnv,
  spawnWorker,
  testConfig,
  wipePool,
  type StackSession,
} from './support/pool';

const STACK_DIR = resolve(__dirname, '../.stack');
const skip =
  process.env.STACK_KEYSTONE === '0' ? 'STACK_KEYSTONE=0: no Keystone in this stack' : false;
const PASSWORDS = [
  process.env.KEYSTONE_USERS_PASSWORD ?? 'stack-user-secret',
  process.env.KEYSTONE_ADMIN_PASSWORD ?? 'stack-admin-secret',
];

interface Cloud {
  poolProjectId: string;
  tenants: Record<'tenant-alpha' | 'tenant-beta' | 'tenant-closed', { projectId: string }>;
}

const OS = 'Debian8 64bit';
const STOCK = 3;

describe('the pool in Keystone mode (real Keystone, keystone-checked Cinder)', { skip }, () => {
  let session: StackSession;
  let cloud: Cloud;
  let pool: CinderClient;
  let app: FastifyInstance;
  let worker: ReturnType<typeof spawnWorker>;
  let env: NodeJS.ProcessEnv;
  let config: ReturnType<typeof testConfig>['config'];

  const claim = (projectId: string, name = unique('ks-vm')) =>
    app.inject({
      method: 'POST',
      url: '/v1/claims',
      headers: { authorization: `Bearer ${config.api.apiKeys[0]}` },
      payload: { requestId: unique('ks-req'), projectId, name, os: OS, volumeType: 'sas' },
    });
  const rows = () => new PoolRepository(session.db).listAll();
  const tenantId = (t: keyof Cloud['tenants']) => cloud.tenants[t].projectId;

  before(async () => {
    cloud = JSON.parse(readFileSync(`${STACK_DIR}/keystone/cloud.json`, 'utf8')) as Cloud;
    session = await openStack(5, { wipe: true });
    ({ config, env } = testConfig({
      ...poolEnv({ more: OS, numsMore: STOCK, concurrency: 3 }),
      OS_CLIENT_CONFIG_FILE: `${STACK_DIR}/keystone/clouds.yaml`,
      OS_CLOUD: 'warmpool-stack',
      POOL__API__CLAIM_WAIT_SECOND: '120',
      LOG_LEVEL: 'debug',
    }));
    assert.equal(config.auth.strategy, 'keystone', 'OS_CLOUD selects Keystone over the INI');
    pool = cinderFromConfig(config);
    worker = spawnWorker(env);
    app = buildApi({ config, db: session.db, temporal: session.client });
  });

  after(async () => {
    await app?.close();
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await exited(worker);
    }
    // The pool's volumes live in the Keystone project: clean them there, then the rows.
    if (pool) {
      for (const v of await pool.listVolumes({ metadata: { [TAGS.pool]: 'warmpool' } }))
        if (v.status !== 'deleting') await pool.deleteVolume(v.id).catch(() => undefined);
    }
    if (session) {
      await wipePool(session.db);
      await session.client.connection.close();
      await session.db.end();
    }
  });

  test('a fill creates the stock in the pool’s Keystone project', async () => {
    await session.client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: unique('ks-fill'),
      args: [{}],
    });
    const stock = (await rows()).filter((r) => r.os === OS && r.status === 'available');
    assert.equal(stock.length, STOCK);
    for (const r of stock) {
      const v = await pool.getVolume(r.volumeId as string);
      assert.equal(v.projectId, cloud.poolProjectId);
      assert.equal(v.status, 'available');
    }
  });

  test('a tenant project the pool holds no role in: 422 naming the reason, the volume back in the pool', async () => {
    const before = (await rows()).filter((r) => r.status === 'available').map((r) => r.volumeId);
    const name = unique('ks-closed');
    const res = await claim(tenantId('tenant-closed'), name);
    assert.equal(res.statusCode, 422, res.body);
    assert.match(
      res.json().error,
      new RegExp(`warmpool .*project ${tenantId('tenant-closed')}.*no role in that project`),
    );
    // The fallback's own volume (made in the pool's project) did not stay behind either.
    const left = (await pool.listVolumes({ name })).filter((v) => v.status !== 'deleting');
    assert.deepEqual(left, [], 'nothing of the failed claim left in the pool’s project');
    const after = await rows();
    assert.deepEqual(
      after
        .filter((r) => r.status === 'available')
        .map((r) => r.volumeId)
        .sort(),
      before.sort(),
      'every volume back in the pool',
    );
    for (const id of before) {
      const v = await pool.getVolume(id as string);
      assert.equal(v.status, 'available');
      assert.equal(v.projectId, cloud.poolProjectId);
    }
  });

  test('pool hits for both tenants, then plain creation for both when the stock is gone', async () => {
    const outcomes: string[] = [];
    for (const t of ['tenant-alpha', 'tenant-beta', 'tenant-alpha', 'tenant-beta'] as const) {
      const name = unique('ks-vm');
      const res = await claim(tenantId(t), name);
      assert.equal(res.statusCode, 201, res.body);
      const body = res.json();
      outcomes.push(body.outcome);
      const v = await pool.asProject(tenantId(t)).getVolume(body.volumeId);
      assert.equal(v.projectId, tenantId(t));
      assert.equal(v.name, name);
      assert.equal(v.status, 'available');
    }
    // Three in stock; no schedule refills here, so the fourth finds the pool empty.
    assert.deepEqual(outcomes, ['pool', 'pool', 'pool', 'created']);
    const alpha = await claim(tenantId('tenant-alpha'));
    assert.equal(alpha.statusCode, 201, alpha.body);
    assert.equal(alpha.json().outcome, 'created');
    assert.equal(alpha.json().fallbackReason, 'pool empty');
  });

  test('Keystone down during a claim: the claim waits, then completes when it is back', async () => {
    // A fresh worker process has no token yet: every call needs Keystone.
    worker.kill('SIGTERM');
    await exited(worker);
    execFileSync('bash', ['scripts/stack.sh', 'kill', 'keystone'], { stdio: 'ignore' });
    let restarted = false;
    try {
      worker = spawnWorker(env);
      const pending = claim(tenantId('tenant-beta'));
      // The claim's Cinder work fails on Keystone and is retried (the SDK logs each attempt).
      await waitFor(
        'the worker retrying against the stopped Keystone',
        async () => worker.output(),
        (o) => /Keystone unreachable/.test(o),
        90_000,
        500,
      );
      execFileSync('bash', ['scripts/stack.sh', 'start', 'keystone'], { stdio: 'ignore' });
      restarted = true;
      const res = await pending;
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().outcome, 'created');
    } finally {
      if (!restarted)
        execFileSync('bash', ['scripts/stack.sh', 'start', 'keystone'], { stdio: 'ignore' });
    }
  });

  test('no Keystone token, password or transfer key in any claim history or the worker’s debug log', async () => {
    // Every token Keystone issues here is a fernet token; transfer keys are covered by the
    // in-process worker of claim.test.ts, which can watch them being made.
    let histories = 0;
    const search = (text: string, where: string) => {
      assert.doesNotMatch(text, /gAAAAA[A-Za-z0-9_-]{20,}/, `a fernet token in ${where}`);
      for (const p of PASSWORDS) assert.ok(!text.includes(p), `a password in ${where}`);
      assert.doesNotMatch(
        text,
        /auth_?key"?\s*[:=]\s*"?[0-9a-f]{8,}/i,
        `a transfer key in ${where}`,
      );
    };
    for await (const wf of session.client.workflow.list({
      query: `TaskQueue = '${config.temporal.taskQueue}'`,
    })) {
      const history = JSON.stringify(
        await session.client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory(),
      );
      search(history, wf.workflowId);
      for (const m of history.matchAll(/"data":"([A-Za-z0-9+/=]+)"/g))
        search(Buffer.from(m[1] as string, 'base64').toString(), `a payload of ${wf.workflowId}`);
      histories++;
    }
    assert.ok(histories >= 8, `${histories} histories checked`);
    const log = worker.output();
    assert.match(log, /cinder call/, 'the debug log was on');
    search(log, 'the worker log');
  });
});
