/**
 * The Prometheus alert rules (deploy/prometheus) against the real stack: `promtool check rules`
 * and the rules' own `promtool test rules`; every metric they read is exported by a real API or
 * worker; and, on series scraped from a real API's /metrics, a stocked pool fires nothing while
 * the same pool wiped, with its fill schedule paused, fires WarmPoolEmpty.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import axios from 'axios';
import { parse as parseYaml } from 'yaml';
import type { AppConfig } from '../lib/config/load';
import { buildApi } from '../api/server';
import { ensureSchedules } from '../lib/temporal/schedules';
import { checkPoolStateWorkflow, fillPoolWorkflow } from '../workflows';
import { scheduleIds } from '../contracts/fill';
import { unique, waitFor } from './support/env';
import {
  closeStack,
  exited,
  openStack,
  poolEnv,
  spawnWorker,
  testConfig,
  wipePool,
  type StackSession,
} from './support/pool';

const RULES_DIR = resolve(__dirname, '../deploy/prometheus');
const RULES = join(RULES_DIR, 'warmpool-alerts.yml');

interface Rule {
  alert: string;
  expr: string;
  labels?: Record<string, string>;
}
const rules = (
  parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
const skip = hasPromtool
  ? false
  : 'promtool is not installed (Debian package `prometheus`; `npm run stack:up` installs it)';

function promtool(...args: string[]): { ok: boolean; output: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', cwd: RULES_DIR });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

/** A loopback port nobody listens on now. */
function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

/** GET /metrics of a real API server (listening on a port) built on this configuration. */
async function scrapeApi(config: AppConfig, session: StackSession): Promise<string> {
  const app = buildApi({ config, db: session.db, temporal: session.client });
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    return (await axios.get<string>(`http://127.0.0.1:${port}/metrics`)).data;
  } finally {
    await app.close();
  }
}

/** Metric families an exposition declares (`# TYPE name type`). */
function families(exposition: string): Map<string, string> {
  return new Map(
    [...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]),
  );
}

/**
 * The pool's samples of one scrape as promtool input series, the value held for `minutes`:
 * an exposition line is `name{labels} value`, and `name{labels}` is already a series selector.
 */
function inputSeries(exposition: string, minutes: number) {
  return exposition
    .split('\n')
    .filter((l) => l.startsWith('warmpool_') && !l.startsWith('warmpool_api_'))
    .map((line) => {
      const at = line.lastIndexOf(' ');
      const value = line.slice(at + 1);
      assert.ok(!Number.isNaN(Number(value)), `not a sample line: ${line}`);
      return { series: line.slice(0, at), values: `${value}+0x${minutes}` };
    });
}

/** Runs `promtool test rules` on the rules with these series and PromQL expectations. */
function promtoolTest(
  series: ReturnType<typeof inputSeries>,
  expectations: { expr: string; eval_time: string; exp_samples: object[] }[],
): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-alerts-'));
  const file = join(dir, 'scraped.test.yml');
  // JSON is YAML: promtool reads it as is.
  writeFileSync(
    file,
    JSON.stringify({
      rule_files: [RULES],
      evaluation_interval: '1m',
      tests: [{ interval: '1m', input_series: series, promql_expr_test: expectations }],
    }),
  );
  return promtool('test', 'rules', file);
}

/** The ALERTS series of one alert of the rules for a pool. */
function alertSeries(name: string, state: 'pending' | 'firing', pool: Record<string, string>) {
  const rule = rules.find((r) => r.alert === name);
  assert.ok(rule, `no rule ${name}`);
  const labels = { alertname: name, alertstate: state, ...rule.labels, ...pool };
  return `ALERTS{${Object.entries(labels)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(',')}}`;
}

let session: StackSession;
before(async () => {
  if (!skip) session = await openStack(5, { wipe: true });
});
after(async () => {
  if (!skip) await closeStack(session);
});

