/**
 * The dashboard in a real browser (Debian's chromium, headless, driven by playwright-core)
 * against the real stack after a fill and some claims: the numbers it shows match /v1/pool and
 * /metrics, the claims link to their Temporal Web UI history, the key leaves the address bar,
 * a page without a key asks for one. Saves .stack/dashboard.png for people to look at.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser } from 'playwright-core';
import { buildApi } from '../api/server';
import { fillPoolWorkflow } from '../workflows';
import type { PoolLevel } from '../lib/pool-state/levels';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import { unique, waitFor } from './support/env';
import {
  STACK_DIR,
  closeStack,
  openStack,
  poolEnv,
  startWorker,
  testConfig,
  type RunningWorker,
  type StackSession,
} from './support/pool';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
// The stack leaves the browser out only when told to (STACK_BROWSER=0); then so does this test.
const skip =
  process.env.STACK_BROWSER === '0' ? 'STACK_BROWSER=0: no browser in this stack' : false;
const OS = 'Debian8 64bit';

let session: StackSession;
let worker: RunningWorker;
let app: FastifyInstance;
let browser: Browser;
let base: string;
const { config } = testConfig({
  ...poolEnv({ more: OS, less: 'Centos7.3 64bit', numsMore: 3, numsLess: 1 }),
  POOL__API__CLAIM_WAIT_SECOND: '120',
});
const key = config.api.apiKeys[0] as string;
const headers = { authorization: `Bearer ${key}` };

before(async () => {
  if (skip) return;
  assert.ok(existsSync(CHROMIUM), `no browser at ${CHROMIUM}: npm run stack:up installs chromium`);
  session = await openStack(5, { wipe: true });
  worker = await startWorker(config, session.db);
  app = buildApi({ config, db: session.db, temporal: session.client });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // This machine has no way out: no background traffic, no sandbox (root in CI).
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await app?.close();
  await worker?.stop();
  await closeStack(session);
});

const getJson = async <T>(path: string): Promise<T> =>
  (await app.inject({ url: path, headers })).json() as T;

describe('dashboard (headless chromium, real stack)', { skip }, () => {
  test('shows the levels of /v1/pool, the hit ratio and claims of /metrics, links to Temporal', async () => {
    await session.client.workflow.execute(fillPoolWorkflow, {
      taskQueue: config.temporal.taskQueue,
      workflowId: unique('dash-fill'),
      args: [{}],
    });
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/claims',
        headers,
        payload: {
          requestId: unique('dash'),
          projectId: TENANT_PROJECTS.alpha,
          name: unique('dash-vm'),
          os: OS,
          volumeType: 'sas',
        },
      });
      assert.equal(res.statusCode, 201, res.body);
      outcomes.push(res.json().outcome);
    }
    assert.deepEqual(outcomes, ['pool', 'pool', 'pool', 'created']);
    // The claim log is written after each answer: wait until all four are in.
    await waitFor(
      'the claims in the dashboard data',
      () => getJson<{ claims: unknown[] }>('/v1/dashboard'),
      (d) => d.claims.length === 4,
      10_000,
      200,
    );

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`${base}/dashboard#key=${encodeURIComponent(key)}`);
    await page.waitForSelector('body[data-ready]', { timeout: 15_000 });
    assert.equal(new URL(page.url()).hash, '', 'the key left the address bar');
    // The worker polls: the page says so, from the server's poller list.
    assert.equal(await page.getAttribute('#workers-box', 'data-polling'), 'true');
    assert.match(
      (await page.textContent('#workers')) ?? '',
      new RegExp(`^1 worker\\(s\\) of build \\S+ poll task queue ${config.temporal.taskQueue}$`),
    );

    // Levels: every pool row shows what /v1/pool says (read at the same moment: no fill runs).
    const { levels } = await getJson<{ levels: PoolLevel[] }>('/v1/pool');
    const shown = await page.$$eval('tr[data-pool]', (rows) =>
      rows.map((r) => ({
        pool: r.getAttribute('data-pool'),
        ...Object.fromEntries(
          [...r.querySelectorAll('td[data-field]')].map((td) => [
            td.getAttribute('data-field'),
            Number(td.textContent),
          ]),
        ),
      })),
    );
    assert.equal(shown.length, levels.length);
    for (const l of levels) {
      const key = `${l.volumeType}/${l.os}${l.zone ? `@${l.zone}` : ''}`;
      const s = shown.find((x) => x.pool === key);
      assert.ok(s, `pool ${key} shown`);
      for (const f of ['floor', 'target', 'available', 'creating', 'reserved', 'stale'] as const)
        assert.equal(s[f], l[f], `${f} of ${s.pool}`);
    }

    // Hit ratio and claims by outcome: what this API's /metrics counted.
    const metrics = (await app.inject({ url: '/metrics' })).body;
    const count = (outcome: string) =>
      Number(
        new RegExp(`warmpool_claims_total\\{outcome="${outcome}",status="201"\\} (\\d+)`).exec(
          metrics,
        )?.[1] ?? 0,
      );
    const ratio = count('pool') / (count('pool') + count('created'));
    assert.equal(await page.textContent('#hit-hour'), `${Math.round(ratio * 1000) / 10} %`);
    const byOutcome = await page.$$eval('#latency tr', (rows) =>
      rows.map((r) => [r.getAttribute('data-outcome'), Number(r.children[1]?.textContent)]),
    );
    assert.deepEqual(
      Object.fromEntries(byOutcome),
      { created: count('created'), pool: count('pool') },
      'claims per outcome as /metrics counts them',
    );

    // Recent claims link to their history in the Temporal Web UI.
    const links = await page.$$eval('#claims a', (as) => as.map((a) => a.getAttribute('href')));
    assert.equal(links.length, 4);
    for (const href of links)
      assert.match(
        href ?? '',
        new RegExp(`^${config.temporal.uiUrl}/namespaces/default/workflows/claim-dash-`),
      );
    const fills = await page.$$eval('#fills tr', (rows) => rows.length);
    assert.ok(fills >= 1, 'the fill shows');

    await page.screenshot({ path: `${STACK_DIR}/dashboard.png`, fullPage: true });
    await page.close();
  });

  test('with the worker stopped, the page says plainly that no worker polls, at once', async () => {
    await worker.stop();
    worker = { stop: async () => undefined };
    const t0 = Date.now();
    const data = await getJson<{ workers: { polling: boolean | null; text: string } }>(
      '/v1/dashboard',
    );
    assert.ok(Date.now() - t0 < 2_000, `the data took ${Date.now() - t0} ms`);
    assert.equal(data.workers.polling, false);
    const page = await browser.newPage();
    await page.goto(`${base}/dashboard#key=${encodeURIComponent(key)}`);
    await page.waitForSelector('#workers-box.alert[data-polling="false"]', { timeout: 15_000 });
    assert.match(
      (await page.textContent('#workers')) ?? '',
      new RegExp(`^no worker polling: NO WORKER .*polls task queue ${config.temporal.taskQueue}`),
    );
    await page.close();
  });

  test('without a key: the page asks for one; the data answers 401', async () => {
    const page = await browser.newPage();
    await page.goto(`${base}/dashboard`);
    await page.waitForSelector('#login:not([hidden])', { timeout: 10_000 });
    assert.equal(await page.isHidden('#board'), true);
    await page.close();
    assert.equal((await app.inject({ url: '/v1/dashboard' })).statusCode, 401);
  });
});
