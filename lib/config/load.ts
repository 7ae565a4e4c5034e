/**
 * Reads the configuration once: the seed's INI file, then environment overrides
 * (POOL__<SECTION>__<KEY>, or the well-known variables such as DATABASE_URL), validated and typed.
 * Any bad key fails fast with a message naming the section, key and offending value.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseIni } from 'ini';
import { KEYS, deploymentName, type ConfigKey, type KeySpec } from './schema';
import { parseSnapshotNameRule, type SnapshotNameRule } from './snapshot-name-rule';
import { cloudValues, CloudsYamlError, type CloudValues } from './clouds';
import { maskUrlSecrets } from '../log';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Values = { [K in ConfigKey]: ReturnType<(typeof KEYS)[K]['schema']['parse']> };

export interface PoolTarget {
  os: string;
  volumeType: string;
  /** The availability zone ('' when the pool names none: Cinder's default zone). */
  zone: string;
  /** The seed's count: the floor of the pool's target. */
  target: number;
  /** The most demand may raise it to. */
  cap: number;
}

export interface PoolPolicy {
  demand: {
    enabled: boolean;
    windowMinutes: number;
    safetyFactor: number;
    headroom: number;
  };
  /** Volumes left free in the pool project's quota when demand raises targets. */
  quotaMargin: number;
  /** Stock idle longer than this is recycled (drained and replaced); undefined: never. */
  maxIdleMinutes?: number;
  recyclePerRun: number;
  /** A tenant's share of a pool's hits within the window; undefined: no limit. */
  tenantShare?: { share: number; windowMinutes: number };
}

export interface AppConfig {
  concurrency: number;
  /** Where plain creation makes the volume (`auto` resolved by the auth strategy). */
  plainCreateIn: 'tenant' | 'pool';
  pool: {
    volumeTypes: string[];
    osMore: string[];
    osLess: string[];
    numsMore: number;
    numsLess: number;
    fillEveryMinutes: number;
    checkStateEveryMinutes: number;
    createIntervalSeconds: number;
    creatingTimeoutMinutes: number;
    drainPerRun: number;
    pollIntervalSeconds: number;
    volumeNamePrefix: string;
    snapshotNameRule: SnapshotNameRule;
    /**
     * Target per (volume type × OS × zone): `backup_nums_more` for the "more" list, `_less`
     * otherwise, or the zone's own counts (`[zone <name>]`).
     */
    targets: PoolTarget[];
    /** The zones served (`availability_zones`); empty: one zone, Cinder's default (''). */
    zones: string[];
    /** The zone of a claim that names none ('' when no zones are configured). */
    defaultZone: string;
    policy: PoolPolicy;
    /** How long the status check keeps the tables that only grow (lib/pool-state/prune.ts). */
    retention: { claimLogDays: number; claimDemandMinutes: number };
  };
  auth: {
    strategy: 'noauth' | 'keystone';
    project: string;
    projectId?: string;
    user: string;
    password: string;
    authUrl?: string;
    userDomain: string;
    projectDomain: string;
    region?: string;
    cinderUrl?: string;
    requestTimeoutMs: number;
    /** Cinder calls in flight per process (and client family); more wait their turn. */
    maxConcurrentCalls: number;
  };
  temporal: {
    address: string;
    namespace: string;
    taskQueue: string;
    uiUrl: string;
    schedulePrefix: string;
    manageSchedules: boolean;
    /** host:port of the worker's Prometheus endpoint; undefined: none. */
    workerMetricsAddress?: string;
    /** OTLP/HTTP collector for traces; undefined: no tracing. */
    otlpEndpoint?: string;
    /** The worker's Worker Deployment (docs/upgrading.md). */
    deploymentName: string;
    /**
     * The worker's build id; undefined: none configured and no git checkout to derive it from
     * (only the worker needs it, and refuses to start without: lib/temporal/versioning.ts).
     */
    buildId?: string;
    /** The worker makes its own version current when it starts (local stack, tests). */
    setCurrentOnStart: boolean;
    /** Workflows cached between workflow tasks; undefined: the SDK's default; 0: none. */
    maxCachedWorkflows?: number;
    /** TLS to the frontend (PEM file paths; mTLS with cert + key); undefined: plain gRPC. */
    tls?: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string };
    /** SIGTERM: running activities' time to finish before they are cancelled. */
    shutdownGraceMs: number;
  };
  databaseUrl: string;
  api: {
    host: string;
    port: number;
    apiKeys: string[];
    /** Starting with a key shipped in an example is allowed (the local stack only). */
    allowExampleKeys: boolean;
    claimWaitMs: number;
    plainCreateTimeoutMs: number;
    /** The bearer key /metrics asks for; undefined: /metrics is open. */
    metricsKey?: string;
    metricsCacheMs: number;
    /** Requests per API key per window on /v1; max 0: no limit. */
    rateLimit: { max: number; windowMs: number };
    /** A new claim is refused while the task queue's backlog is above this; 0: never. */
    maxClaimBacklog: number;
  };
  /** Where the values came from, for error messages and `pool config`. */
  source: string;
}

