/**
 * Backpressure against the real stack (Temporal's task-queue stats, Cinder, PostgreSQL): claims
 * started through the API on a task queue no worker polls make a real backlog. The 202s and the
 * GETs of running claims carry a Retry-After from it; past `[api] max_claim_backlog` a new claim
 * is refused 429 before anything starts, while a retry of a claim already started is joined as
 * always; once a worker polls, the claims complete, the backlog drains and new claims are
 * admitted again. The claims are data disks in a project of their own (deleted after).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { WorkflowNotFoundError } from '@temporalio/client';
import { buildApi } from '../api/server';
import { claimWorkflowId } from '../contracts/claim';
import { UNKNOWN_RETRY_SECONDS, readBacklog, type BacklogStats } from '../lib/temporal/backlog';
import { TENANT_USER } from '../scripts/stack/cloud';
import { admin, randomProjectId, unique, waitFor } from './support/env';
import {
  closeStack,
  openStack,
  poolEnv,
  startWorker,
  testConfig,
  type RunningWorker,
  type StackSession,
} from './support/pool';

/** Claims started before any worker polls, and the bound the strict API refuses past. */
const BACKLOG = 8;
const BOUND = 4;

// Two APIs on one fresh task queue: one without admission control, one with a low bound. Both
// answer 202 at once (claim_wait_second 0) and poll nothing themselves.
const { config } = testConfig({
  ...poolEnv({ more: 'Debian8 64bit' }),
  POOL__API__CLAIM_WAIT_SECOND: '0',
  POOL__API__MAX_CLAIM_BACKLOG: '0',
});
const { config: strictConfig } = testConfig({
  ...poolEnv({ more: 'Debian8 64bit' }),
  POOL__TEMPORAL__TASK_QUEUE: config.temporal.taskQueue,
  POOL__API__CLAIM_WAIT_SECOND: '0',
  POOL__API__MAX_CLAIM_BACKLOG: String(BOUND),
});
const auth = { authorization: `Bearer ${config.api.apiKeys[0] as string}` };
const project = randomProjectId();
const tenantCinder = admin.asProject(project, TENANT_USER);

let session: StackSession;
let open: FastifyInstance;
let strict: FastifyInstance;
let burst: FastifyInstance | undefined;
let worker: RunningWorker | undefined;
const started: Record<string, unknown>[] = [];

before(async () => {
  session = await openStack(5);
  await admin.updateQuota(project, { volumes: 50, gigabytes: 500 });
  open = buildApi({ config, db: session.db, temporal: session.client });
  strict = buildApi({ config: strictConfig, db: session.db, temporal: session.client });
});

after(async () => {
  // Whatever a failed test left running ends here, before its volumes are looked for.
  for (const body of started)
    await session.client.workflow
      .getHandle(claimWorkflowId(body.requestId as string))
      .terminate('test cleanup')
      .catch(() => undefined);
  await worker?.stop();
  await open?.close();
  await strict?.close();
  await burst?.close();
  await waitFor(
    "the test project's volumes deleted",
    async () => {
      const left = (await tenantCinder.listVolumes()).filter((v) => v.status !== 'deleting');
      for (const v of left)
        if (v.status !== 'creating') await tenantCinder.deleteVolume(v.id).catch(() => undefined);
      return left.map((v) => `${v.id} ${v.status}`);
    },
    (left) => left.length === 0,
    60_000,
    1000,
  );
  await closeStack(session);
});

const dataDisk = () => ({
  requestId: unique('bp'),
  projectId: project,
  name: unique('vm-data'),
  volumeType: 'sas',
  sizeGb: 1,
  systemDisk: false,
});

