/** Temporal connections from the configuration; a dead server fails fast with a clear message. */
import { Client, Connection } from '@temporalio/client';
import type { AppConfig } from '../config/load';
import { tracingClientInterceptors } from './tracing';

export async function connectClient(config: AppConfig, connectTimeoutMs = 10_000): Promise<Client> {
  const connection = await Connection.connect({
    address: config.temporal.address,
    connectTimeout: connectTimeoutMs,
  }).catch((err: Error) => {
    throw new Error(`cannot reach Temporal at ${config.temporal.address}: ${err.message}`);
  });
  return new Client({
    connection,
    namespace: config.temporal.namespace,
    interceptors: tracingClientInterceptors(config),
  });
}
