/** docker-compose.yml cannot be run here (no Docker engine), so its shape is checked by a parser. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: string[] | Record<string, { condition: string }>;
}

const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const scripts = (
  JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }
).scripts;

describe('docker-compose.yml', () => {
  test('has the production shape: Temporal + its DB + Web UI, our DB, worker and API', () => {
    for (const s of ['temporal', 'temporal-db', 'temporal-ui', 'pool-db', 'worker', 'api']) {
      assert.ok(compose.services[s], `missing service ${s}`);
    }
  });

  test('every dependency names a defined service, and our processes wait for Temporal and migrations', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      const deps = Array.isArray(svc.depends_on)
        ? svc.depends_on
        : Object.keys(svc.depends_on ?? {});
      for (const d of deps) assert.ok(compose.services[d], `${name} depends on unknown ${d}`);
    }
    for (const s of ['worker', 'api']) {
      const deps = compose.services[s]?.depends_on as Record<string, { condition: string }>;
      assert.equal(deps.temporal?.condition, 'service_healthy');
      assert.equal(deps.migrate?.condition, 'service_completed_successfully');
    }
  });

  test('our services run npm scripts that exist, built from a Dockerfile that exists', () => {
    assert.ok(existsSync('Dockerfile'));
    for (const [name, svc] of Object.entries(compose.services)) {
      if (!svc.build) continue;
      const [npm, run, script] = svc.command ?? [];
      assert.equal(`${npm} ${run}`, 'npm run', `${name} should run an npm script`);
      assert.ok(script && scripts[script], `${name} runs missing script ${script}`);
    }
  });

  test('worker and API point at the compose Temporal and pool DB; published ports bind to loopback', () => {
    for (const s of ['worker', 'api']) {
      const env = compose.services[s]?.environment ?? {};
      assert.equal(env.TEMPORAL_ADDRESS, 'temporal:7233');
      assert.match(env.DATABASE_URL ?? '', /@pool-db:5432\//);
    }
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const p of svc.ports ?? [])
        assert.match(p, /^127\.0\.0\.1:/, `${name} publishes ${p} beyond loopback`);
    }
  });
});