export interface LoadOptions {
  /** Path of the INI file; default $CONFIG_FILE or config/pool.ini. */
  file?: string | null;
  /** INI text given directly (tests); wins over `file`. */
  iniText?: string;
  env?: NodeJS.ProcessEnv;
}

function envName(spec: KeySpec): string {
  return `POOL__${spec.section.toUpperCase()}__${spec.key.toUpperCase()}`;
}

/**
 * Where a key's value comes from, first found: POOL__SECTION__KEY; the key's well-known
 * variables (OS_AUTH_URL, OS_USERNAME…); the cloud named by OS_CLOUD in clouds.yaml; the INI;
 * the default.
 */
function rawValue(
  key: ConfigKey,
  spec: KeySpec,
  ini: Record<string, Record<string, unknown>>,
  env: NodeJS.ProcessEnv,
  cloud: CloudValues,
): { value: string | undefined; from: string; rank: Rank } {
  // POOL__… set to '' means empty (e.g. no "less" OSes); a well-known variable set to '' is unset.
  const own = env[envName(spec)];
  if (own !== undefined) return { value: own, from: `environment ${envName(spec)}`, rank: 0 };
  for (const variable of spec.env ?? []) {
    const v = env[variable];
    if (v !== undefined && v !== '') return { value: v, from: `environment ${variable}`, rank: 1 };
  }
  const fromCloud = cloud.get(key);
  if (fromCloud) return { ...fromCloud, rank: 2 };
  const section = ini[spec.section];
  const v = section?.[spec.key];
  if (v !== undefined) {
    // `ini` turns bare `key` into true and repeated keys into arrays; we want the text.
    return {
      value: Array.isArray(v) ? v.join(',') : String(v),
      from: `[${spec.section}] ${spec.key}`,
      rank: 3,
    };
  }
  return { value: spec.default, from: `default of [${spec.section}] ${spec.key}`, rank: 4 };
}

/** Where a value came from, most binding first: POOL__ variable, OS_* variable, clouds.yaml, INI, default. */
type Rank = 0 | 1 | 2 | 3 | 4;
type Ranks = Record<ConfigKey, Rank>;

/**
 * Some keys only make sense together, so a more binding source takes the whole group: a cloud
 * given by OS_CLOUD or OS_AUTH_URL means Keystone with the catalog's Cinder (unless a POOL__
 * variable says otherwise), and a project named there replaces a project id from the INI (and
 * the other way round). Without this, `source openrc` over the stack's noauth INI would scope
 * to the INI's project id and call the INI's noauth Cinder URL.
 */
function applyGroups(v: Values, rank: Ranks): Values {
  const out = { ...v };
  if (v.authUrl && rank.authUrl < 3) {
    if (rank.authStrategy > rank.authUrl) out.authStrategy = 'keystone';
    if (rank.cinderUrl > rank.authUrl) out.cinderUrl = undefined;
  }
  if (rank.authProject < rank.authProjectId) out.authProjectId = undefined;
  return out;
}

function readValues(ini: Record<string, Record<string, unknown>>, env: NodeJS.ProcessEnv): Values {
  const out: Record<string, unknown> = {};
  const rank = {} as Ranks;
  const problems: string[] = [];
  let cloud: CloudValues;
  try {
    cloud = cloudValues(env);
  } catch (err) {
    if (err instanceof CloudsYamlError) throw new ConfigError(err.message);
    throw err;
  }
  for (const [name, spec] of Object.entries(KEYS) as [ConfigKey, KeySpec][]) {
    const { value, from, rank: r } = rawValue(name, spec, ini, env, cloud);
    rank[name] = r;
    const result = spec.schema.safeParse(value);
    if (result.success) {
      out[name] = result.data;
    } else {
      const shown = spec.secret ? '<secret>' : JSON.stringify(value ?? null);
      const why = result.error.issues.map((i) => i.message).join('; ');
      problems.push(`${from} = ${shown}: ${why}`);
    }
  }
  if (problems.length > 0)
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return applyGroups(out as Values, rank);
}

