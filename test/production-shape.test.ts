/**
 * The production shape on the real stack, without Docker: `npm run build` into a directory laid
 * out as the image's /app (dist/ beside node_modules), then `node dist/workers/main.js` and
 * `node dist/api/main.js` with the environment docker-compose.yml gives those services. Only
 * what points at compose's own hosts is replaced by the stack's (DATABASE_URL,
 * TEMPORAL_ADDRESS, the mounted config/), and the ports by free ones; the bind settings stay,
 * so the API and the worker's metrics listen on 0.0.0.0 as in their containers. The worker
 * loads the workflows bundled at build time; its version is made current as the upgrade step
 * does (compose: set_current_on_start false). A claim through that API is checked in Cinder,
 * and the compose health checks' own commands are run.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { networkInterfaces, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../lib/config/load';
import { setCurrentVersion } from '../lib/temporal/versioning';
import { BUNDLE_FILES, workflowCode } from '../lib/temporal/workflow-bundle';
import { fillPoolWorkflow } from '../workflows';
import { TENANT_PROJECTS, TENANT_USER } from '../scripts/stack/cloud';
import { admin, config as stackConfig, unique, waitFor } from './support/env';
import { closeStack, exited, openStack, poolEnv, type StackSession } from './support/pool';
import { readCompose, serviceEnv } from './support/compose';

const ROOT = resolve(__dirname, '..');
const app = mkdtempSync(join(tmpdir(), 'warmpool-app-'));
const compose = readCompose();
const apiKey = unique('prod-key');
/** What the operator exports before `docker compose up`. */
const VARS = { API_KEYS: apiKey, POOL_DB_PASSWORD: 'unused', TEMPORAL_DB_PASSWORD: 'unused' };

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer().listen(0, '0.0.0.0', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

/** A compose service's environment, its compose host names replaced by the local stack's. */
function localEnv(service: string): Record<string, string> {
  const env = serviceEnv(compose.services[service] ?? {}, VARS);
  assert.equal(env.CONFIG_FILE, '/app/config/pool.ini', 'config/ is mounted at /app/config');
  return {
    ...env,
    CONFIG_FILE: resolve(ROOT, 'config/pool.ini'),
    DATABASE_URL: stackConfig.databaseUrl,
    TEMPORAL_ADDRESS: stackConfig.temporal.address,
  };
}

/** A non-loopback address of this machine, to see a 0.0.0.0 bind from outside loopback. */
const outsideAddress = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

/** The compose health check of a service, run as the container runs it (cwd /app, its env). */
async function healthcheck(service: string, env: NodeJS.ProcessEnv): Promise<number | null> {
  const [kind, command, ...args] = compose.services[service]?.healthcheck?.test ?? [];
  assert.equal(kind, 'CMD');
  assert.equal(command, 'node');
  const child = spawn(process.execPath, args, { cwd: app, env, stdio: 'ignore' });
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

function start(script: string, env: NodeJS.ProcessEnv): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [script], {
    cwd: app,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  return Object.assign(child, { output: () => out });
}

let session: StackSession;
before(async () => {
  await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'scripts/build.ts', '--out', join(app, 'dist')],
    { cwd: ROOT, timeout: 300_000 },
  );
  symlinkSync(resolve(ROOT, 'node_modules'), join(app, 'node_modules'));
  session = await openStack(5, { wipe: true });
});
after(async () => {
  rmSync(app, { recursive: true, force: true });
  await closeStack(session);
});

