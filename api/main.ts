/** `npm run api`: serves the HTTP API until SIGINT/SIGTERM, then closes gracefully. */
import { loadConfig } from '../lib/config/load';
import { createDb } from '../lib/pool-state/db';
import { Client, Connection } from '@temporalio/client';
import { buildApi } from './server';
import { startTracing, tracingClientInterceptors } from '../lib/temporal/tracing';
import { connectionOptions } from '../lib/temporal/connect';
import { checkApiKeys } from '../lib/config/example-keys';

async function main(): Promise<void> {
  const config = loadConfig();
  checkApiKeys(config.api);
  const tracing = config.temporal.otlpEndpoint
    ? startTracing(config.temporal.otlpEndpoint, 'warmpool-api')
    : undefined;
  const db = createDb(config.databaseUrl);
  // Lazy: the API starts (and answers 503) while Temporal is down, and reconnects when it is back.
  const connection = Connection.lazy(connectionOptions(config));
  const temporal = new Client({
    connection,
    namespace: config.temporal.namespace,
    interceptors: tracingClientInterceptors(config),
  });
  const app = buildApi({ config, db, temporal }, { logger: true });
  const stop = async () => {
    await app.close(); // stops accepting, finishes in-flight requests
    await temporal.connection.close();
    await db.end();
    await tracing?.shutdown();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  await app.listen({ host: config.api.host, port: config.api.port });
}

main().catch((err) => {
  console.error(`api failed: ${(err as Error).message}`);
  process.exit(1);
});