function checkKnownKeys(ini: Record<string, Record<string, unknown>>): void {
  const known = new Set(Object.values(KEYS).map((s: KeySpec) => `${s.section}.${s.key}`));
  const knownSections = new Set(Object.values(KEYS).map((s: KeySpec) => s.section));
  const unknown: string[] = [];
  for (const [section, body] of Object.entries(ini)) {
    // The seed's file has more sections ([DEFAULT], [cld]) that belong to other programs.
    if (!knownSections.has(section) || typeof body !== 'object' || body === null) continue;
    for (const key of Object.keys(body))
      if (!known.has(`${section}.${key}`)) unknown.push(`[${section}] ${key}`);
  }
  if (unknown.length > 0)
    throw new ConfigError(`unknown configuration key(s): ${unknown.join(', ')}`);
}

const ROOT = resolve(__dirname, '../..');
let derivedBuildId: string | null | undefined;

/**
 * The build id of this checkout, once per process: `<package version>+<git commit>`. Null
 * without git (an image built without WARMPOOL_BUILD_ID). Uncommitted changes do not change it.
 */
function buildIdOfCheckout(): string | null {
  if (derivedBuildId === undefined) {
    try {
      const { version } = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as {
        version: string;
      };
      const commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
      derivedBuildId = /^[0-9a-f]{4,40}$/.test(commit) ? `${version}+${commit}` : null;
    } catch {
      derivedBuildId = null;
    }
  }
  return derivedBuildId;
}

/** The deployment: as configured, or the task queue's name, which must then fit the rule. */
function deploymentOf(v: Values): string {
  if (v.deploymentName) return v.deploymentName;
  const fromQueue = deploymentName.safeParse(v.taskQueue);
  if (!fromQueue.success)
    throw new ConfigError(
      `[temporal] deployment_name is not set and the task queue's name ${JSON.stringify(v.taskQueue)} cannot be one (${fromQueue.error.issues[0]?.message}): set deployment_name`,
    );
  return fromQueue.data;
}

/** A pair's cap: backup_nums_max (never below the floor), or 3 × the floor. */
const capOf = (v: Values, floor: number) => Math.max(floor, v.numsMax ?? 3 * floor);

/** A zone's own counts: `[zone <name>]` with backup_nums_more and/or backup_nums_less. */
const ZONE_SECTION = /^zone\s+(\S+)$/;
const ZONE_KEYS = { backup_nums_more: 'more', backup_nums_less: 'less' } as const;

type ZoneCounts = Map<string, { more?: number; less?: number }>;

/**
 * The `[zone <name>]` sections, holding only count keys. A section of a zone not served is read
 * (its keys checked) and left unused: the environment may narrow availability_zones without an
 * edit of the file (POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES=az-1).
 */
function zoneCounts(ini: Record<string, Record<string, unknown>>): ZoneCounts {
  const out: ZoneCounts = new Map();
  for (const [section, body] of Object.entries(ini)) {
    const zone = ZONE_SECTION.exec(section)?.[1];
    if (zone === undefined || typeof body !== 'object' || body === null) continue;
    const counts: { more?: number; less?: number } = {};
    for (const [key, raw] of Object.entries(body)) {
      const which = ZONE_KEYS[key as keyof typeof ZONE_KEYS];
      const n = Number(String(raw).trim());
      if (!which)
        throw new ConfigError(
          `[${section}] ${key}: unknown key (a zone takes backup_nums_more, backup_nums_less)`,
        );
      if (!/^\d+$/.test(String(raw).trim()) || n > 10000)
        throw new ConfigError(
          `[${section}] ${key} = ${JSON.stringify(raw)}: expected a whole number from 0 to 10000`,
        );
      counts[which] = n;
    }
    out.set(zone, counts);
  }
  return out;
}

/** The zones served and the default one; no zones configured: the one zone ''. */
function zonesOf(v: Values): { zones: string[]; defaultZone: string } {
  const zones = [...new Set(v.availabilityZones)];
  if (zones.length < v.availabilityZones.length)
    throw new ConfigError(
      `[volumes_backup] availability_zones lists a zone twice: ${v.availabilityZones.join(', ')}`,
    );
  const defaultZone = v.defaultAvailabilityZone ?? zones[0] ?? '';
  if (zones.length === 0 && v.defaultAvailabilityZone)
    throw new ConfigError(
      `[volumes_backup] default_availability_zone = ${v.defaultAvailabilityZone} needs availability_zones`,
    );
  if (zones.length > 0 && !zones.includes(defaultZone))
    throw new ConfigError(
      `[volumes_backup] default_availability_zone = ${defaultZone} is not one of availability_zones (${zones.join(', ')})`,
    );
  return { zones, defaultZone };
}

