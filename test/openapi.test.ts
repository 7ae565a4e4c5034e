/**
 * The API's published contract (GET /openapi.json) against its real answers, on the real stack:
 * every route is in the document, /v1 routes carry the bearer scheme, and every answer — a claim
 * by plain creation and one from the pool, its status, 202 and its polls, the pool, the
 * dashboard data, health, readiness, metrics, and the errors (400, 401, 404, 409, 429 for the
 * key's limit and for the task queue's backlog, 503) —
 * has its status code documented, its documented headers, and a body that validates against the
 * documented schema.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { Client, Connection } from '@temporalio/client';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { buildApi } from '../api/server';
import { fillPoolWorkflow } from '../workflows';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import { sleep, unique, waitFor } from './support/env';
import { readBacklog } from '../lib/temporal/backlog';
import {
  closeStack,
  openStack,
  poolEnv,
  startWorker,
  testConfig,
  type RunningWorker,
  type StackSession,
} from './support/pool';

const { config } = testConfig({
  ...poolEnv({ more: 'Debian8 64bit', numsMore: 1 }),
  POOL__API__CLAIM_WAIT_SECOND: '120',
});
const key = config.api.apiKeys[0] as string;
const auth = { authorization: `Bearer ${key}` };

let session: StackSession;
let worker: RunningWorker;
let app: FastifyInstance;
/** Every route the API registered, as the router has it (HEAD twins aside). */
const routes: { method: string; url: string }[] = [];
let doc: {
  openapi: string;
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { securitySchemes: Record<string, unknown> };
};
interface OpenApiOperation {
  security?: Record<string, string[]>[];
  responses: Record<
    string,
    {
      content?: Record<string, { schema: unknown }>;
      headers?: Record<string, { schema: { type: string } }>;
    }
  >;
}
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
const checked = new Set<string>();

before(async () => {
  session = await openStack(5, { wipe: true });
  worker = await startWorker(config, session.db, { temporal: session.client });
  app = buildApi({ config, db: session.db, temporal: session.client });
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push({ method: m, url: r.url });
  });
  const res = await app.inject({ url: '/openapi.json' });
  assert.equal(res.statusCode, 200, 'the document needs no key');
  doc = res.json();
  ajv.addSchema(doc as object, 'openapi.json');
});
after(async () => {
  await app?.close();
  await worker?.stop();
  await closeStack(session);
});

/** `/v1/claims/:requestId` as OpenAPI writes it. */
const openApiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');
const pointer = (...parts: string[]) =>
  parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

/**
 * Asserts that the answer is one the document promises: its status code is documented for the
 * route, its media type too, and a JSON body validates against the schema ($refs resolved).
 */
function assertDocumented(route: string, method: string, res: LightMyRequestResponse): void {
  const op = doc.paths[route]?.[method];
  assert.ok(op, `${method.toUpperCase()} ${route} is in the document`);
  const status = String(res.statusCode);
  const answer = op.responses[status];
  assert.ok(
    answer,
    `${method.toUpperCase()} ${route}: status ${status} is documented (${res.body})`,
  );
  const mediaType = String(res.headers['content-type']).split(';')[0] as string;
  assert.ok(
    answer.content?.[mediaType],
    `${method.toUpperCase()} ${route} ${status}: ${mediaType} is documented`,
  );
  for (const [name, h] of Object.entries(answer.headers ?? {})) {
    const value = res.headers[name.toLowerCase()];
    assert.ok(value !== undefined, `${route} ${status}: header ${name}`);
    if (h.schema.type === 'integer') assert.match(String(value), /^\d+$/, name);
  }
  checked.add(`${method} ${route} ${status}`);
  if (!mediaType.endsWith('json')) return;
  const validate = ajv.getSchema(
    `openapi.json#/${pointer('paths', route, method, 'responses', status, 'content', mediaType, 'schema')}`,
  );
  assert.ok(validate, 'schema found');
  assert.ok(
    validate(res.json()),
    `${method.toUpperCase()} ${route} ${status}: ${ajv.errorsText(validate.errors)}\n${res.body}`,
  );
}

