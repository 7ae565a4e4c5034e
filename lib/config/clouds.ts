/**
 * OpenStack's client conventions: with OS_CLOUD set, the named cloud of a clouds.yaml (the first
 * found of $OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml,
 * /etc/openstack/clouds.yaml) supplies the [auth_args] keys it has; each value remembers its file
 * and path, so a config error names it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { parse, YAMLError } from 'yaml';
import type { ConfigKey } from './schema';

export type CloudValues = Map<ConfigKey, { value: string; from: string }>;

/** clouds.yaml path → config key. */
const AUTH_KEYS: [string, ConfigKey][] = [
  ['auth.auth_url', 'authUrl'],
  ['auth.username', 'authUser'],
  ['auth.password', 'authPassword'],
  ['auth.project_name', 'authProject'],
  ['auth.project_id', 'authProjectId'],
  ['auth.user_domain_name', 'userDomain'],
  ['auth.project_domain_name', 'projectDomain'],
  ['region_name', 'region'],
];

export class CloudsYamlError extends Error {}

/**
 * Where a YAML error is (line, column, the parser's code), never what is there: yaml's own
 * message quotes the line, and in clouds.yaml that line may be `password: …`.
 */
function whereInFile(err: unknown): string {
  if (!(err instanceof YAMLError)) return '';
  const at = err.linePos?.[0];
  return `${at ? ` at line ${at.line}, column ${at.col}` : ''} (${err.code})`;
}

export function cloudsYamlFiles(env: NodeJS.ProcessEnv): string[] {
  return [
    env.OS_CLIENT_CONFIG_FILE,
    resolve('clouds.yaml'),
    resolve(env.HOME ?? homedir(), '.config/openstack/clouds.yaml'),
    '/etc/openstack/clouds.yaml',
  ].filter((f): f is string => !!f);
}

/** The values of cloud $OS_CLOUD, or none when OS_CLOUD is unset. */
export function cloudValues(env: NodeJS.ProcessEnv): CloudValues {
  const values: CloudValues = new Map();
  const name = env.OS_CLOUD;
  if (!name) return values;
  const files = cloudsYamlFiles(env);
  const file = files.find((f) => existsSync(f));
  if (!file)
    throw new CloudsYamlError(
      `OS_CLOUD=${name} but no clouds.yaml found (looked at ${files.join(', ')})`,
    );
  let doc: { clouds?: Record<string, Record<string, unknown>> };
  try {
    // Warnings would print the offending text: this file holds a password.
    doc = parse(readFileSync(file, 'utf8'), { logLevel: 'error' }) ?? {};
  } catch (err) {
    throw new CloudsYamlError(`${file}: not valid YAML${whereInFile(err)}`);
  }
  const cloud = doc.clouds?.[name];
  if (!cloud)
    throw new CloudsYamlError(
      `${file}: no cloud ${JSON.stringify(name)} (OS_CLOUD); it has: ${Object.keys(doc.clouds ?? {}).join(', ') || 'none'}`,
    );
  const authType = cloud.auth_type ?? 'password';
  if (authType !== 'password' && authType !== 'v3password')
    throw new CloudsYamlError(
      `${file}: clouds.${name}.auth_type = ${String(authType)}: only password auth is supported`,
    );
  // The pool names domains (Keystone's `Default` has the id `default`): an id alone would be
  // taken for a name and refused by Keystone, so it is refused here, where the key is known.
  const auth = (cloud.auth ?? {}) as Record<string, unknown>;
  for (const who of ['user', 'project'])
    if (auth[`${who}_domain_id`] !== undefined && auth[`${who}_domain_name`] === undefined)
      throw new CloudsYamlError(
        `${file}: clouds.${name}.auth.${who}_domain_id is not supported; give ${who}_domain_name`,
      );
  values.set('authStrategy', { value: 'keystone', from: `${file} clouds.${name}` });
  for (const [path, key] of AUTH_KEYS) {
    const v = path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], cloud);
    if (v !== undefined && v !== null)
      values.set(key, { value: String(v), from: `${file} clouds.${name}.${path}` });
  }
  return values;
}