function buildTargets(v: Values, zones: string[], counts: ZoneCounts): PoolTarget[] {
  const overlap = v.osMore.filter((os) => v.osLess.includes(os));
  if (overlap.length > 0) {
    throw new ConfigError(
      `[volumes_backup] an OS is listed in both volume_backup_os_more and volume_backup_os_less: ${overlap.join(', ')}`,
    );
  }
  const targets: PoolTarget[] = [];
  for (const zone of zones.length > 0 ? zones : ['']) {
    const more = counts.get(zone)?.more ?? v.numsMore;
    const less = counts.get(zone)?.less ?? v.numsLess;
    for (const volumeType of v.volumeTypes) {
      for (const os of v.osMore)
        targets.push({ os, volumeType, zone, target: more, cap: capOf(v, more) });
      for (const os of v.osLess)
        targets.push({ os, volumeType, zone, target: less, cap: capOf(v, less) });
    }
  }
  return targets;
}

/**
 * claim_demand is what the demand window and the fair share count: kept at least that long, else
 * the pruning would make a busy pool look quiet (a lower target) and let a tenant past its share.
 */
function retentionOf(v: Values): AppConfig['pool']['retention'] {
  const windows: [key: string, minutes: number][] = [
    ['demand_window_minute', v.demandWindowMinutes],
  ];
  if (v.tenantShare !== undefined)
    windows.push(['tenant_share_window_minute', v.tenantShareWindowMinutes]);
  const longest = Math.max(...windows.map(([, minutes]) => minutes));
  const kept = v.claimDemandRetentionMinutes ?? 2 * longest;
  for (const [key, minutes] of windows) {
    if (kept < minutes)
      throw new ConfigError(
        `[volumes_backup] claim_demand_retention_minute = ${kept} is shorter than ${key} = ${minutes}: the claims that window counts would be pruned`,
      );
  }
  return { claimLogDays: v.claimLogRetentionDays, claimDemandMinutes: kept };
}

/** TLS is on with `tls = true` or any of its files; a client certificate needs its key. */
function temporalTlsOf(v: Values): AppConfig['temporal']['tls'] {
  const tls = {
    caFile: v.temporalTlsCaFile,
    certFile: v.temporalTlsCertFile,
    keyFile: v.temporalTlsKeyFile,
    serverName: v.temporalTlsServerName,
  };
  if (!tls.certFile !== !tls.keyFile)
    throw new ConfigError(
      '[temporal] tls_cert_file and tls_key_file go together (the client certificate of mTLS and its key)',
    );
  return v.temporalTls || Object.values(tls).some(Boolean) ? tls : undefined;
}

