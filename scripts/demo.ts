/**
 * The main job in one run (`npm run demo`, after scripts/demo.sh started the stack, the worker and
 * the API): fill a small pool, make claims that hit it, claims that fall back, one duplicate and
 * one data disk, all through the HTTP API, and print outcomes, timings, the pool's levels before
 * and after, and where each claim's history is in the Temporal Web UI.
 */
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { loadConfig } from '../lib/config/load';
import { connectClient } from '../lib/temporal/connect';
import { findTriggeredRun } from '../lib/temporal/schedules';
import { scheduleIds } from '../contracts/fill';
import { historyUrl } from '../lib/temporal/workflows';
import { claimWorkflowId } from '../contracts/claim';
import { TENANT_PROJECTS } from './stack/cloud';
import type { PoolLevel } from '../lib/pool-state/levels';

const config = loadConfig();
const base = `http://${config.api.host}:${config.api.port}`;
const headers = {
  authorization: `Bearer ${config.api.apiKeys[0]}`,
  'content-type': 'application/json',
};

async function api<T>(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as T };
}

function printLevels(title: string, levels: PoolLevel[]): void {
  console.log(`\n${title}`);
  console.log('  type  os                 target  available  creating  stale');
  for (const l of levels) {
    console.log(
      `  ${l.volumeType.padEnd(5)} ${l.os.padEnd(18)} ${String(l.target).padStart(6)}  ${String(l.available).padStart(9)}  ${String(l.creating).padStart(8)}  ${String(l.stale).padStart(5)}`,
    );
  }
}

async function main(): Promise<void> {
  const client = await connectClient(config);
  const run = Date.now().toString(36);
  printLevels(
    'pool before the fill:',
    (await api<{ levels: PoolLevel[] }>('GET', '/v1/pool')).body.levels,
  );

  console.log('\nfilling the pool (fill-now on the fill schedule)...');
  const schedule = client.schedule.getHandle(scheduleIds(config.temporal.schedulePrefix).fill);
  const since = new Date();
  await schedule.trigger(ScheduleOverlapPolicy.SKIP);
  const fillRun = await findTriggeredRun(schedule, since, 60_000);
  if (!fillRun) throw new Error('the fill schedule started no fill');
  const r = await client.workflow.getHandle(fillRun.workflowId, fillRun.runId).result();
  console.log(`  fill ${fillRun.workflowId}: ${r.available}/${r.planned} created`);
  printLevels(
    'pool after the fill:',
    (await api<{ levels: PoolLevel[] }>('GET', '/v1/pool')).body.levels,
  );

  const stock = config.pool.targets.find((t) => t.os === 'Debian8 64bit')?.target ?? 0;
  const claims: { label: string; body: Record<string, unknown> }[] = [];
  for (let i = 0; i < stock + 2; i++) {
    claims.push({
      label: i < stock ? 'system disk (stock)' : 'system disk (pool empty)',
      body: {
        requestId: `demo-${run}-${i}`,
        projectId: i % 2 ? TENANT_PROJECTS.beta : TENANT_PROJECTS.alpha,
        name: `demo-vm-${run}-${i}-sys`,
        os: 'Debian8 64bit',
        volumeType: 'sas',
      },
    });
  }
  claims.push({ label: 'duplicate of the first', body: { ...claims[0]!.body } });
  claims.push({
    label: 'data disk',
    body: {
      requestId: `demo-${run}-data`,
      projectId: TENANT_PROJECTS.alpha,
      name: `demo-vm-${run}-data`,
      volumeType: 'ssd',
      sizeGb: 2,
      systemDisk: false,
    },
  });

  // Refills after each pool hit would restock at once on this fast fake backend: pause the fill
  // schedule during the claims so that the claims beyond the stock show the fallback.
  await schedule.pause('demo: show the fallback');
  console.log(
    '\nclaims through POST /v1/claims (one after another; fill schedule paused meanwhile):',
  );
  console.log(
    '  request                  kind                      status  outcome   ms     volume',
  );
  for (const c of claims) {
    const t = performance.now();
    const res = await api<{ outcome?: string; volumeId?: string; error?: string }>(
      'POST',
      '/v1/claims',
      c.body,
    );
    const ms = (performance.now() - t).toFixed(0);
    console.log(
      `  ${String(c.body.requestId).padEnd(24)} ${c.label.padEnd(25)} ${res.status}     ${(res.body.outcome ?? res.body.error ?? '').padEnd(9)} ${ms.padStart(5)}  ${res.body.volumeId ?? ''}`,
    );
  }
  printLevels(
    'pool after the claims:',
    (await api<{ levels: PoolLevel[] }>('GET', '/v1/pool')).body.levels,
  );
  await schedule.unpause('demo over');
  await schedule.trigger(ScheduleOverlapPolicy.SKIP);
  await new Promise((r) => setTimeout(r, 8000));
  printLevels(
    'pool after the refill:',
    (await api<{ levels: PoolLevel[] }>('GET', '/v1/pool')).body.levels,
  );

  const ui = historyUrl(config.temporal);
  console.log(
    `\nWeb UI, every claim's history: ${ui}?query=${encodeURIComponent("WorkflowType='claimVolumeWorkflow'")}`,
  );
  console.log(
    `  e.g. ${historyUrl(config.temporal, claimWorkflowId(String(claims[0]!.body.requestId)))}`,
  );
  console.log(
    `  search by outcome: PoolOutcome='pool' | 'created' | 'existing'; by PoolProject, PoolOs, PoolVolumeType`,
  );
  await client.connection.close();
}

main().catch((err) => {
  console.error(`demo failed: ${(err as Error).message}`);
  process.exit(1);
});
