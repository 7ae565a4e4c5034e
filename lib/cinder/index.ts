import type { AppConfig } from '../config/load';
import { KeystonePasswordAuth, NoAuth, type Authenticator } from './auth';
import { CinderClient, type CinderClientOptions } from './client';

export * from './auth';
export * from './client';
export * from './errors';
export * from './token-cache';
export * from './types';

/**
 * The admin identity of the configuration: the pool's own project. In Keystone mode it holds the
 * token cache every tenant identity derived from it shares: build it once per process.
 */
export function authFromConfig(config: AppConfig): Authenticator {
  const a = config.auth;
  if (a.strategy === 'noauth') {
    // Validated by loadConfig: noauth has cinder_url and auth_project_id.
    return new NoAuth(a.cinderUrl as string, a.user, a.projectId as string);
  }
  return new KeystonePasswordAuth({
    authUrl: a.authUrl as string,
    username: a.user,
    password: a.password,
    userDomain: a.userDomain,
    project: a.projectId ? { id: a.projectId } : { name: a.project, domain: a.projectDomain },
    region: a.region,
    cinderUrl: a.cinderUrl,
    timeoutMs: a.requestTimeoutMs,
  });
}

export function cinderFromConfig(config: AppConfig, opts: CinderClientOptions = {}): CinderClient {
  return new CinderClient(authFromConfig(config), {
    timeoutMs: config.auth.requestTimeoutMs,
    maxConcurrentCalls: config.auth.maxConcurrentCalls,
    ...opts,
  });
}