export function loadConfig(opts: LoadOptions = {}): AppConfig {
  const env = opts.env ?? process.env;
  let text = opts.iniText;
  let source = '(inline)';
  if (text === undefined && opts.file !== null) {
    const file = opts.file ?? env.CONFIG_FILE ?? 'config/pool.ini';
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read configuration file ${file}: ${(err as Error).message}`);
    }
    source = file;
  }
  const ini = parseIni(text ?? '') as Record<string, Record<string, unknown>>;
  checkKnownKeys(ini);
  const v = readValues(ini, env);
  const { zones, defaultZone } = zonesOf(v);
  const perZone = zoneCounts(ini);

  let snapshotNameRule: SnapshotNameRule;
  try {
    snapshotNameRule = parseSnapshotNameRule(v.snapshotNameRule);
  } catch (err) {
    throw new ConfigError(`[volumes_backup] snapshot_name_rule: ${(err as Error).message}`);
  }
  if (v.authStrategy === 'keystone' && !v.authUrl) {
    throw new ConfigError('[auth_args] auth_url is required when auth_strategy = keystone');
  }
  if (v.authStrategy === 'noauth' && !v.cinderUrl) {
    throw new ConfigError('[auth_args] cinder_url is required when auth_strategy = noauth');
  }
  if (v.authStrategy === 'noauth' && !v.authProjectId) {
    throw new ConfigError(
      '[auth_args] auth_project_id (the admin project id, 32 hex digits) is required when auth_strategy = noauth',
    );
  }

  return {
    concurrency: v.concurrency,
    plainCreateIn:
      v.plainCreateIn === 'auto'
        ? v.authStrategy === 'keystone'
          ? 'pool'
          : 'tenant'
        : v.plainCreateIn,
    pool: {
      volumeTypes: v.volumeTypes,
      osMore: v.osMore,
      osLess: v.osLess,
      numsMore: v.numsMore,
      numsLess: v.numsLess,
      fillEveryMinutes: v.fillEveryMinutes,
      checkStateEveryMinutes: v.checkStateEveryMinutes,
      createIntervalSeconds: v.createIntervalSeconds,
      creatingTimeoutMinutes: v.creatingTimeoutMinutes,
      drainPerRun: v.drainPerRun,
      pollIntervalSeconds: v.pollIntervalSeconds,
      volumeNamePrefix: v.volumeNamePrefix,
      snapshotNameRule,
      targets: buildTargets(v, zones, perZone),
      zones,
      defaultZone,
      retention: retentionOf(v),
      policy: {
        demand: {
          enabled: v.demandTargets,
          windowMinutes: v.demandWindowMinutes,
          safetyFactor: v.demandSafetyFactor,
          headroom: v.demandHeadroom,
        },
        quotaMargin: v.quotaMargin,
        maxIdleMinutes: v.maxIdleMinutes,
        recyclePerRun: v.recyclePerRun,
        tenantShare:
          v.tenantShare === undefined
            ? undefined
            : { share: v.tenantShare, windowMinutes: v.tenantShareWindowMinutes },
      },
    },
    auth: {
      strategy: v.authStrategy,
      project: v.authProject,
      projectId: v.authProjectId,
      user: v.authUser,
      password: v.authPassword,
      authUrl: v.authUrl,
      userDomain: v.userDomain,
      projectDomain: v.projectDomain,
      region: v.region,
      cinderUrl: v.cinderUrl?.replace(/\/+$/, ''),
      requestTimeoutMs: v.requestTimeoutSeconds * 1000,
      maxConcurrentCalls: v.maxConcurrentCalls,
    },
    temporal: {
      address: v.temporalAddress,
      namespace: v.temporalNamespace,
      taskQueue: v.taskQueue,
      uiUrl: v.temporalUiUrl.replace(/\/+$/, ''),
      schedulePrefix: v.schedulePrefix,
      manageSchedules: v.manageSchedules,
      workerMetricsAddress: v.workerMetricsAddress,
      otlpEndpoint: v.otlpEndpoint,
      deploymentName: deploymentOf(v),
      buildId: v.buildId ?? buildIdOfCheckout() ?? undefined,
      setCurrentOnStart: v.setCurrentOnStart,
      maxCachedWorkflows: v.maxCachedWorkflows,
      tls: temporalTlsOf(v),
      shutdownGraceMs: v.shutdownGraceSeconds * 1000,
    },
    databaseUrl: v.databaseUrl,
    api: {
      host: v.apiHost,
      port: v.apiPort,
      apiKeys: v.apiKeys,
      allowExampleKeys: v.allowExampleKeys,
      claimWaitMs: v.claimWaitSeconds * 1000,
      plainCreateTimeoutMs: v.plainCreateTimeoutMinutes * 60_000,
      metricsKey: v.metricsKey || undefined,
      metricsCacheMs: v.metricsCacheSeconds * 1000,
      rateLimit: { max: v.rateLimitMax, windowMs: Math.round(v.rateLimitWindowSeconds * 1000) },
      maxClaimBacklog: v.maxClaimBacklog,
    },
    source,
  };
}

/** A URL with its passwords (userinfo, `?password=`…) replaced by <secret> (lib/log.ts). */
export const maskUrlPassword = maskUrlSecrets;

/** The configuration with secrets masked, for `pool config` and startup logs. */
export function describeConfig(c: AppConfig): Record<string, unknown> {
  return {
    ...c,
    pool: { ...c.pool, snapshotNameRule: c.pool.snapshotNameRule.template },
    auth: {
      ...c.auth,
      password: c.auth.password ? '<secret>' : '',
      authUrl: c.auth.authUrl && maskUrlSecrets(c.auth.authUrl),
      cinderUrl: c.auth.cinderUrl && maskUrlSecrets(c.auth.cinderUrl),
    },
    temporal: {
      ...c.temporal,
      otlpEndpoint: c.temporal.otlpEndpoint && maskUrlSecrets(c.temporal.otlpEndpoint),
    },
    databaseUrl: maskUrlSecrets(c.databaseUrl),
    api: {
      ...c.api,
      apiKeys: c.api.apiKeys.map(() => '<secret>'),
      metricsKey: c.api.metricsKey && '<secret>',
    },
  };
}
