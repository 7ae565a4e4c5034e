/**
 * Every configuration key: where it lives in the seed's INI file, how it is parsed, its default.
 * Keys of the seed keep their names and meanings; ours sit beside them in the same sections.
 */
import { z } from 'zod';

const list = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x.length > 0),
  )
  .pipe(z.array(z.string()));
const nonEmptyList = list.pipe(z.array(z.string()).min(1, 'expected at least one item'));
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));
const num = (min: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, 'expected a number')
    .transform(Number)
    .pipe(z.number().min(min));
const text = z.string().trim().min(1, 'must not be empty');
const url = z.string().trim().url('expected a URL');
/** An optional URL: empty means not set (POOL__AUTH_ARGS__CINDER_URL= drops the INI's override). */
const optionalUrl = z.preprocess((v) => (v === '' ? undefined : v), url.optional());
const hostPort = z
  .string()
  .trim()
  .regex(/^[\w.-]+:\d{1,5}$/, 'expected host:port');
const bool = z.enum(['true', 'false']).transform((v) => v === 'true');
/** Optional text: empty means not set. */
const optionalText = z.preprocess((v) => (v === '' ? undefined : v), text.optional());
/** A Worker Deployment's name: Temporal joins it to the build id with a dot, so it has none. */
export const deploymentName = z
  .string()
  .trim()
  .regex(/^[\w-]{1,200}$/, 'expected letters, digits, - and _ (no dot)');
const buildId = z
  .string()
  .trim()
  .regex(/^[\w.+-]{1,200}$/, 'expected letters, digits, ., +, - and _');

/** One key: its INI section and name, extra accepted names, default, and value schema. */
export interface KeySpec {
  section: string;
  key: string;
  schema: z.ZodType;
  default?: string;
  secret?: boolean;
  /** Well-known environment variables that also set this key (after POOL__SECTION__KEY). */
  env?: string[];
}

