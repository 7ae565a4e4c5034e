/**
 * The worker's own telemetry: the SDK's `temporal_*` metrics (task and activity latencies,
 * sticky cache, slots, polls) and the pool's worker-side figures (`warmpool_worker_*`: Cinder
 * calls by method, route and status, with their latency) on one Prometheus endpoint. The
 * Runtime must be installed before any connection exists, so this runs first in the worker.
 */
import { Runtime } from '@temporalio/worker';
import type { MetricMeter } from '@temporalio/common';
import type { CinderClientOptions } from '../cinder';

/** Installs the Runtime with a Prometheus endpoint at `address`; returns its meter. */
export function installWorkerTelemetry(address: string): MetricMeter {
  return Runtime.install({
    telemetryOptions: { metrics: { prometheus: { bindAddress: address } } },
  }).metricMeter;
}

/** Ids in a Cinder path become `:id`, so a route is one series, not one per volume. */
export const cinderRoute = (path: string) =>
  path
    .split('?')[0]!
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, ':id')
    .replace(/\/[0-9a-f]{32}(?=\/|$)/gi, '/:project');

/** A Cinder client's call hook that counts and times every call on the meter. */
export function cinderCallMetrics(meter: MetricMeter): NonNullable<CinderClientOptions['log']> {
  const calls = meter.createCounter(
    'warmpool_worker_cinder_calls',
    undefined,
    'Cinder and Keystone calls of this worker by method, route and HTTP status (none: no answer).',
  );
  const latency = meter.createHistogram(
    'warmpool_worker_cinder_call_latency',
    'int',
    'ms',
    'Latency of this worker’s Cinder and Keystone calls.',
  );
  return (e) => {
    const tags = {
      method: e.method,
      route: cinderRoute(e.path),
      status: String(e.status ?? 'none'),
    };
    calls.add(1, tags);
    latency.record(e.ms, { method: e.method, route: tags.route });
  };
}
