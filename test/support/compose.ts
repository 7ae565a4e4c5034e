/**
 * docker-compose.yml as compose reads it, for tests that cannot run Docker: the file parsed
 * (with `<<` merges), a service's environment with `${VAR}`, `${VAR:-default}`,
 * `${VAR:?message}` and `$$` resolved as compose resolves them.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export interface Healthcheck {
  test: string[];
  interval?: string;
  timeout?: string;
  start_period?: string;
  retries?: number;
}

export interface Service {
  image?: string;
  build?: string | { context: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  expose?: string[];
  profiles?: string[];
  volumes?: string[];
  healthcheck?: Healthcheck;
  depends_on?: string[] | Record<string, { condition: string }>;
  stop_grace_period?: string;
}

export interface ComposeFile {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

export function readCompose(path = 'docker-compose.yml'): ComposeFile {
  return parse(readFileSync(path, 'utf8'), { merge: true }) as ComposeFile;
}

/** Compose's variable substitution; a `${VAR:?message}` whose VAR is unset throws the message. */
export function interpolate(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(
    /\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)/g,
    (whole, braced?: string, op?: string, arg?: string, bare?: string) => {
      if (whole === '$$') return '$';
      const name = (braced ?? bare) as string;
      const value = vars[name];
      const unset = op?.startsWith(':') ? !value : value === undefined;
      if (op?.endsWith('-')) return unset ? (arg ?? '') : (value as string);
      if (op?.endsWith('?')) {
        if (unset) throw new Error(`${name}: ${arg}`);
        return value as string;
      }
      return value ?? '';
    },
  );
}

/** A service's environment as its container gets it, given the variables compose sees. */
export function serviceEnv(
  service: Service,
  vars: Record<string, string | undefined>,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), vars)]),
  );
}

/** A published port `[host_ip:]host_port:container_port`: its parts. */
export function publishedPort(spec: string): { hostIp?: string; hostPort: number; port: number } {
  const parts = spec.split(':');
  const port = Number(parts.pop());
  const hostPort = Number(parts.pop());
  return { hostIp: parts.length ? parts.join(':') : undefined, hostPort, port };
}