const post = (app: FastifyInstance, body: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/v1/claims', headers: auth, payload: body });
const get = (app: FastifyInstance, requestId: string) =>
  app.inject({ url: `/v1/claims/${requestId}`, headers: auth });

/** The Retry-After header as a number, asserting that it is one (whole seconds, 1–60). */
function retryAfter(res: LightMyRequestResponse): number {
  const raw = res.headers['retry-after'];
  assert.match(String(raw), /^\d+$/, `Retry-After ${String(raw)} (${res.statusCode})`);
  const s = Number(raw);
  assert.ok(s >= 1 && s <= 60, `Retry-After ${s}`);
  return s;
}

/** The queue's stats as the server has them now (no cache of ours in between). */
const backlog = (): Promise<BacklogStats> =>
  readBacklog(session.client.workflowService, config.temporal.namespace, config.temporal.taskQueue);

const exists = (requestId: string) =>
  session.client.workflow
    .getHandle(claimWorkflowId(requestId))
    .describe()
    .then(
      () => true,
      (err: unknown) => {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      },
    );

const refusedCount = async () => {
  const text = (await strict.inject({ url: '/metrics' })).body;
  const m = /warmpool_claims_total\{outcome="refused_backlog",status="429"\} (\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
};

describe('backpressure: Retry-After and admission control from the task queue backlog', () => {
  let refused: Record<string, unknown>;

  test('(a) claims no worker takes pile up; each 202 carries a numeric Retry-After, from the backlog', async (t) => {
    for (let i = 0; i < BACKLOG; i++) {
      const body = dataDisk();
      started.push(body);
      const res = await post(open, body);
      assert.equal(res.statusCode, 202, res.body);
      assert.equal(res.headers.location, `/v1/claims/${body.requestId}`);
      retryAfter(res);
    }
    const t0 = Date.now();
    const seen = await waitFor(
      `a backlog of ${BACKLOG} in the task queue's stats`,
      backlog,
      (s) => s.count >= BACKLOG,
      30_000,
      250,
    );
    t.diagnostic(
      `the server's stats showed the backlog ${Date.now() - t0} ms after the last start`,
    );
    t.diagnostic(`stats: ${JSON.stringify(seen)}`);
    assert.equal(seen.dispatchPerSecond, 0, 'nothing dispatched: no worker ever polled');
    assert.ok(seen.ageMs > 0, 'the oldest task has an age');
    // Tasks wait and nothing is dispatched: a running claim's GET says the default, once this
    // API's read has caught up with the server's (it is at most a few seconds old).
    const running = await waitFor(
      'the running claim answered with the backlog',
      () => get(open, started[0]?.requestId as string),
      (r) => r.headers['retry-after'] === String(UNKNOWN_RETRY_SECONDS),
      30_000,
      250,
    );
    assert.equal(running.statusCode, 200, running.body);
    assert.equal(running.json().status, 'running');
    const more = dataDisk();
    started.push(more);
    const again = await post(open, more);
    assert.equal(again.statusCode, 202, again.body);
    assert.equal(retryAfter(again), UNKNOWN_RETRY_SECONDS, 'no dispatch rate: the default');
  });

  test('(b) past max_claim_backlog a new claim is refused 429 + Retry-After, and nothing starts', async () => {
    refused = dataDisk();
    const before = await refusedCount();
    const res = await post(strict, refused);
    assert.equal(res.statusCode, 429, res.body);
    assert.match(String(res.headers['content-type']), /application\/json/);
    retryAfter(res);
    assert.match(
      res.json().error,
      new RegExp(
        `^claim backlog: about \\d+ claims wait for a worker \\(\\d+ queued in Temporal, \\d+ started by this API in the last \\d+ s\\), max_claim_backlog is ${BOUND}; this claim was not started: retry with the same requestId in \\d+ s$`,
      ),
    );
    assert.equal(await exists(refused.requestId as string), false, 'no workflow was started');
    // Still new, so still refused; counted each time.
    assert.equal((await post(strict, refused)).statusCode, 429);
    assert.equal(await exists(refused.requestId as string), false);
    assert.equal(await refusedCount(), before + 2);
  });

  test('(c) a retry of a claim already started is never refused: it is joined', async () => {
    for (const body of [started[0], started[BACKLOG - 1]] as Record<string, unknown>[]) {
      const res = await post(strict, body);
      assert.equal(res.statusCode, 202, res.body);
      assert.equal(res.json().status, 'running');
      retryAfter(res);
    }
    // Another body under a started requestId is still what it was: a conflict, not a refusal.
    const other = await post(strict, { ...started[0], name: unique('other') });
    assert.equal(other.statusCode, 409, other.body);
    const status = await get(strict, started[0]?.requestId as string);
    assert.equal(status.statusCode, 200);
    retryAfter(status);
  });

  test('(d) a worker drains the backlog: every claim completes and a new claim is admitted again', async (t) => {
    worker = await startWorker(config, session.db, { temporal: session.client });
    const t0 = Date.now();
    for (const body of started) {
      const done = await waitFor(
        `claim ${body.requestId as string} completed`,
        () => get(strict, body.requestId as string),
        (r) => r.json().status !== 'running',
        120_000,
        500,
      );
      assert.equal(done.json().status, 'completed', done.body);
      assert.equal(done.json().outcome, 'created');
      assert.equal(done.headers['retry-after'], undefined, 'only a running claim has one');
    }
    t.diagnostic(`${started.length} claims completed ${Date.now() - t0} ms after the worker began`);
    // The refused claim, retried as the caller was told: admitted once the stats show the drain.
    const admitted = await waitFor(
      'the refused claim admitted',
      () => post(strict, refused),
      (r) => r.statusCode !== 429,
      60_000,
      500,
    );
    t.diagnostic(`admitted again ${Date.now() - t0} ms after the worker began`);
    assert.ok([201, 202].includes(admitted.statusCode), admitted.body);
    started.push(refused);
    const done = await waitFor(
      'the admitted claim completed',
      () => get(strict, refused.requestId as string),
      (r) => r.json().status !== 'running',
      60_000,
      500,
    );
    assert.equal(done.json().status, 'completed', done.body);
    const s = await backlog();
    assert.ok(s.count <= BOUND, `backlog ${s.count}`);
    t.diagnostic(`stats after the drain: ${JSON.stringify(s)}`);
  });

  test('(e) a burst that arrives at once, before the stats can show it, is admitted up to the bound', async () => {
    // A queue of its own that no worker polls: the server's stats say 0 throughout the burst.
    const { config: burstConfig } = testConfig({
      ...poolEnv({ more: 'Debian8 64bit' }),
      POOL__API__CLAIM_WAIT_SECOND: '0',
      POOL__API__MAX_CLAIM_BACKLOG: String(BOUND),
    });
    burst = buildApi({ config: burstConfig, db: session.db, temporal: session.client });
    const bodies = Array.from({ length: 3 * BOUND }, () => dataDisk());
    started.push(...bodies);
    const replies = await Promise.all(bodies.map((b) => post(burst as FastifyInstance, b)));
    const codes = replies.map((r) => r.statusCode);
    assert.equal(codes.filter((c) => c === 202).length, BOUND, codes.join(' '));
    assert.equal(codes.filter((c) => c === 429).length, 2 * BOUND, codes.join(' '));
    for (const r of replies.filter((x) => x.statusCode === 429)) retryAfter(r);
    const exist = await Promise.all(bodies.map((b) => exists(b.requestId)));
    assert.deepEqual(
      exist,
      codes.map((c) => c === 202),
      'a workflow exactly for each admitted claim',
    );
  });
});
