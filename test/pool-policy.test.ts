/**
 * Pool policy against the real stack: demand-aware targets (a burst of claims on one OS raises
 * its target up to the cap; without claims it decays back to the floor), recycling of stock idle
 * past max_idle_minute, and a tenant's fair share of a pool when stock is short.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildApi } from '../api/server';
import { PoolRepository } from '../lib/pool-state/repository';
import type { PoolLevel } from '../lib/pool-state/levels';
import { fillPoolWorkflow } from '../workflows';
import type { FillProgress } from '../contracts/fill';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import { sleep, unique } from './support/env';
import {
  closeStack,
  openStack,
  poolEnv,
  setCreateDelay,
  startWorker,
  testConfig,
  wipePool,
  type StackSession,
} from './support/pool';

const OS = 'Debian8 64bit';
let session: StackSession;

before(async () => (session = await openStack(5, { wipe: true })));
after(() => closeStack(session));

/** A worker and an API with these settings, for the length of `fn`. */
async function withPool<T>(
  env: Record<string, string | number>,
  fn: (p: {
    fill: () => Promise<FillProgress>;
    claim: (projectId: string) => Promise<{ outcome: string; fallbackReason: string | null }>;
    level: () => Promise<PoolLevel>;
    stock: () => Promise<string[]>;
  }) => Promise<T>,
): Promise<T> {
  const { config } = testConfig({ ...env, POOL__API__CLAIM_WAIT_SECOND: '120' });
  const worker = await startWorker(config, session.db);
  const app = buildApi({ config, db: session.db, temporal: session.client });
  const headers = { authorization: `Bearer ${config.api.apiKeys[0]}` };
  try {
    return await fn({
      fill: () =>
        session.client.workflow.execute(fillPoolWorkflow, {
          taskQueue: config.temporal.taskQueue,
          workflowId: unique('policy-fill'),
          args: [{}],
        }),
      async claim(projectId) {
        const res = await app.inject({
          method: 'POST',
          url: '/v1/claims',
          headers,
          payload: {
            requestId: unique('policy'),
            projectId,
            name: unique('policy-vm'),
            os: OS,
            volumeType: 'sas',
          },
        });
        assert.equal(res.statusCode, 201, res.body);
        return res.json();
      },
      async level() {
        const res = await app.inject({ url: '/v1/pool', headers });
        const l = (res.json().levels as PoolLevel[]).find((x) => x.os === OS);
        assert.ok(l, res.body);
        return l;
      },
      async stock() {
        return (await new PoolRepository(session.db).listAll())
          .filter((r) => r.os === OS && r.status === 'available')
          .map((r) => r.volumeId as string)
          .sort();
      },
    });
  } finally {
    await app.close();
    await worker.stop();
  }
}

