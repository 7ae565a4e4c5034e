/**
 * `npm run worker`: the pool's Temporal worker. Clients (Cinder, PostgreSQL) are made once here
 * and handed to every activity. SIGINT/SIGTERM drain in-flight activities before exit.
 * Versioned (lib/temporal/versioning.ts): it polls as one build of the Worker Deployment, and the
 * workflows it starts stay on that build (docs/upgrading.md).
 */
import { resolve } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { loadConfig, describeConfig } from '../lib/config/load';
import { cinderFromConfig } from '../lib/cinder';
import { createDb } from '../lib/pool-state/db';
import { createLogger, maskUrlSecrets } from '../lib/log';
import { createActivities } from '../activities';
import { connectClient, connectionOptions } from '../lib/temporal/connect';
import { workflowCode } from '../lib/temporal/workflow-bundle';
import { ensureSchedules } from '../lib/temporal/schedules';
import { ensureSearchAttributes } from '../lib/temporal/search-attributes';
import { cinderCallMetrics, installWorkerTelemetry } from '../lib/temporal/telemetry';
import { startTracing } from '../lib/temporal/tracing';
import { deploymentOptions, setCurrentVersion } from '../lib/temporal/versioning';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('worker');
  log.info({ config: describeConfig(config) }, 'starting worker');
  const versioning = deploymentOptions(config); // no build id: refused before connecting
  // Before any connection: the Runtime's metrics endpoint can only be set up first.
  const metricsAt = config.temporal.workerMetricsAddress;
  const countCall = metricsAt ? cinderCallMetrics(installWorkerTelemetry(metricsAt)) : undefined;
  if (metricsAt) log.info(`worker metrics on http://${metricsAt}/metrics`);
  const tracing = config.temporal.otlpEndpoint
    ? startTracing(config.temporal.otlpEndpoint, 'warmpool-worker')
    : undefined;
  if (tracing) log.info(`traces to ${maskUrlSecrets(config.temporal.otlpEndpoint ?? '')}`);
  const db = createDb(config.databaseUrl);
  const cinder = cinderFromConfig(config, {
    log: (e) => {
      log.debug(e, 'cinder call');
      countCall?.(e);
    },
  });
  const connection = await NativeConnection.connect(connectionOptions(config));
  const client = await connectClient(config); // schedules, and the refill a claim triggers
  // Before polling: a claim upserting an unknown search attribute would fail on every attempt.
  await ensureSearchAttributes(client, config.temporal.namespace).then(
    (added) => added.length && log.info(`registered search attributes ${added.join(', ')}`),
    (err: Error) =>
      log.warn(`could not check/register search attributes (claims need them): ${err.message}`),
  );
  // dist/ (npm run build): the bundle built with the code; from source: bundled now.
  const workflows = workflowCode(
    resolve(__dirname, '..'),
    require.resolve('../workflows'),
    !!tracing,
  );
  log.info(`workflows: ${workflows.workflowBundle?.codePath ?? 'bundled from the sources'}`);
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    ...workflows,
    activities: createActivities({ config, cinder, db, log, temporal: client }),
    // SIGTERM: running activities (a hand-off's Cinder calls, a creation's wait) finish instead of
    // being cancelled and retried elsewhere; the SDK's own signal handling starts the shutdown.
    shutdownGraceTime: config.temporal.shutdownGraceMs,
    // A pool hit's hand-off is a local activity: its workflow task (and its slot) stays open for
    // the hand-off's Cinder calls. More slots than the default 40, so that a burst of hand-offs
    // does not hold back every other workflow task (a fallback's create, a fill's next step).
    maxConcurrentWorkflowTaskExecutions: 100,
    // 0 in `npm run test:nocache`: every activation replays the workflow's history.
    maxCachedWorkflows: config.temporal.maxCachedWorkflows,
    workerDeploymentOptions: versioning,
    plugins: tracing ? [tracing.workerPlugin()] : [],
  });
  if (config.temporal.manageSchedules) {
    for (const line of await ensureSchedules(client, config)) log.info(`schedule ${line}`);
  }
  const version = `${versioning.version.deploymentName}.${versioning.version.buildId}`;
  log.info(
    { taskQueue: config.temporal.taskQueue, address: config.temporal.address, version },
    'worker running',
  );
  const stopped = new AbortController();
  const running = worker.run().finally(() => stopped.abort());
  let failed: Error | undefined;
  if (config.temporal.setCurrentOnStart) {
    // Polling registers the version; until it is current, no task comes to this worker.
    void setCurrentVersion(connection.workflowService, config, { signal: stopped.signal }).then(
      (before) =>
        log.info(
          before === versioning.version.buildId
            ? `${version} is the current version already`
            : `${version} is the current version now (was ${before ?? 'none'})`,
        ),
      (err: Error) => {
        // Stopping already (a signal) before it was current: nothing to report.
        if (stopped.signal.aborted || worker.getState() !== 'RUNNING') return;
        failed = err;
        worker.shutdown();
      },
    );
  } else {
    log.info(
      `${version} gets tasks once it is current (docs/upgrading.md: temporal worker deployment set-current-version)`,
    );
  }
  await running;
  await client.connection.close();
  await connection.close();
  await db.end();
  await tracing?.shutdown();
  if (failed) throw failed;
  log.info('worker stopped');
}

main().catch((err) => {
  console.error(`worker failed: ${(err as Error).message}`);
  process.exit(1);
});
