/**
 * Temporal connections from the configuration, all three alike (the worker's NativeConnection,
 * its client, the API's lazy client): one address, one TLS setting. A dead server fails fast
 * with a clear message.
 */
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { TLSConfig } from '@temporalio/client';
import { ConfigError, type AppConfig } from '../config/load';
import { tracingClientInterceptors } from './tracing';

/** What Connection and NativeConnection both take: the frontend's address and TLS, if any. */
export function connectionOptions(config: AppConfig): { address: string; tls?: TLSConfig } {
  return { address: config.temporal.address, tls: tlsOptions(config.temporal.tls) };
}

/** The SDK's TLS options: the files read now, so a missing one stops the start, named by key. */
export function tlsOptions(tls: AppConfig['temporal']['tls']): TLSConfig | undefined {
  if (!tls) return undefined;
  const read = (key: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`[temporal] ${key}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  return {
    serverNameOverride: tls.serverName,
    serverRootCACertificate: tls.caFile ? read('tls_ca_file', tls.caFile) : undefined,
    clientCertPair:
      tls.certFile && tls.keyFile
        ? { crt: read('tls_cert_file', tls.certFile), key: read('tls_key_file', tls.keyFile) }
        : undefined,
  };
}

export async function connectClient(config: AppConfig, connectTimeoutMs = 10_000): Promise<Client> {
  const connection = await Connection.connect({
    ...connectionOptions(config),
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