describe('pool policy (real stack)', () => {
  test('demand: a burst of claims raises the target (to the cap at most); without claims it decays to the floor', async () => {
    await wipePool(session.db);
    setCreateDelay(3); // a refill's lead time, measured by the pool itself
    const demand = {
      ...poolEnv({ more: OS, numsMore: 1, concurrency: 4, drainPerRun: 5 }),
      POOL__VOLUMES_BACKUP__DEMAND_TARGETS: 'true',
      POOL__VOLUMES_BACKUP__DEMAND_WINDOW_MINUTE: '3',
      POOL__VOLUMES_BACKUP__DEMAND_SAFETY_FACTOR: '12',
      POOL__VOLUMES_BACKUP__BACKUP_NUMS_MAX: '4',
    };
    await withPool(demand, async (p) => {
      await p.fill();
      const quiet = await p.level();
      assert.deepEqual([quiet.floor, quiet.target], [1, 1], quiet.why);
      // 8 claims in 3 minutes with a ~3 s refill: ceil(8/180 × 3 × 12) + 1 = 3.
      const outcomes = await Promise.all(
        Array.from({ length: 8 }, () => p.claim(TENANT_PROJECTS.alpha)),
      );
      assert.equal(outcomes.filter((o) => o.outcome === 'pool').length, 1);
      const busy = await p.level();
      assert.equal(busy.floor, 1);
      assert.ok(busy.target >= 3 && busy.target <= 4, `target ${busy.target}: ${busy.why}`);
      assert.match(busy.why, /^(demand|cap) \(8 claims in 3 min × lead [2-6] s × 12 \+ 1 = \d\)/);
    });
    // Demand never takes the pool project past its quota less the margin (here: no room).
    await withPool({ ...demand, POOL__VOLUMES_BACKUP__QUOTA_MARGIN: '100000' }, async (p) => {
      const progress = await p.fill();
      const planned = progress.targets?.find((t) => t.os === OS);
      assert.equal(planned?.target, 1, JSON.stringify(planned));
      assert.match(planned?.why ?? '', /^quota \(leaves 100000 free\): (demand|cap)/);
      assert.equal((await p.stock()).length, 1, 'the floor is made, nothing beyond it');
    });
    await withPool(demand, async (p) => {
      const busy = await p.level();
      await p.fill();
      assert.equal((await p.stock()).length, busy.target, 'the fill keeps the raised target');
    });
    // The same burst against a cap of 2: the cap holds.
    await withPool({ ...demand, POOL__VOLUMES_BACKUP__BACKUP_NUMS_MAX: '2' }, async (p) => {
      const capped = await p.level();
      assert.equal(capped.target, 2);
      assert.match(capped.why, /^cap/);
    });
    // A window the burst has left: back to the floor, and the fill drains the excess.
    await sleep(7_000);
    await withPool({ ...demand, POOL__VOLUMES_BACKUP__DEMAND_WINDOW_MINUTE: '0.1' }, async (p) => {
      const calm = await p.level();
      assert.equal(calm.target, 1, calm.why);
      assert.match(calm.why, /^floor \(0 claims/);
      await p.fill();
      assert.equal((await p.stock()).length, 1);
    });
    setCreateDelay(0);
  });

  test('max idle age: stock idle too long is recycled, a bounded number per run', async () => {
    await wipePool(session.db);
    const env = {
      ...poolEnv({ more: OS, numsMore: 3, concurrency: 4 }),
      POOL__VOLUMES_BACKUP__MAX_IDLE_MINUTE: '0.05', // 3 s
      POOL__VOLUMES_BACKUP__RECYCLE_PER_RUN: '1',
    };
    await withPool(env, async (p) => {
      await p.fill();
      const first = await p.stock();
      assert.equal(first.length, 3);
      await sleep(3_500);
      await p.fill();
      const second = await p.stock();
      assert.equal(second.length, 3, 'replaced in the same run: the pool stays at its floor');
      assert.equal(
        second.filter((id) => !first.includes(id)).length,
        1,
        'one recycled (recycle_per_run = 1)',
      );
    });
  });

  test('fair share: a tenant past its share of a pool falls back; another tenant still gets hits', async () => {
    await wipePool(session.db);
    const env = {
      ...poolEnv({ more: OS, numsMore: 4, concurrency: 4 }),
      POOL__VOLUMES_BACKUP__TENANT_SHARE: '0.5', // 2 of the 4
      POOL__VOLUMES_BACKUP__TENANT_SHARE_WINDOW_MINUTE: '10',
    };
    await withPool(env, async (p) => {
      await p.fill();
      const alpha = [];
      for (let i = 0; i < 3; i++) alpha.push(await p.claim(TENANT_PROJECTS.alpha));
      assert.deepEqual(
        alpha.map((c) => c.outcome),
        ['pool', 'pool', 'created'],
      );
      assert.match(alpha[2]?.fallbackReason ?? '', /tenant share used: 2 of 2 pool volumes/);
      const beta = await p.claim(TENANT_PROJECTS.beta);
      assert.equal(beta.outcome, 'pool', 'the other tenant still gets a hit');
    });
  });
});
