/** The retention of the tables that only grow: defaults, overrides and the windows it must cover. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig } from '../../lib/config/load';

const seedIni = readFileSync('config/seed-example.ini', 'utf8');

/** The seed's INI with these [volumes_backup] keys set through the environment. */
const load = (keys: Record<string, string>) =>
  loadConfig({
    iniText: seedIni,
    env: Object.fromEntries(
      Object.entries(keys).map(([k, v]) => [`POOL__VOLUMES_BACKUP__${k.toUpperCase()}`, v]),
    ),
  });

function rejects(keys: Record<string, string>, pattern: RegExp): void {
  assert.throws(
    () => load(keys),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('retention of claim_log and claim_demand', () => {
  test('defaults: 30 days of claim log; demand kept twice the longest window that counts it', () => {
    assert.deepEqual(load({}).pool.retention, { claimLogDays: 30, claimDemandMinutes: 120 });
    assert.deepEqual(
      load({ demand_window_minute: '15', tenant_share: '0.5', tenant_share_window_minute: '45' })
        .pool.retention,
      { claimLogDays: 30, claimDemandMinutes: 90 },
    );
    // The shipped stack config says the same.
    assert.deepEqual(loadConfig({ file: 'config/pool.ini', env: {} }).pool.retention, {
      claimLogDays: 30,
      claimDemandMinutes: 120,
    });
  });

  test('set explicitly, as long as it covers the windows', () => {
    assert.deepEqual(
      load({ claim_log_retention_day: '7', claim_demand_retention_minute: '60' }).pool.retention,
      { claimLogDays: 7, claimDemandMinutes: 60 },
    );
  });

  test('a demand retention shorter than a window that counts claims is refused', () => {
    rejects(
      { claim_demand_retention_minute: '30' },
      /claim_demand_retention_minute = 30 is shorter than demand_window_minute = 60/,
    );
    rejects(
      {
        claim_demand_retention_minute: '60',
        tenant_share: '0.5',
        tenant_share_window_minute: '90',
      },
      /claim_demand_retention_minute = 60 is shorter than tenant_share_window_minute = 90/,
    );
    // Without a fair share its window counts nothing: no constraint from it.
    assert.equal(
      load({ claim_demand_retention_minute: '60', tenant_share_window_minute: '90' }).pool.retention
        .claimDemandMinutes,
      60,
    );
  });

  test('bad values name their key', () => {
    rejects({ claim_log_retention_day: '0.5' }, /CLAIM_LOG_RETENTION_DAY = "0.5": .*>=1/);
    rejects({ claim_log_retention_day: 'forever' }, /CLAIM_LOG_RETENTION_DAY.*expected a number/);
    rejects({ claim_demand_retention_minute: '-5' }, /CLAIM_DEMAND_RETENTION_MINUTE = "-5"/);
  });
});
