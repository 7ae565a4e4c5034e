/**
 * The worker's telemetry on the real stack: a real `npm run worker` process with
 * worker_metrics_address serves the SDK's temporal_* metrics and the pool's warmpool_worker_*
 * figures on one Prometheus endpoint, and they move when the worker works (a fill).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import axios from 'axios';
import { fillPoolWorkflow } from '../workflows';
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

let session: StackSession;
before(async () => (session = await openStack(5, { wipe: true })));
after(() => closeStack(session));

/** A loopback port nobody listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

describe('worker telemetry (real worker process)', () => {
  test('temporal_* and warmpool_worker_* on the worker’s Prometheus endpoint, moving with a fill', async () => {
    const port = await freePort();
    const { config, env } = testConfig({
      ...poolEnv({ more: 'Debian8 64bit', numsMore: 2 }),
      POOL__TEMPORAL__WORKER_METRICS_ADDRESS: `127.0.0.1:${port}`,
    });
    const worker = spawnWorker(env);
    try {
      const url = `http://127.0.0.1:${port}/metrics`;
      await waitFor(
        'the worker’s metrics endpoint',
        () =>
          axios.get<string>(url).then(
            (r) => r.status,
            () => 0,
          ),
        (s) => s === 200,
        90_000,
        500,
      );
      await session.client.workflow.execute(fillPoolWorkflow, {
        taskQueue: config.temporal.taskQueue,
        workflowId: unique('telemetry-fill'),
        args: [{}],
      });
      const text = await waitFor(
        'metrics of the fill',
        () => axios.get<string>(url).then((r) => r.data),
        (t) =>
          /warmpool_worker_cinder_calls/.test(t) && /temporal_activity_execution_latency/.test(t),
        30_000,
        500,
      );
      // SDK: task latencies and slots of this task queue.
      assert.match(
        text,
        new RegExp(
          `temporal_workflow_task_execution_latency.*task_queue="${config.temporal.taskQueue}"`,
        ),
      );
      assert.match(text, /temporal_worker_task_slots_available/);
      assert.match(text, /temporal_sticky_cache_size/);
      // Pool: the fill's creates counted by route and status, ids folded into the route.
      const creates = Number(
        /warmpool_worker_cinder_calls(?:_total)?\{[^}]*method="POST"[^}]*route="\/volumes"[^}]*status="202"[^}]*\} (\d+)/.exec(
          text,
        )?.[1] ?? 0,
      );
      assert.ok(creates >= 2, `${creates} volume creates counted:\n${text.slice(0, 2000)}`);
      assert.doesNotMatch(text, /route="[^"]*[0-9a-f]{8}-[0-9a-f]{4}-/, 'no volume id in a route');
      assert.match(text, /warmpool_worker_cinder_call_latency_bucket/);
    } finally {
      worker.kill('SIGTERM');
      await exited(worker);
    }
  });
});
