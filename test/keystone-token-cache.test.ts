/**
 * The worker's Keystone tokens against the stack's real Keystone and keystone-checked Cinder,
 * counted by proxies in front of both: a pool hit asks Keystone for no token once its tenant
 * project has one (the worker's Cinder client, built once, holds one token per project for
 * every activity), and a 401 from Cinder costs exactly one new token, after which the claim
 * completes as a pool hit. (test/unit/token-cache.test.ts covers expiry, concurrency and the
 * bound with a stub Keystone.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../api/server';
import { cinderFromConfig, type CinderClient } from '../lib/cinder';
import { TAGS } from '../lib/pool-state/naming';
import { fillPoolWorkflow } from '../workflows';
import { unique } from './support/env';
import { FaultProxy } from './support/fault-proxy';
import {
  STACK_DIR,
  openStack,
  poolEnv,
  startWorker,
  testConfig,
  wipePool,
  type RunningWorker,
  type StackSession,
} from './support/pool';

const skip =
  process.env.STACK_KEYSTONE === '0' ? 'STACK_KEYSTONE=0: no Keystone in this stack' : false;
const KEYSTONE = `http://127.0.0.1:${process.env.KEYSTONE_PORT ?? 5000}`;
const CINDER_KS = `http://127.0.0.1:${process.env.CINDER_KS_PORT ?? 8777}`;
const OS = 'Debian8 64bit';
const STOCK = 8;

interface Cloud {
  tenants: Record<'tenant-alpha' | 'tenant-beta', { projectId: string }>;
}

describe('Keystone tokens cached in the worker (real Keystone, counted)', { skip }, () => {
  let session: StackSession;
  let keystone: FaultProxy;
  let cinderProxy: FaultProxy;
  let cinder: CinderClient;
  let worker: RunningWorker;
  let app: FastifyInstance;
  let config: ReturnType<typeof testConfig>['config'];
  let cloud: Cloud;
  const delivered: { projectId: string; volumeId: string }[] = [];

  const tokenRequests = () => keystone.seen.filter((r) => r === 'POST /v3/auth/tokens').length;
  const tenantId = (t: keyof Cloud['tenants']) => cloud.tenants[t].projectId;

  /** One claim: its outcome, how many tokens it asked Keystone for, and how long it took. */
  async function claim(projectId: string) {
    const before = tokenRequests();
    const started = performance.now();
    const res = await app.inject({
      method: 'POST',
      url: '/v1/claims',
      headers: { authorization: `Bearer ${config.api.apiKeys[0]}` },
      payload: {
        requestId: unique('tc-req'),
        projectId,
        name: unique('tc-vm'),
        os: OS,
        volumeType: 'sas',
      },
    });
    const ms = performance.now() - started;
    assert.equal(res.statusCode, 201, res.body);
    const body = res.json<{ outcome: string; volumeId: string }>();
    delivered.push({ projectId, volumeId: body.volumeId });
    return { outcome: body.outcome, tokens: tokenRequests() - before, ms };
  }

  before(async () => {
    cloud = JSON.parse(readFileSync(`${STACK_DIR}/keystone/cloud.json`, 'utf8')) as Cloud;
    session = await openStack(5, { wipe: true });
    keystone = await FaultProxy.start(KEYSTONE);
    cinderProxy = await FaultProxy.start(CINDER_KS);
    ({ config } = testConfig({
      ...poolEnv({ more: OS, numsMore: STOCK, concurrency: 4 }),
      OS_CLIENT_CONFIG_FILE: `${STACK_DIR}/keystone/clouds.yaml`,
      OS_CLOUD: 'warmpool-stack',
      OS_AUTH_URL: `http://127.0.0.1:${keystone.port}/v3`,
      POOL__AUTH_ARGS__CINDER_URL: cinderProxy.cinderUrl,
      POOL__API__CLAIM_WAIT_SECOND: '120',
    }));
    assert.equal(config.auth.strategy, 'keystone');
    // Built once, as workers/main.ts does: every activity shares its tokens.
    cinder = cinderFromConfig(config);
    worker = await startWorker(config, session.db, { cinder, temporal: session.client });
    app = buildApi({ config, db: session.db, temporal: session.client });
    await session.client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: unique('tc-fill'),
      args: [{}],
    });
  });

  after(async () => {
    await app?.close();
    await worker?.stop();
    if (cinder) {
      for (const d of delivered)
        await cinder
          .asProject(d.projectId)
          .deleteVolume(d.volumeId)
          .catch(() => undefined);
      for (const v of await cinder.listVolumes({ metadata: { [TAGS.pool]: 'warmpool' } }))
        if (v.status !== 'deleting') await cinder.deleteVolume(v.id).catch(() => undefined);
    }
    await keystone?.close();
    await cinderProxy?.close();
    if (session) {
      await wipePool(session.db);
      await session.client.connection.close();
      await session.db.end();
    }
  });

  test('pool hits ask Keystone for no token once their project has one', async (t) => {
    const runs = [];
    for (const p of ['tenant-alpha', 'tenant-alpha', 'tenant-alpha', 'tenant-beta', 'tenant-beta'])
      runs.push(await claim(tenantId(p as keyof Cloud['tenants'])));
    t.diagnostic(`claim ms: ${runs.map((r) => Math.round(r.ms)).join(', ')}`);
    assert.deepEqual(
      runs.map((r) => r.outcome),
      ['pool', 'pool', 'pool', 'pool', 'pool'],
    );
    // The admin token came with the fill; each tenant's first pool hit takes that tenant's one.
    assert.deepEqual(
      runs.map((r) => r.tokens),
      [1, 0, 0, 1, 0],
      'token requests per claim',
    );
  });

  test('a 401 from Cinder: exactly one new token, and the claim is still a pool hit', async () => {
    const alpha = tenantId('tenant-alpha');
    const refused = (await cinder.asProject(alpha).auth.session()).token;
    // Cinder refuses the tenant's next call as it would a revoked or expired token.
    const rule = cinderProxy.add({
      path: new RegExp(`^/v3/${alpha}/`),
      action: {
        kind: 'status',
        status: 401,
        message: 'The request you have made requires authentication.',
      },
      times: 1,
    });
    const hit = await claim(alpha);
    assert.equal(rule.hits, 1, 'the 401 was served');
    assert.equal(hit.outcome, 'pool');
    assert.equal(hit.tokens, 1, 'one re-authentication');
    const renewed = (await cinder.asProject(alpha).auth.session()).token;
    assert.notEqual(renewed, refused, 'the refused token was replaced');
    assert.equal((await claim(alpha)).tokens, 0, 'the new token serves the next claim');
  });
});
