/**
 * docker-compose.yml and the Dockerfile cannot be run here (no Docker engine), so their shape
 * is checked by parsers, and the configuration each service gets is loaded by the pool's own
 * loader: what compose publishes must be where the process listens. The built image's
 * processes run against the real stack in test/production-shape.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { loadConfig } from '../../lib/config/load';
import { interpolate, publishedPort, readCompose, serviceEnv } from '../support/compose';

const compose = readCompose();
const dockerfile = readFileSync('Dockerfile', 'utf8');
/** What an operator sets before `docker compose up`. */
const VARS = { API_KEYS: 'k-0123456789', POOL_DB_PASSWORD: 'p1', TEMPORAL_DB_PASSWORD: 'p2' };

const svc = (name: string) => {
  const s = compose.services[name];
  assert.ok(s, `missing service ${name}`);
  return s;
};
const deps = (name: string) => {
  const d = svc(name).depends_on ?? {};
  return Array.isArray(d)
    ? Object.fromEntries(d.map((n) => [n, { condition: 'service_started' }]))
    : d;
};
/** The configuration the service's process loads in its container (config/ is mounted). */
const configOf = (name: string) => {
  const env = serviceEnv(svc(name), VARS);
  assert.equal(env.CONFIG_FILE, '/app/config/pool.ini');
  assert.ok(svc(name).volumes?.includes('./config:/app/config:ro'), `${name} mounts ./config`);
  return loadConfig({ file: 'config/pool.ini', env });
};
/** `host:port` of the worker's metrics, split. */
const hostPort = (at: string | undefined) => {
  const m = /^(.*):(\d+)$/.exec(at ?? '');
  assert.ok(m, `expected host:port, got ${at}`);
  return { host: m[1], port: Number(m[2]) };
};

