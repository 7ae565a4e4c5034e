/**
 * `node dist/scripts/healthcheck.js api|worker`: the container health checks
 * (docker-compose.yml). Reads the process's own configuration (same environment, same INI), so
 * the check asks where the process listens: the API's GET /healthz, the worker's Prometheus
 * endpoint (served by the SDK's runtime while the worker lives). Exit 0: healthy; 1: not.
 */
import { loadConfig } from '../lib/config/load';

/** A wildcard bind is reached on loopback from inside the container. */
const reachable = (host: string) =>
  ['0.0.0.0', '::', '[::]', ''].includes(host) ? '127.0.0.1' : host;

function target(which: string | undefined): string {
  const config = loadConfig();
  if (which === 'api') return `http://${reachable(config.api.host)}:${config.api.port}/healthz`;
  if (which === 'worker') {
    const at = config.temporal.workerMetricsAddress;
    if (!at) throw new Error('[temporal] worker_metrics_address is empty: nothing to check');
    const [, host = '', port] = /^(.*):(\d+)$/.exec(at) ?? [];
    return `http://${reachable(host)}:${port}/metrics`;
  }
  throw new Error(`usage: healthcheck api|worker (got ${JSON.stringify(which ?? null)})`);
}

async function main(): Promise<void> {
  const url = target(process.argv[2]);
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
}

main().catch((err) => {
  console.error(`unhealthy: ${(err as Error).message}`);
  process.exit(1);
});
