/**
 * Traces across API → workflow → activities on the real stack: the API (this process) and a
 * real `npm run worker` process both export to an OTLP/HTTP endpoint (a small receiver here
 * that keeps what it is sent, standing in for a collector); one claim makes one trace that
 * holds the API's update-with-start, the workflow run and its activities.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildApi } from '../api/server';
import { connectClient } from '../lib/temporal/connect';
import { startTracing } from '../lib/temporal/tracing';
import { TENANT_PROJECTS } from '../scripts/stack/cloud';
import { unique, waitFor } from './support/env';
import {
  closeStack,
  exited,
  openStack,
  poolEnv,
  spawnWorker,
  testConfig,
  type StackSession,
} from './support/pool';

interface Span {
  service: string;
  traceId: string;
  name: string;
}

let session: StackSession;
let receiver: Server;
const spans: Span[] = [];

/** Keeps the spans of OTLP/HTTP JSON export requests (what @opentelemetry's exporter sends). */
function otlpReceiver(): Promise<string> {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const doc = JSON.parse(body) as {
          resourceSpans: {
            resource: { attributes: { key: string; value: { stringValue?: string } }[] };
            scopeSpans: { spans: { traceId: string; name: string }[] }[];
          }[];
        };
        for (const rs of doc.resourceSpans) {
          const service =
            rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
          for (const ss of rs.scopeSpans)
            for (const s of ss.spans) spans.push({ service, traceId: s.traceId, name: s.name });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) =>
    receiver.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(receiver.address() as AddressInfo).port}`),
    ),
  );
}

before(async () => (session = await openStack(5, { wipe: true })));
after(async () => {
  receiver?.close();
  await closeStack(session);
});

describe('tracing (OTLP, real worker process)', () => {
  test('one claim, one trace: API update-with-start → workflow → its activities', async () => {
    const endpoint = await otlpReceiver();
    const { config, env } = testConfig({
      ...poolEnv({ more: 'Debian8 64bit', numsMore: 1 }),
      POOL__TEMPORAL__OTLP_ENDPOINT: endpoint,
      POOL__API__CLAIM_WAIT_SECOND: '120',
    });
    const tracing = startTracing(endpoint, 'warmpool-api');
    const worker = spawnWorker(env);
    const temporal = await connectClient(config); // with the tracing interceptor
    const app = buildApi({ config, db: session.db, temporal });
    try {
      const requestId = unique('traced');
      const res = await app.inject({
        method: 'POST',
        url: '/v1/claims',
        headers: { authorization: `Bearer ${config.api.apiKeys[0]}` },
        payload: {
          requestId,
          projectId: TENANT_PROJECTS.alpha,
          name: unique('traced-vm'),
          os: 'Debian8 64bit',
          volumeType: 'sas',
        },
      });
      assert.equal(res.statusCode, 201, res.body);
      await tracing.shutdown(); // flush the API's spans
      const trace = await waitFor(
        'the worker’s spans of that claim',
        async () => {
          const api = spans.find(
            (s) => s.service === 'warmpool-api' && /^UpdateWithStartWorkflow:/.test(s.name),
          );
          return api ? spans.filter((s) => s.traceId === api.traceId) : [];
        },
        (t) =>
          t.some((s) => s.service === 'warmpool-worker' && /^RunActivity:/.test(s.name)) &&
          t.some((s) => s.service === 'warmpool-worker' && /^RunWorkflow:/.test(s.name)),
        30_000,
        500,
      );
      const names = trace.map((s) => `${s.service} ${s.name}`);
      assert.ok(names.includes('warmpool-api UpdateWithStartWorkflow:delivered'), names.join('\n'));
      assert.ok(
        names.includes('warmpool-worker RunWorkflow:claimVolumeWorkflow'),
        names.join('\n'),
      );
      assert.ok(
        names.some((n) =>
          /^warmpool-worker RunActivity:(createTenantVolume|awaitTenantVolume)$/.test(n),
        ),
        names.join('\n'),
      );
    } finally {
      await app.close();
      await temporal.connection.close();
      worker.kill('SIGTERM');
      await exited(worker);
    }
  });
});