describe('docker-compose.yml', () => {
  test('has the production shape: Temporal (schema and namespace one-shots), its DB, the Web UI, our DB, migrations, worker and API', () => {
    for (const s of [
      'temporal-db',
      'temporal-schema',
      'temporal',
      'temporal-namespace',
      'temporal-ui',
      'pool-db',
      'migrate',
      'worker',
      'api',
    ])
      svc(s);
  });

  test('every dependency names a defined service; our processes wait for the namespace and the migrations', () => {
    for (const name of Object.keys(compose.services))
      for (const d of Object.keys(deps(name)))
        assert.ok(compose.services[d], `${name} depends on unknown ${d}`);
    for (const s of ['worker', 'api']) {
      assert.equal(deps(s)['temporal-namespace']?.condition, 'service_completed_successfully');
      assert.equal(deps(s).migrate?.condition, 'service_completed_successfully');
    }
    assert.equal(deps('temporal')['temporal-schema']?.condition, 'service_completed_successfully');
    assert.equal(deps('temporal-schema')['temporal-db']?.condition, 'service_healthy');
  });

  test('Temporal is the server image (≥ 1.28, Worker Versioning), its schema set up by temporal-sql-tool, no development image', () => {
    const image = interpolate(svc('temporal').image ?? '', {});
    const m = /^temporalio\/server:(\d+)\.(\d+)\.\d+$/.exec(image);
    assert.ok(m, `temporal runs ${image}`);
    assert.ok(Number(m[1]) > 1 || Number(m[2]) >= 28, `${image}: Worker Deployments need 1.28+`);
    for (const [name, s] of Object.entries(compose.services))
      assert.doesNotMatch(s.image ?? '', /auto-setup/, `${name} runs a development image`);
    const schema = svc('temporal-schema');
    assert.equal(interpolate(schema.image ?? '', {}), image.replace('/server:', '/admin-tools:'));
    const script = (schema.command ?? []).join('\n');
    assert.match(script, /temporal-sql-tool .*setup-schema/);
    assert.match(script, /update-schema --schema-name postgresql\/v12\/temporal\b/);
    assert.match(script, /update-schema --schema-name postgresql\/v12\/visibility\b/);
    const dynamic =
      svc('temporal')
        .volumes?.find((v) => v.endsWith(':ro'))
        ?.split(':')[0] ?? '';
    assert.ok(existsSync(dynamic), `the server's dynamic config ${dynamic} exists`);
  });

  test("Temporal's frontend and Web UI are not published beyond loopback; the UI only on request", () => {
    assert.deepEqual(svc('temporal').ports ?? [], [], 'the frontend stays on the compose network');
    assert.deepEqual(svc('temporal-ui').profiles, ['ui']);
    for (const [name, s] of Object.entries(compose.services))
      for (const p of s.ports ?? [])
        assert.equal(
          publishedPort(p).hostIp,
          '127.0.0.1',
          `${name} publishes ${p} beyond loopback`,
        );
  });

  test('worker and API point at the compose Temporal and pool DB, with passwords and API keys the operator must set', () => {
    for (const s of ['migrate', 'worker', 'api']) {
      const env = serviceEnv(svc(s), VARS);
      assert.equal(env.TEMPORAL_ADDRESS, 'temporal:7233');
      assert.equal(env.DATABASE_URL, 'postgres://pool:p1@pool-db:5432/warmpool');
      assert.throws(() => serviceEnv(svc(s), { ...VARS, POOL_DB_PASSWORD: undefined }));
    }
    assert.match(svc('api').environment?.API_KEYS ?? '', /^\$\{API_KEYS:\?[^}]+\}$/);
    assert.throws(() => serviceEnv(svc('api'), { ...VARS, API_KEYS: '' }), /API_KEYS/);
    assert.throws(() => serviceEnv(svc('temporal'), { ...VARS, TEMPORAL_DB_PASSWORD: '' }));
    // config/pool.ini (mounted) allows the local stack's example key; the compose shape does not.
    assert.equal(configOf('api').api.allowExampleKeys, false);
  });

  test('published ports reach the process: the API and the worker metrics bind 0.0.0.0 on the configured port', () => {
    const api = configOf('api');
    assert.equal(
      api.api.host,
      '0.0.0.0',
      'loopback inside the container is unreachable from outside',
    );
    const [published] = svc('api').ports ?? [];
    assert.equal(publishedPort(published ?? '').port, api.api.port);

    const metrics = hostPort(configOf('worker').temporal.workerMetricsAddress);
    assert.equal(metrics.host, '0.0.0.0');
    assert.deepEqual(svc('worker').expose, [String(metrics.port)]);
    // Outside containers the default stays loopback.
    assert.equal(loadConfig({ file: 'config/pool.ini', env: {} }).api.host, '127.0.0.1');
  });

  test("a stopped worker's activities finish: compose's grace period outlasts the worker's", () => {
    const worker = configOf('worker');
    const m = /^(\d+)s$/.exec(String(svc('worker').stop_grace_period ?? ''));
    assert.ok(m, 'the worker sets stop_grace_period in seconds (the default 10 s is too short)');
    // SIGKILL before the SDK's grace ends would cut the in-flight hand-offs it is waiting for.
    assert.ok(
      Number(m[1]) * 1000 >= worker.temporal.shutdownGraceMs + 5000,
      `stop_grace_period ${m[1]} s vs shutdown_grace_second ${worker.temporal.shutdownGraceMs / 1000}`,
    );
  });

  test('worker, API and migrations run the compiled output (`node dist/…`) of sources that exist', () => {
    for (const s of ['migrate', 'worker', 'api']) {
      const service = svc(s);
      assert.equal(service.build, '.');
      const [node, script, ...rest] = service.command ?? [];
      assert.equal(node, 'node', `${s} runs node, not tsx or npm`);
      assert.match(script ?? '', /^dist\/.+\.js$/);
      const source = (script ?? '').replace(/^dist\//, '').replace(/\.js$/, '.ts');
      assert.ok(existsSync(source), `${s} runs ${script}, compiled from missing ${source}`);
      assert.deepEqual(rest, []);
    }
  });

  test('worker and API have health checks, run by the image (node dist/scripts/healthcheck.js)', () => {
    assert.ok(existsSync('scripts/healthcheck.ts'));
    for (const s of ['worker', 'api']) {
      const check = svc(s).healthcheck;
      assert.ok(check, `${s} has no healthcheck`);
      assert.deepEqual(check.test, ['CMD', 'node', 'dist/scripts/healthcheck.js', s]);
      assert.ok(check.interval && check.retries, `${s}: interval and retries`);
    }
  });
});