describe('the production shape (compiled output, compose environment)', () => {
  test('the build bundles the workflows twice: with the tracing interceptors, and without', () => {
    const dist = join(app, 'dist');
    const code = (tracing: boolean) =>
      workflowCode(dist, 'unused', tracing).workflowBundle?.codePath;
    assert.equal(code(false), join(dist, BUNDLE_FILES.plain));
    assert.equal(code(true), join(dist, BUNDLE_FILES.tracing));
    const interceptor = /class OpenTelemetryInboundInterceptor/;
    assert.match(readFileSync(code(true) ?? '', 'utf8'), interceptor);
    assert.doesNotMatch(readFileSync(code(false) ?? '', 'utf8'), interceptor);
    // From the sources (tsx), no bundle beside them: the worker bundles at start.
    assert.deepEqual(workflowCode(ROOT, 'workflows/index.ts', false), {
      workflowsPath: 'workflows/index.ts',
    });
  });

  test('worker and API from dist/ with compose’s environment: a claim through the API, health checks', async () => {
    const taskQueue = unique('tq-prod');
    // The image: WARMPOOL_BUILD_ID from the build; no PATH to tsx, no NODE_OPTIONS of the runner.
    const base = { PATH: process.env.PATH, HOME: process.env.HOME, WARMPOOL_BUILD_ID: unique('b') };
    // This test's own task queue (and so Worker Deployment) and a one-volume pool.
    const isolated = {
      POOL__TEMPORAL__TASK_QUEUE: taskQueue,
      POOL__TEMPORAL__SCHEDULE_PREFIX: unique('sched-prod'),
      POOL__TEMPORAL__MANAGE_SCHEDULES: 'false',
      POOL__VOLUMES_BACKUP__CREATE_VOLUME_TIME_INTERVAL_SECOND: '0',
      POOL__VOLUMES_BACKUP__POLL_INTERVAL_SECOND: '0.3',
      POOL__VOLUMES_BACKUP__DEMAND_TARGETS: 'false',
      ...Object.fromEntries(
        Object.entries(poolEnv({ more: 'Debian8 64bit', numsMore: 1 })).map(([k, v]) => [
          k,
          String(v),
        ]),
      ),
    };

    const workerCompose = localEnv('worker');
    const metricsAt = workerCompose.POOL__TEMPORAL__WORKER_METRICS_ADDRESS ?? '';
    assert.match(metricsAt, /^0\.0\.0\.0:\d+$/, 'compose binds the worker metrics to 0.0.0.0');
    const metricsPort = await freePort();
    const workerEnv = {
      ...base,
      ...workerCompose,
      ...isolated,
      POOL__TEMPORAL__WORKER_METRICS_ADDRESS: metricsAt.replace(/:\d+$/, `:${metricsPort}`),
    };
    const apiCompose = localEnv('api');
    assert.equal(apiCompose.POOL__API__HOST, '0.0.0.0', 'compose binds the API to 0.0.0.0');
    const apiPort = await freePort();
    const apiEnv = { ...base, ...apiCompose, ...isolated, POOL__API__PORT: String(apiPort) };

    const worker = start('dist/workers/main.js', workerEnv);
    const api = start('dist/api/main.js', apiEnv);
    try {
      await waitFor(
        'the worker’s health check',
        () => healthcheck('worker', workerEnv),
        (code) => code === 0 || worker.exitCode !== null,
        90_000,
        500,
      );
      assert.equal(worker.exitCode, null, worker.output());
      assert.ok(
        worker.output().includes(`workflows: ${join(app, 'dist', BUNDLE_FILES.plain)}`),
        `the worker loads the prebuilt bundle:\n${worker.output().slice(0, 3000)}`,
      );
      // The upgrade step (docs/upgrading.md): compose's workers do not make themselves current.
      const workerConfig = loadConfig({ env: workerEnv });
      assert.equal(workerConfig.temporal.setCurrentOnStart, false);
      await setCurrentVersion(session.client.workflowService, workerConfig, { timeoutMs: 60_000 });

      await session.client.workflow.execute(fillPoolWorkflow, {
        taskQueue,
        workflowId: unique('prod-fill'),
        args: [{}],
      });

      await waitFor(
        'the API’s health check',
        () => healthcheck('api', apiEnv),
        (code) => code === 0 || api.exitCode !== null,
        30_000,
        300,
      );
      assert.equal(api.exitCode, null, api.output());
      const name = unique('vm-prod');
      const res = await fetch(`http://127.0.0.1:${apiPort}/v1/claims`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          requestId: unique('prod-claim'),
          projectId: TENANT_PROJECTS.alpha,
          userId: TENANT_USER,
          name,
          os: 'Debian8 64bit',
          volumeType: 'sas',
          systemDisk: true,
        }),
      });
      const body = (await res.json()) as { volumeId?: string; outcome?: string };
      assert.equal(res.status, 201, JSON.stringify(body));
      assert.equal(body.outcome, 'pool');
      const volume = await admin.findVolume(body.volumeId ?? '');
      assert.equal(volume?.status, 'available');
      assert.equal(volume?.name, name);
      assert.equal(volume?.projectId, TENANT_PROJECTS.alpha, 'the tenant has it');

      // Bound to 0.0.0.0, as in the container: reached on a non-loopback address too.
      if (outsideAddress) {
        assert.equal((await fetch(`http://${outsideAddress}:${apiPort}/healthz`)).status, 200);
        assert.equal((await fetch(`http://${outsideAddress}:${metricsPort}/metrics`)).status, 200);
      }
    } finally {
      for (const p of [api, worker]) if (p.exitCode === null) p.kill('SIGTERM');
      await Promise.all([exited(api), exited(worker)]);
    }
    // The checks fail when the process is gone.
    assert.equal(await healthcheck('api', apiEnv), 1);
    assert.equal(await healthcheck('worker', workerEnv), 1);
  });
});

