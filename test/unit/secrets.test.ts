/**
 * Secrets stay secret: out of the image's build context (.dockerignore, checked with Docker's
 * own matching rules), out of configuration errors (a broken clouds.yaml), out of logged URLs
 * (every form of a URL password), and an API never starts with a key shipped as an example.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dockerignore from '@balena/dockerignore';
import { ConfigError, describeConfig, loadConfig } from '../../lib/config/load';
import { checkApiKeys, EXAMPLE_API_KEYS } from '../../lib/config/example-keys';
import { maskUrlSecrets } from '../../lib/log';

const tmp = mkdtempSync(join(tmpdir(), 'warmpool-secrets-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('.dockerignore', () => {
  const ignored = dockerignore().add(readFileSync('.dockerignore', 'utf8'));

  test('keeps secrets, local state and build output out of the build context, at any depth', () => {
    for (const path of [
      '.env',
      '.env.local',
      '.env.production',
      'config/.env',
      'clouds.yaml',
      'config/clouds.yaml',
      'deploy/openstack/clouds.yaml',
      '.stack/keystone/clouds.yaml',
      '.stack/keystone/cloud.json',
      'secure.yaml',
      'config/secure.yaml',
      '.git/config',
      'node_modules/pg/package.json',
      'dist/workers/main.js',
    ])
      assert.ok(ignored.ignores(path), `${path} would enter the image's build context`);
  });

  test('lets in every source the Dockerfile copies', () => {
    const copied = [...readFileSync('Dockerfile', 'utf8').matchAll(/^COPY (?!--from)(.+) \S+$/gm)]
      .flatMap((m) => (m[1] ?? '').split(' '))
      .filter(Boolean);
    assert.ok(copied.includes('lib') && copied.includes('package-lock.json'), copied.join(' '));
    for (const path of [...copied, 'lib/log.ts', 'migrations/1763856000000_pool-schema.sql'])
      assert.ok(!ignored.ignores(path), `${path} is copied by the Dockerfile but ignored`);
  });
});

describe('configuration errors never quote a secret-bearing file', () => {
  const PASSWORD = 'Zq9-very-secret-Pa55word';
  const broken: Record<string, string> = {
    'an unclosed quote': `clouds:\n  lab:\n    auth:\n      username: pool\n      password: "${PASSWORD}\n      project_name: pool\n`,
    'a colon in a plain value': `clouds:\n  lab:\n    auth:\n      password: ${PASSWORD}: x\n`,
    'a bad indent': `clouds:\n  lab:\n    auth:\n      username: pool\n     password: ${PASSWORD}\n`,
    'a tab': `clouds:\n  lab:\n    auth:\n\tpassword: ${PASSWORD}\n`,
  };
  for (const [what, text] of Object.entries(broken)) {
    test(`clouds.yaml with ${what} on the password line: file and line, not the line's text`, () => {
      const file = join(tmp, `clouds-${what.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(file, text);
      const err = (() => {
        try {
          loadConfig({ file: null, env: { OS_CLOUD: 'lab', OS_CLIENT_CONFIG_FILE: file } });
        } catch (e) {
          return e as Error;
        }
        assert.fail('a broken clouds.yaml was accepted');
      })();
      assert.ok(err instanceof ConfigError);
      assert.match(
        err.message,
        new RegExp(`^${file}: not valid YAML at line \\d+, column \\d+ \\(\\w+\\)$`),
      );
      assert.ok(!err.message.includes(PASSWORD.slice(0, 6)), err.message);
      assert.ok(!(err.stack ?? '').includes(PASSWORD.slice(0, 6)));
    });
  }
});

describe('URL passwords are masked in every form', () => {
  const cases: [string, string][] = [
    ['postgres://pool:hunter2@db:5432/warmpool', 'postgres://pool:<secret>@db:5432/warmpool'],
    ['postgres://pool:hun@ter2@db/warmpool', 'postgres://pool:<secret>@db/warmpool'],
    [
      'postgres://pool@db/warmpool?password=hunter2',
      'postgres://pool@db/warmpool?password=<secret>',
    ],
    [
      'postgresql://db/warmpool?sslmode=verify-full&sslpassword=hunter2&application_name=pool',
      'postgresql://db/warmpool?sslmode=verify-full&sslpassword=<secret>&application_name=pool',
    ],
    ['postgres://db/warmpool?PGPASSWORD=hunter2', 'postgres://db/warmpool?PGPASSWORD=<secret>'],
    ['postgres://db/warmpool?pass%77ord=hunter2#x', 'postgres://db/warmpool?pass%77ord=<secret>#x'],
    ['http://collector:4318?token=hunter2', 'http://collector:4318?token=<secret>'],
    ['postgres://pool@db/warmpool?sslmode=require', 'postgres://pool@db/warmpool?sslmode=require'],
  ];
  for (const [url, shown] of cases)
    test(url.replace(/hunter2/g, '…'), () => assert.equal(maskUrlSecrets(url), shown));

  test('describeConfig (the worker logs it at start) shows no password of any URL', () => {
    const config = loadConfig({
      file: 'config/pool.ini',
      env: {
        DATABASE_URL: 'postgres://pool:hunter1@db/warmpool?sslpassword=hunter2&password=hunter3',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://trace:hunter4@collector:4318',
        CINDER_URL: 'http://cinder:8776/v3?token=hunter5',
      },
    });
    const shown = JSON.stringify(describeConfig(config));
    assert.doesNotMatch(shown, /hunter/);
    assert.match(
      shown,
      /postgres:\/\/pool:<secret>@db\/warmpool\?sslpassword=<secret>&password=<secret>/,
    );
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** `npm run api` with this environment; resolves when it exits or once /healthz answers. */
async function startApi(env: NodeJS.ProcessEnv): Promise<{ exit: number | null; output: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
    env: { ...process.env, LOG_LEVEL: 'warn', POOL__API__PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const done = await Promise.race([exited, new Promise((r) => setTimeout(r, 200, 'running'))]);
    if (done !== 'running') return { exit: done as number | null, output };
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) {
      child.kill('SIGTERM');
      await exited;
      return { exit: null, output };
    }
  }
  child.kill('SIGKILL');
  throw new Error(`the API neither started nor exited:\n${output}`);
}