describe('Dockerfile', () => {
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const final = stages.at(-1) ?? '';

  test('two stages: the build compiles (npm run build), the image ships production dependencies and dist/', () => {
    assert.equal(stages.length, 2);
    assert.match(stages[0] ?? '', /^RUN npm run build$/m);
    assert.match(final, /^RUN npm ci --omit=dev\b/m);
    assert.match(final, /^COPY --from=build \/app\/dist dist$/m);
    assert.doesNotMatch(final, /tsx|npm run (worker|api)/);
    assert.doesNotMatch(dockerfile, /^COPY \. \.?/m, 'no copy of the whole context (secrets)');
  });

  test('runs `node dist/…` as a non-root user', () => {
    const users = [...final.matchAll(/^USER (\S+)/gm)].map((m) => m[1]);
    assert.ok(users.length > 0, 'no USER in the final stage');
    assert.ok(!['root', '0'].includes(users.at(-1) ?? ''), `runs as ${users.at(-1)}`);
    const cmd = /^CMD (\[.*\])$/m.exec(final)?.[1];
    assert.deepEqual(JSON.parse(cmd ?? 'null'), ['node', 'dist/workers/main.js']);
  });

  test('the build copies every folder tsconfig.build.json compiles', () => {
    const build = JSON.parse(readFileSync('tsconfig.build.json', 'utf8')) as { include: string[] };
    for (const dir of [...build.include, 'migrations'])
      assert.match(stages[0] ?? '', new RegExp(`^COPY ${dir} ${dir}$`, 'm'), `${dir} not copied`);
  });
});

/** The packages a source file loads at run time (type-only imports are erased). */
function runtimeImports(file: string): string[] {
  const src = readFileSync(file, 'utf8');
  return [
    ...src.matchAll(
      /^import (?!type )[^;]*?from '([^.'][^']*)'|require(?:\.resolve)?\('([^.'][^']*)'\)/gm,
    ),
  ]
    .map((m) => (m[1] ?? m[2]) as string)
    .map((spec) =>
      spec
        .split('/')
        .slice(0, spec.startsWith('@') ? 2 : 1)
        .join('/'),
    )
    .filter((name) => !builtinModules.includes(name.replace(/^node:/, '')));
}

function sources(dir: string, skip: string[]): string[] {
  if (skip.includes(dir)) return [];
  if (statSync(dir).isDirectory())
    return readdirSync(dir).flatMap((f) => sources(join(dir, f), skip));
  return dir.endsWith('.ts') ? [dir] : [];
}

describe('the image’s code', () => {
  test('needs no dev dependency (the image has `npm ci --omit=dev`)', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const build = JSON.parse(readFileSync('tsconfig.build.json', 'utf8')) as {
      include: string[];
      exclude: string[];
    };
    const files = build.include.flatMap((dir) => sources(dir, build.exclude));
    assert.ok(files.includes('workers/main.ts') && files.includes('api/main.ts'));
    const missing = files.flatMap((f) =>
      runtimeImports(f)
        .filter((name) => !(name in pkg.dependencies))
        .map((name) => `${f}: ${name}`),
    );
    assert.deepEqual(missing, []);
  });
});

describe('package.json', () => {
  const scripts = (
    JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }
  ).scripts;
  test('build and the production starts', () => {
    assert.equal(scripts.build, 'tsx scripts/build.ts');
    assert.equal(scripts['start:worker'], 'node dist/workers/main.js');
    assert.equal(scripts['start:api'], 'node dist/api/main.js');
  });
});