/** A CA, and server and client certificates it signed (openssl), in `dir`. */
function makeCertificates(dir: string, serverName: string): Record<string, string> {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=warmpool test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  for (const [who, usage, san] of [
    ['server', 'serverAuth', `DNS:${serverName}`],
    ['client', 'clientAuth', 'DNS:warmpool-worker'],
  ] as const) {
    openssl(
      'req',
      '-new',
      ...ec,
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
      '-subj',
      `/CN=${who}`,
    );
    writeFileSync(join(dir, `${who}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\n`);
    openssl(
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      `${who}.ext`,
      '-out',
      `${who}.pem`,
    );
  }
  return Object.fromEntries(
    ['ca.pem', 'server.pem', 'server.key', 'client.pem', 'client.key'].map((f) => [
      f,
      join(dir, f),
    ]),
  );
}

/**
 * A frontend that requires mTLS, as the server with TEMPORAL_TLS_REQUIRE_CLIENT_AUTH: TLS (h2)
 * with a client certificate of our CA, then the stack's dev server behind it.
 */
async function mtlsFrontend(files: Record<string, string>): Promise<{
  server: TlsServer;
  address: string;
  authorized: () => number;
  refused: () => number;
}> {
  let authorized = 0;
  let refused = 0;
  const [host, port] = stackConfig.temporal.address.split(':');
  const server = createTlsServer(
    {
      key: readFileSync(files['server.key'] ?? ''),
      cert: readFileSync(files['server.pem'] ?? ''),
      ca: readFileSync(files['ca.pem'] ?? ''),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (socket) => {
      authorized += 1;
      const upstream = connect(Number(port), host);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    },
  );
  server.on('tlsClientError', () => (refused += 1));
  const listenPort = await new Promise<number>((r) =>
    server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)),
  );
  return {
    server,
    address: `127.0.0.1:${listenPort}`,
    authorized: () => authorized,
    refused: () => refused,
  };
}

describe('mTLS to Temporal (docs/production.md)', () => {
  test('worker (NativeConnection and client) and API (Connection) from dist/ reach a frontend that requires a client certificate', async () => {
    const files = makeCertificates(mkdtempSync(join(app, 'tls-')), 'temporal.test');
    const frontend = await mtlsFrontend(files);
    try {
      // Without a client certificate the frontend refuses the connection.
      await assert.rejects(
        NativeConnection.connect({
          address: frontend.address,
          tls: {
            serverNameOverride: 'temporal.test',
            serverRootCACertificate: readFileSync(files['ca.pem'] ?? ''),
          },
        }),
      );
      assert.ok(frontend.refused() > 0, 'the handshake without a certificate was refused');

      const taskQueue = unique('tq-mtls');
      const tls = {
        TEMPORAL_ADDRESS: frontend.address,
        POOL__TEMPORAL__TLS_CA_FILE: files['ca.pem'] ?? '',
        POOL__TEMPORAL__TLS_CERT_FILE: files['client.pem'] ?? '',
        POOL__TEMPORAL__TLS_KEY_FILE: files['client.key'] ?? '',
        POOL__TEMPORAL__TLS_SERVER_NAME: 'temporal.test',
      };
      const base = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        WARMPOOL_BUILD_ID: unique('b'),
      };
      const own = {
        POOL__TEMPORAL__TASK_QUEUE: taskQueue,
        POOL__TEMPORAL__MANAGE_SCHEDULES: 'false',
        POOL__TEMPORAL__SCHEDULE_PREFIX: unique('sched-mtls'),
      };
      const metricsPort = await freePort();
      const workerEnv = {
        ...base,
        ...localEnv('worker'),
        ...own,
        ...tls,
        POOL__TEMPORAL__WORKER_METRICS_ADDRESS: `0.0.0.0:${metricsPort}`,
      };
      const apiPort = await freePort();
      const apiEnv = {
        ...base,
        ...localEnv('api'),
        ...own,
        ...tls,
        POOL__API__PORT: String(apiPort),
      };
      const worker = start('dist/workers/main.js', workerEnv);
      const api = start('dist/api/main.js', apiEnv);
      try {
        await waitFor(
          'the worker polling through mTLS',
          () => healthcheck('worker', workerEnv),
          (code) => code === 0 || worker.exitCode !== null,
          90_000,
          500,
        );
        assert.equal(worker.exitCode, null, worker.output());
        await setCurrentVersion(session.client.workflowService, loadConfig({ env: workerEnv }), {
          timeoutMs: 60_000,
        });
        await waitFor(
          'the API',
          () => healthcheck('api', apiEnv),
          (c) => c === 0,
          30_000,
          300,
        );
        // A data disk: plain creation, the claim's whole path through the API's TLS client.
        const name = unique('vm-mtls');
        const res = await fetch(`http://127.0.0.1:${apiPort}/v1/claims`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            requestId: unique('mtls-claim'),
            projectId: TENANT_PROJECTS.beta,
            userId: TENANT_USER,
            name,
            os: 'Debian8 64bit',
            volumeType: 'sas',
            sizeGb: 1,
            systemDisk: false,
          }),
        });
        const body = (await res.json()) as { volumeId?: string; outcome?: string };
        assert.equal(res.status, 201, JSON.stringify(body));
        assert.equal(body.outcome, 'created');
        const volume = await admin.findVolume(body.volumeId ?? '');
        assert.equal(volume?.name, name);
        assert.equal(volume?.projectId, TENANT_PROJECTS.beta);
        // The worker's NativeConnection, its client and the API's connection: three at least.
        assert.ok(frontend.authorized() >= 3, `${frontend.authorized()} mTLS connections`);
      } finally {
        for (const p of [api, worker]) if (p.exitCode === null) p.kill('SIGTERM');
        await Promise.all([exited(api), exited(worker)]);
      }
    } finally {
      frontend.server.close();
    }
  });
});