describe('the API refuses the example keys shipped with the project', () => {
  test('the examples are the keys config/pool.ini and .env.example ship', () => {
    const ini = /^api_keys = (.+)$/m.exec(readFileSync('config/pool.ini', 'utf8'))?.[1];
    const env = /^API_KEYS=(.+)$/m.exec(readFileSync('.env.example', 'utf8'))?.[1];
    assert.deepEqual([ini, env], [...EXAMPLE_API_KEYS]);
  });

  test('checkApiKeys: an example key is refused, an own key passes, dev mode allows the example', () => {
    const api = loadConfig({ file: 'config/pool.ini', env: {} }).api;
    assert.throws(
      () => checkApiKeys({ ...api, apiKeys: ['own-key', 'change-me'], allowExampleKeys: false }),
      /example keys shipped with the project.*allow_example_keys = true/,
    );
    assert.throws(() => checkApiKeys({ ...api, apiKeys: [] }), /empty/);
    checkApiKeys({ ...api, apiKeys: ['3f1c9e0b7a'], allowExampleKeys: false });
    checkApiKeys({ ...api, apiKeys: ['dev-key-change-me'], allowExampleKeys: true });
  });

  test('started with an example key and no dev mode, it exits non-zero and says why', async () => {
    for (const key of EXAMPLE_API_KEYS) {
      const { exit, output } = await startApi({
        API_KEYS: key,
        POOL__API__ALLOW_EXAMPLE_KEYS: 'false',
      });
      assert.equal(exit, 1, output);
      assert.match(
        output,
        /api failed: \[api\] api_keys \(or API_KEYS\) holds 1 of the example keys/,
      );
      assert.ok(!output.includes(key), 'the message does not repeat the key');
    }
  });

  test("with the local stack's dev mode (config/pool.ini: allow_example_keys = true) it starts", async () => {
    const { exit, output } = await startApi({});
    assert.equal(exit, null, output);
  });
});