export const KEYS = {
  concurrency: { section: 'volumes', key: 'concurrency', schema: int(1, 100), default: '2' },
  /**
   * Where plain creation makes a tenant's volume. `tenant`: directly in the tenant's project,
   * which must be able to read the pool's OS snapshots (true under noauth). `pool`: in the
   * pool's project, then handed over like a pool volume (a Keystone cloud, where a tenant
   * cannot see another project's snapshots). `auto`: pool with Keystone, tenant with noauth.
   */
  plainCreateIn: {
    section: 'volumes',
    key: 'plain_create_in',
    schema: z.enum(['auto', 'tenant', 'pool']),
    default: 'auto',
  },

  volumeTypes: {
    section: 'volumes_backup',
    key: 'volume_backup_types',
    schema: nonEmptyList,
    default: 'sas',
  },
  osMore: { section: 'volumes_backup', key: 'volume_backup_os_more', schema: list, default: '' },
  osLess: { section: 'volumes_backup', key: 'volume_backup_os_less', schema: list, default: '' },
  numsMore: {
    section: 'volumes_backup',
    key: 'backup_nums_more',
    schema: int(0, 10000),
    default: '10',
  },
  numsLess: {
    section: 'volumes_backup',
    key: 'backup_nums_less',
    schema: int(0, 10000),
    default: '2',
  },
  /**
   * The availability zones the pool serves: one pool per (type, OS, zone), each filled from the
   * zone's own snapshot. Empty: one pool per (type, OS) in Cinder's default zone.
   */
  availabilityZones: {
    section: 'volumes_backup',
    key: 'availability_zones',
    schema: list,
    default: '',
  },
  /** The zone of a claim that names none; empty: the first of availability_zones. */
  defaultAvailabilityZone: {
    section: 'volumes_backup',
    key: 'default_availability_zone',
    schema: optionalText,
  },
  fillEveryMinutes: {
    section: 'volumes_backup',
    key: 'backup_frequency_minute',
    schema: num(0.05),
    default: '20',
  },
  checkStateEveryMinutes: {
    section: 'volumes_backup',
    key: 'check_state_frequency_minute',
    schema: num(0.05),
    default: '5',
  },
  createIntervalSeconds: {
    section: 'volumes_backup',
    key: 'create_volume_time_interval_second',
    schema: num(0),
    default: '40',
  },
  snapshotNameRule: {
    section: 'volumes_backup',
    key: 'snapshot_name_rule',
    schema: text,
    default: 'os-image {os} {type} v{version}',
  },
  creatingTimeoutMinutes: {
    section: 'volumes_backup',
    key: 'creating_timeout_minute',
    schema: num(0.1),
    default: '30',
  },
  // Demand-aware targets: the seed's counts are floors; recent claims raise a pool's target.
  demandTargets: {
    section: 'volumes_backup',
    key: 'demand_targets',
    schema: z.enum(['true', 'false']).transform((v) => v === 'true'),
    default: 'true',
  },
  demandWindowMinutes: {
    section: 'volumes_backup',
    key: 'demand_window_minute',
    schema: num(0.1),
    default: '60',
  },
  demandSafetyFactor: {
    section: 'volumes_backup',
    key: 'demand_safety_factor',
    schema: num(0),
    default: '2',
  },
  demandHeadroom: {
    section: 'volumes_backup',
    key: 'demand_headroom',
    schema: int(0, 10000),
    default: '1',
  },
  /** Per (type × OS) cap of a demand-raised target; empty: 3 × its floor. */
  numsMax: {
    section: 'volumes_backup',
    key: 'backup_nums_max',
    schema: z.preprocess((v) => (v === '' ? undefined : v), int(0, 100000).optional()),
  },
  quotaMargin: {
    section: 'volumes_backup',
    key: 'quota_margin',
    schema: int(0, 100000),
    default: '5',
  },
  maxIdleMinutes: {
    section: 'volumes_backup',
    key: 'max_idle_minute',
    schema: z.preprocess((v) => (v === '' ? undefined : v), num(0.05).optional()),
  },
  recyclePerRun: {
    section: 'volumes_backup',
    key: 'recycle_per_run',
    schema: int(0, 10000),
    default: '2',
  },
  /** Fairness: one tenant's share of a pool's hits within the window; empty: off. */
  tenantShare: {
    section: 'volumes_backup',
    key: 'tenant_share',
    schema: z.preprocess(
      (v) => (v === '' ? undefined : v),
      num(0).pipe(z.number().max(1, 'expected a fraction between 0 and 1')).optional(),
    ),
  },
  tenantShareWindowMinutes: {
    section: 'volumes_backup',
    key: 'tenant_share_window_minute',
    schema: num(0.1),
    default: '10',
  },
  /** claim_log rows older than this are pruned (the dashboard reads the last day). */
  claimLogRetentionDays: {
    section: 'volumes_backup',
    key: 'claim_log_retention_day',
    schema: num(1),
    default: '30',
  },
  /**
   * claim_demand rows older than this are pruned; never shorter than the windows that count them
   * (load.ts). Empty: twice the longest of demand_window_minute and tenant_share_window_minute.
   */
  claimDemandRetentionMinutes: {
    section: 'volumes_backup',
    key: 'claim_demand_retention_minute',
    schema: z.preprocess((v) => (v === '' ? undefined : v), num(0.1).optional()),
  },
  drainPerRun: {
    section: 'volumes_backup',
    key: 'stale_drain_per_run',
    schema: int(0, 10000),
    default: '2',
  },
  pollIntervalSeconds: {
    section: 'volumes_backup',
    key: 'poll_interval_second',
    schema: num(0.1),
    default: '2',
  },
  volumeNamePrefix: {
    section: 'volumes_backup',
    key: 'pool_volume_name_prefix',
    schema: z
      .string()
      .trim()
      .regex(/^[a-z][a-z0-9-]{0,30}$/, 'expected lowercase letters, digits, dashes'),
    default: 'warmpool',
  },

  authStrategy: {
    section: 'auth_args',
    key: 'auth_strategy',
    schema: z.enum(['noauth', 'keystone']),
    default: 'noauth',
  },
  authProject: {
    section: 'auth_args',
    key: 'auth_project',
    schema: text,
    default: 'admin',
    env: ['OS_PROJECT_NAME'],
  },
  authProjectId: {
    section: 'auth_args',
    key: 'auth_project_id',
    schema: z
      .string()
      .trim()
      .regex(/^[0-9a-f]{32}$/, 'expected a 32-digit hex project id')
      .optional(),
    env: ['OS_PROJECT_ID'],
  },
  authUser: {
    section: 'auth_args',
    key: 'auth_user',
    schema: text,
    default: 'admin',
    env: ['OS_USERNAME'],
  },
  authPassword: {
    section: 'auth_args',
    key: 'auth_passwd',
    schema: z.string(),
    default: '',
    secret: true,
    env: ['OS_PASSWORD'],
  },
  authUrl: { section: 'auth_args', key: 'auth_url', schema: optionalUrl, env: ['OS_AUTH_URL'] },
  userDomain: {
    section: 'auth_args',
    key: 'user_domain',
    schema: text,
    default: 'Default',
    env: ['OS_USER_DOMAIN_NAME'],
  },
  projectDomain: {
    section: 'auth_args',
    key: 'project_domain',
    schema: text,
    default: 'Default',
    env: ['OS_PROJECT_DOMAIN_NAME'],
  },
  region: { section: 'auth_args', key: 'region', schema: text.optional(), env: ['OS_REGION_NAME'] },
  cinderUrl: {
    section: 'auth_args',
    key: 'cinder_url',
    schema: optionalUrl,
    env: ['CINDER_URL'],
  },
  requestTimeoutSeconds: {
    section: 'auth_args',
    key: 'request_timeout_second',
    // Below the activities' heartbeat timeouts (15 s): a slow call must never let Temporal start
    // a retry while this attempt still waits on Cinder.
    schema: num(1).pipe(z.number().max(12, 'must stay below the 15 s activity heartbeat timeout')),
    default: '10',
  },
  maxConcurrentCalls: {
    section: 'auth_args',
    key: 'max_concurrent_calls',
    // Cinder's API serves a burst faster a few calls at a time than all at once: the rest wait
    // here, per worker process, instead of inside Cinder.
    schema: num(1).pipe(z.number().int('must be a whole number')),
    default: '12',
  },

  temporalAddress: {
    section: 'temporal',
    key: 'address',
    schema: hostPort,
    default: '127.0.0.1:7233',
    env: ['TEMPORAL_ADDRESS'],
  },
  temporalNamespace: {
    section: 'temporal',
    key: 'namespace',
    schema: text,
    default: 'default',
    env: ['TEMPORAL_NAMESPACE'],
  },
  taskQueue: { section: 'temporal', key: 'task_queue', schema: text, default: 'warm-pool' },
  /**
   * TLS to Temporal's frontend (mTLS with a client certificate; lib/temporal/connect.ts). On when
   * `tls = true` or any file below is set; the files are PEM. Empty server name: the address's host.
   */
  temporalTls: { section: 'temporal', key: 'tls', schema: bool, default: 'false' },
  temporalTlsCaFile: { section: 'temporal', key: 'tls_ca_file', schema: optionalText },
  temporalTlsCertFile: { section: 'temporal', key: 'tls_cert_file', schema: optionalText },
  temporalTlsKeyFile: { section: 'temporal', key: 'tls_key_file', schema: optionalText },
  temporalTlsServerName: { section: 'temporal', key: 'tls_server_name', schema: optionalText },
  schedulePrefix: {
    section: 'temporal',
    key: 'schedule_prefix',
    schema: z
      .string()
      .trim()
      .regex(/^[\w-]+$/, 'expected letters, digits, - and _'),
    default: 'warm-pool',
  },
  manageSchedules: {
    section: 'temporal',
    key: 'manage_schedules',
    schema: z.enum(['true', 'false']).transform((v) => v === 'true'),
    default: 'true',
  },
  /**
   * Worker Versioning (docs/upgrading.md): the worker polls as one version of a Worker
   * Deployment, and every workflow stays pinned to the version it started on. Empty: the task
   * queue's name. Temporal writes a version as `<deployment>.<build id>`, so no dot here.
   */
  deploymentName: {
    section: 'temporal',
    key: 'deployment_name',
    schema: z.preprocess((v) => (v === '' ? undefined : v), deploymentName.optional()),
  },
  /**
   * The worker's build: one id per build of the code. Empty: WARMPOOL_BUILD_ID (set when the
   * image is built), else `<package version>+<git commit>` of this checkout.
   */
  buildId: {
    section: 'temporal',
    key: 'build_id',
    schema: z.preprocess((v) => (v === '' ? undefined : v), buildId.optional()),
    env: ['WARMPOOL_BUILD_ID'],
  },
  /**
   * A starting worker makes its own version the deployment's current one, so that it gets the
   * new workflows. For the local stack, the tests and development; in production the upgrade
   * step does it (`temporal worker deployment set-current-version`).
   */
  setCurrentOnStart: {
    section: 'temporal',
    key: 'set_current_on_start',
    schema: bool,
    default: 'false',
  },
  /**
   * Workflows the worker keeps in memory between workflow tasks; empty: the SDK's default.
   * 0: none, every activation replays the workflow's history (`npm run test:nocache`).
   */
  maxCachedWorkflows: {
    section: 'temporal',
    key: 'max_cached_workflows',
    schema: z.preprocess(
      (v) => (v === '' ? undefined : v),
      int(0, 1_000_000)
        .pipe(z.number().refine((n) => n !== 1, 'expected 0 (no cache) or at least 2'))
        .optional(),
    ),
  },
  /**
   * On SIGTERM, how long running activities may go on before they are cancelled (and retried
   * elsewhere). Keep the orchestrator's grace period (compose `stop_grace_period`) above it.
   */
  shutdownGraceSeconds: {
    section: 'temporal',
    key: 'shutdown_grace_second',
    schema: num(0),
    default: '20',
  },
  /** Where the worker serves its Prometheus metrics (SDK + pool); empty: not served. */
  workerMetricsAddress: {
    section: 'temporal',
    key: 'worker_metrics_address',
    schema: z.preprocess((v) => (v === '' ? undefined : v), hostPort.optional()),
  },
  /** OTLP/HTTP collector for traces (e.g. http://127.0.0.1:4318); empty: no tracing. */
  otlpEndpoint: {
    section: 'temporal',
    key: 'otlp_endpoint',
    schema: optionalUrl,
    env: ['OTEL_EXPORTER_OTLP_ENDPOINT'],
  },
  temporalUiUrl: {
    section: 'temporal',
    key: 'ui_url',
    schema: url,
    default: 'http://127.0.0.1:8233',
  },

  databaseUrl: {
    section: 'database',
    key: 'url',
    schema: z
      .string()
      .trim()
      .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL'),
    default: 'postgres://postgres@127.0.0.1:5432/warmpool',
    env: ['DATABASE_URL'],
    secret: true,
  },

  apiHost: { section: 'api', key: 'host', schema: text, default: '127.0.0.1' },
  /**
   * The API starts with a key shipped in an example (config/pool.ini, .env.example, README) only
   * when this says so: the local stack's config/pool.ini; never in production (docker-compose.yml).
   */
  allowExampleKeys: { section: 'api', key: 'allow_example_keys', schema: bool, default: 'false' },
  apiPort: {
    section: 'api',
    key: 'port',
    schema: int(0, 65535),
    default: '8080',
    env: ['API_PORT'],
  },
  claimWaitSeconds: {
    section: 'api',
    key: 'claim_wait_second',
    schema: num(0),
    default: '20',
  },
  plainCreateTimeoutMinutes: {
    section: 'volumes_backup',
    key: 'plain_create_timeout_minute',
    schema: num(0.1),
    default: '30',
  },
  apiKeys: {
    section: 'api',
    key: 'api_keys',
    schema: list,
    default: '',
    secret: true,
    env: ['API_KEYS'],
  },
  /** Bearer key GET /metrics asks for (Prometheus' `authorization`); empty: /metrics is open. */
  metricsKey: {
    section: 'api',
    key: 'metrics_key',
    schema: z.string().trim(),
    default: '',
    secret: true,
    env: ['METRICS_KEY'],
  },
  /** How long /metrics reuses one read of the pool's state: a scrape storm costs no queries. */
  metricsCacheSeconds: {
    section: 'api',
    key: 'metrics_cache_second',
    schema: num(0),
    default: '5',
  },
  /**
   * Admission control: while more workflow tasks than this wait in the task queue (its
   * approximate backlog), a new claim is refused (429 + Retry-After) before it starts; a claim
   * already started is never refused. 0: off.
   */
  maxClaimBacklog: { section: 'api', key: 'max_claim_backlog', schema: int(0), default: '500' },
  /** Requests per API key per window on /v1 (429 past it); 0: no limit. */
  rateLimitMax: { section: 'api', key: 'rate_limit_max', schema: int(0), default: '6000' },
  rateLimitWindowSeconds: {
    section: 'api',
    key: 'rate_limit_window_second',
    schema: num(0.1),
    default: '60',
  },
} satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof KEYS;
