/**
 * Prometheus metrics at GET /metrics: pool levels per type × OS (read from PostgreSQL, so every
 * API replica reports the same truth), the last fill's outcome, and this API's claims by outcome
 * with their latency. The PostgreSQL reads are cached (`[api] metrics_cache_second`): however
 * many scrapes arrive, at most one read runs per period, and concurrent scrapes share it.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AppConfig } from '../lib/config/load';
import type { Db } from '../lib/pool-state/db';
import { currentLevels } from '../lib/pool-state/levels';
import { RunRepository } from '../lib/pool-state/runs';
import type { CheckResult, FillProgress } from '../contracts/fill';

export interface ApiMetrics {
  registry: Registry;
  claims: Counter<'outcome' | 'status'>;
  claimSeconds: Histogram<'outcome'>;
}

/**
 * `load` at most once per `ttlMs`: callers within the period, or while a load runs, share its
 * promise. A failed load is not kept, so the next caller tries again.
 */
function cachedFor<T>(ttlMs: number, load: () => Promise<T>): () => Promise<T> {
  let current: { value: Promise<T>; at: number } | undefined;
  return () => {
    const now = Date.now();
    if (!current || now - current.at >= ttlMs) {
      const value = load();
      current = { value, at: now };
      value.catch(() => {
        if (current?.value === value) current = undefined;
      });
    }
    return current.value;
  };
}

export function createMetrics(config: AppConfig, db: Db): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'warmpool_api_' });
  const runs = new RunRepository(db);
  const poolState = cachedFor(config.api.metricsCacheMs, async () => {
    const [levels, lastFill, lastCheck] = await Promise.all([
      currentLevels(config, db),
      runs.last<FillProgress>('fill', { finished: true }),
      runs.last<CheckResult>('check', { finished: true }),
    ]);
    return { levels, lastFill, lastCheck };
  });

  new Gauge({
    name: 'warmpool_pool_volumes',
    help: 'Pool volumes per volume type, OS, availability zone and state (available = current image, ready to hand out; target = floor raised by demand).',
    labelNames: ['volume_type', 'os', 'zone', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const l of (await poolState()).levels) {
        for (const state of [
          'floor',
          'target',
          'available',
          'creating',
          'reserved',
          'stale',
          'deleting',
          'flagged',
          'missing',
        ] as const) {
          this.set({ volume_type: l.volumeType, os: l.os, zone: l.zone, state }, l[state]);
        }
      }
    },
  });

  new Gauge({
    name: 'warmpool_last_fill',
    help: 'The last finished fill: volumes made available, failed, drained; stopped_by_quota is 1 when a quota stopped it.',
    labelNames: ['field'],
    registers: [registry],
    async collect() {
      this.reset();
      const r = (await poolState()).lastFill;
      if (!r?.finishedAt) return;
      this.set({ field: 'finished_timestamp_seconds' }, r.finishedAt.getTime() / 1000);
      this.set({ field: 'available' }, Number(r.summary.available ?? 0));
      this.set({ field: 'failed' }, Number(r.summary.failed ?? 0));
      this.set({ field: 'drained' }, Number(r.summary.drained ?? 0));
      this.set({ field: 'stopped_by_quota' }, /^quota/.test(r.summary.stoppedBy ?? '') ? 1 : 0);
    },
  });

  new Gauge({
    name: 'warmpool_last_check',
    help: 'The last finished state check: when, and the rows its retention prune removed.',
    labelNames: ['field'],
    registers: [registry],
    async collect() {
      this.reset();
      const r = (await poolState()).lastCheck;
      if (!r?.finishedAt) return;
      this.set({ field: 'finished_timestamp_seconds' }, r.finishedAt.getTime() / 1000);
      this.set({ field: 'pruned_claim_log' }, Number(r.summary.pruned?.claimLog ?? 0));
      this.set({ field: 'pruned_claim_demand' }, Number(r.summary.pruned?.claimDemand ?? 0));
    },
  });

  // The configured intervals, so that "not run for N intervals" alerts need no edited constant.
  const every = new Gauge({
    name: 'warmpool_schedule_interval_seconds',
    help: 'The configured interval of the fill and check schedules.',
    labelNames: ['schedule'],
    registers: [registry],
  });
  every.set({ schedule: 'fill' }, config.pool.fillEveryMinutes * 60);
  every.set({ schedule: 'check' }, config.pool.checkStateEveryMinutes * 60);

  const claims = new Counter({
    name: 'warmpool_claims_total',
    help: 'Claims answered by this API, by outcome (pool, created, existing, failed, running; refused_backlog: a new claim refused 429 past [api] max_claim_backlog) and HTTP status.',
    labelNames: ['outcome', 'status'],
    registers: [registry],
  });
  const claimSeconds = new Histogram({
    name: 'warmpool_claim_seconds',
    help: 'Time to answer POST /v1/claims with a volume, by outcome.',
    labelNames: ['outcome'],
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  return { registry, claims, claimSeconds };
}