async function call(
  method: 'GET' | 'POST',
  url: string,
  route: string,
  opts: { headers?: Record<string, string>; payload?: unknown; on?: FastifyInstance } = {},
): Promise<LightMyRequestResponse> {
  const res = await (opts.on ?? app).inject({
    method,
    url,
    headers: opts.headers,
    payload: opts.payload as string,
  });
  assertDocumented(route, method.toLowerCase(), res);
  return res;
}

const claimBody = () => ({
  requestId: unique('oa'),
  projectId: TENANT_PROJECTS.alpha,
  name: unique('vm'),
  os: 'Debian8 64bit',
  volumeType: 'sas',
});

describe('OpenAPI contract', () => {
  test('the document lists every route; /v1 routes carry the bearer scheme', () => {
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' });
    const notInContract = new Set(['/openapi.json']);
    const listed = routes.filter((r) => !notInContract.has(r.url));
    for (const must of ['/v1/claims', '/v1/claims/:requestId', '/v1/pool', '/v1/dashboard'])
      assert.ok(
        listed.some((r) => r.url === must),
        `${must} registered`,
      );
    for (const r of listed) {
      const op = doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()];
      assert.ok(op, `${r.method} ${r.url} is in the document`);
      if (r.url.startsWith('/v1/')) assert.deepEqual(op.security, [{ bearer: [] }], r.url);
      assert.ok(Object.keys(op.responses).length > 0, `${r.url} documents its answers`);
    }
    assert.equal(doc.paths['/openapi.json'], undefined);
  });

  test('health, readiness, metrics, pool and dashboard (page and data) answers match the document', async () => {
    await call('GET', '/healthz', '/healthz');
    await call('GET', '/dashboard', '/dashboard');
    assert.equal((await call('GET', '/readyz', '/readyz')).statusCode, 200);
    assert.equal((await call('GET', '/metrics', '/metrics')).statusCode, 200);
    assert.equal((await call('GET', '/v1/pool', '/v1/pool', { headers: auth })).statusCode, 200);
    const dash = await call('GET', '/v1/dashboard', '/v1/dashboard', { headers: auth });
    assert.equal(dash.statusCode, 200);
  });

  test('a claim by plain creation, one from the pool, and their status match the document', async () => {
    const created = await call('POST', '/v1/claims', '/v1/claims', {
      headers: auth,
      payload: claimBody(),
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().outcome, 'created');

    await session.client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: unique('fill'),
      args: [{}],
    });
    const body = claimBody();
    const hit = await call('POST', '/v1/claims', '/v1/claims', { headers: auth, payload: body });
    assert.equal(hit.statusCode, 201, hit.body);
    assert.equal(hit.json().outcome, 'pool');
    const status = await call('GET', `/v1/claims/${body.requestId}`, '/v1/claims/{requestId}', {
      headers: auth,
    });
    assert.equal(status.statusCode, 200);
    assert.equal(status.json().status, 'completed');
    // The dashboard now has claims and a fill to show.
    await call('GET', '/v1/dashboard', '/v1/dashboard', { headers: auth });

    // The same requestId with another body.
    const conflict = await call('POST', '/v1/claims', '/v1/claims', {
      headers: auth,
      payload: { ...body, name: unique('other') },
    });
    assert.equal(conflict.statusCode, 409);
  });

  test('a 202 and the polls that follow it match the document', async () => {
    const { config: waitless } = testConfig({
      POOL__TEMPORAL__TASK_QUEUE: config.temporal.taskQueue,
      POOL__API__CLAIM_WAIT_SECOND: '0',
    });
    const quick = buildApi({ config: waitless, db: session.db, temporal: session.client });
    try {
      const body = claimBody();
      const first = await call('POST', '/v1/claims', '/v1/claims', {
        headers: auth,
        payload: body,
        on: quick,
      });
      assert.equal(first.statusCode, 202, first.body);
      for (let i = 0; i < 120; i++) {
        const got = await call('GET', `/v1/claims/${body.requestId}`, '/v1/claims/{requestId}', {
          headers: auth,
          on: quick,
        });
        if (got.json().status !== 'running') break;
        await sleep(500);
      }
    } finally {
      await quick.close();
    }
  });

  test('errors match the document: 400, 401, 404, 429, 503', async () => {
    const bad = await call('POST', '/v1/claims', '/v1/claims', {
      headers: auth,
      payload: { ...claimBody(), sizeGb: 'ten' },
    });
    assert.equal(bad.statusCode, 400);
    const badId = await call('GET', '/v1/claims/-bad', '/v1/claims/{requestId}', {
      headers: auth,
    });
    assert.equal(badId.statusCode, 400);
    for (const [method, url, route] of [
      ['POST', '/v1/claims', '/v1/claims'],
      ['GET', '/v1/claims/x', '/v1/claims/{requestId}'],
      ['GET', '/v1/pool', '/v1/pool'],
      ['GET', '/v1/dashboard', '/v1/dashboard'],
    ] as const) {
      const res = await call(method, url, route, { payload: method === 'POST' ? {} : undefined });
      assert.equal(res.statusCode, 401);
    }
    const unknown = await call('GET', `/v1/claims/${unique('none')}`, '/v1/claims/{requestId}', {
      headers: auth,
    });
    assert.equal(unknown.statusCode, 404);

    const { config: limited } = testConfig({
      POOL__API__RATE_LIMIT_MAX: '1',
      POOL__API__RATE_LIMIT_WINDOW_SECOND: '60',
      POOL__API__METRICS_KEY: 'scrape-secret',
    });
    const strict = buildApi({ config: limited, db: session.db, temporal: session.client });
    const dead = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
    const deadApp = buildApi({ config, db: session.db, temporal: dead });
    try {
      await call('GET', '/v1/pool', '/v1/pool', { headers: auth, on: strict });
      const over = await call('GET', '/v1/pool', '/v1/pool', { headers: auth, on: strict });
      assert.equal(over.statusCode, 429);
      const noKey = await call('GET', '/metrics', '/metrics', { on: strict });
      assert.equal(noKey.statusCode, 401);
      const down = await call('GET', '/v1/claims/x', '/v1/claims/{requestId}', {
        headers: auth,
        on: deadApp,
      });
      assert.equal(down.statusCode, 503);
    } finally {
      await strict.close();
      await deadApp.close();
    }
  });

  test('a new claim refused for the task queue backlog (429, Retry-After) matches the document', async () => {
    // A queue no worker polls, two workflow tasks waiting in it, and a bound of 1.
    const { config: bounded } = testConfig({ POOL__API__MAX_CLAIM_BACKLOG: '1' });
    const waiting = [unique('oa-waiting'), unique('oa-waiting')];
    for (const workflowId of waiting)
      await session.client.workflow.start('notPolledWorkflow', {
        taskQueue: bounded.temporal.taskQueue,
        workflowId,
      });
    const backlogged = buildApi({ config: bounded, db: session.db, temporal: session.client });
    try {
      const { namespace, taskQueue } = bounded.temporal;
      await waitFor(
        "the backlog in the queue's stats",
        () => readBacklog(session.client.workflowService, namespace, taskQueue),
        (s) => s.count >= 2,
        30_000,
        250,
      );
      const refused = await call('POST', '/v1/claims', '/v1/claims', {
        headers: auth,
        payload: claimBody(),
        on: backlogged,
      });
      assert.equal(refused.statusCode, 429, refused.body);
      assert.match(refused.json().error, /^claim backlog: /);
    } finally {
      await backlogged.close();
      for (const workflowId of waiting)
        await session.client.workflow
          .getHandle(workflowId)
          .terminate('test cleanup')
          .catch(() => undefined);
    }
  });

  test('the answers checked cover every documented route', () => {
    const seen = new Set([...checked].map((c) => c.split(' ').slice(0, 2).join(' ')));
    for (const [path, ops] of Object.entries(doc.paths))
      for (const method of Object.keys(ops))
        assert.ok(seen.has(`${method} ${path}`), `${method} ${path}`);
  });
});