describe('alert rules (promtool, real API and worker metrics)', { skip }, () => {
  test('promtool check rules passes; the rules’ own promtool tests pass', () => {
    const check = promtool('check', 'rules', RULES);
    assert.ok(check.ok, check.output);
    assert.match(check.output, new RegExp(`SUCCESS: ${rules.length} rules found`));
    const own = promtool('test', 'rules', 'warmpool-alerts.test.yml');
    assert.ok(own.ok, own.output);
  });

  test('on a real scrape: a stocked pool fires nothing; wiped with the fill paused, it is empty', async () => {
    const port = await freePort();
    const { config, env } = testConfig({
      ...poolEnv({ more: 'Debian8 64bit', numsMore: 2 }),
      POOL__TEMPORAL__WORKER_METRICS_ADDRESS: `127.0.0.1:${port}`,
    });
    // The rules fold by (volume_type, os, zone); a zone-less pool's zone="" is no label at all.
    const zone = config.pool.zones[0] ?? '';
    const pool = { volume_type: 'sas', os: 'Debian8 64bit', ...(zone ? { zone } : {}) };
    const ids = scheduleIds(config.temporal.schedulePrefix);
    const worker = spawnWorker(env);
    try {
      const workerUrl = `http://127.0.0.1:${port}/metrics`;
      await waitFor(
        'the worker’s metrics endpoint',
        () =>
          axios.get(workerUrl).then(
            (r) => r.status,
            () => 0,
          ),
        (s) => s === 200,
        90_000,
        500,
      );
      await ensureSchedules(session.client, config);
      const fill = await session.client.workflow.execute(fillPoolWorkflow, {
        taskQueue: config.temporal.taskQueue,
        workflowId: unique('alerts-fill'),
        args: [{ reason: 'test' }],
      });
      assert.equal(fill.available, 2);
      // A finished state check too: WarmPoolCheckNotRunning reads its time.
      await session.client.workflow.execute(checkPoolStateWorkflow, {
        taskQueue: config.temporal.taskQueue,
        workflowId: unique('alerts-check'),
      });
      const workerText = await waitFor(
        'the fill’s Cinder calls in the worker’s metrics',
        () => axios.get<string>(workerUrl).then((r) => r.data),
        (t) => /^warmpool_worker_cinder_calls\{/m.test(t),
        30_000,
        500,
      );
      const stocked = await scrapeApi(config, session);
      assert.match(stocked, /warmpool_pool_volumes\{[^}]*state="available"\} 2/);

      // Every metric the rules read is one a real API or worker exports.
      const exported = new Map([...families(stocked), ...families(workerText)]);
      for (const rule of rules) {
        for (const [name] of rule.expr.matchAll(/\bwarmpool_\w+/g)) {
          const base = name.replace(/_(bucket|sum|count)$/, '');
          assert.ok(
            exported.has(name) || exported.get(base) === 'histogram',
            `${rule.alert} reads ${name}, which neither the API nor the worker exports`,
          );
        }
      }

      const quiet = promtoolTest(
        [...inputSeries(stocked, 120), ...inputSeries(workerText, 120)],
        [{ expr: 'ALERTS', eval_time: '90m', exp_samples: [] }],
      );
      assert.ok(quiet.ok, `a stocked pool raised alerts:\n${quiet.output}`);

      await session.client.schedule.getHandle(ids.fill).pause('test: the pool stays empty');
      await wipePool(session.db);
      const empty = await scrapeApi(config, session);
      assert.match(empty, /warmpool_pool_volumes\{[^}]*state="available"\} 0/);
      const described = await session.client.schedule.getHandle(ids.fill).describe();
      assert.equal(described.state.paused, true);
      assert.equal(described.info.runningActions.length, 0, 'a scheduled fill is refilling');

      const alerting = promtoolTest(inputSeries(empty, 60), [
        {
          expr: 'ALERTS{alertname="WarmPoolEmpty"}',
          eval_time: '4m',
          exp_samples: [{ labels: alertSeries('WarmPoolEmpty', 'pending', pool), value: 1 }],
        },
        {
          expr: 'ALERTS{alertname="WarmPoolEmpty"}',
          eval_time: '6m',
          exp_samples: [{ labels: alertSeries('WarmPoolEmpty', 'firing', pool), value: 1 }],
        },
        {
          expr: 'ALERTS{alertname="WarmPoolBelowFloor",alertstate="firing"}',
          eval_time: '31m',
          exp_samples: [{ labels: alertSeries('WarmPoolBelowFloor', 'firing', pool), value: 1 }],
        },
      ]);
      assert.ok(alerting.ok, `the empty pool's alerts:\n${alerting.output}`);
    } finally {
      worker.kill('SIGTERM');
      await exited(worker);
      for (const id of Object.values(ids))
        await session.client.schedule
          .getHandle(id)
          .delete()
          .catch(() => undefined);
    }
  });
});
