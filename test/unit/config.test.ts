/** Configuration: the seed's INI, our example, overrides and clear rejections. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../lib/config/load';
import { tlsOptions } from '../../lib/temporal/connect';
import { compareVersions, parseSnapshotNameRule } from '../../lib/config/snapshot-name-rule';

const seedIni = readFileSync('config/seed-example.ini', 'utf8');
const noEnv = {};

function rejects(ini: string, pattern: RegExp, env: NodeJS.ProcessEnv = noEnv): void {
  assert.throws(
    () => loadConfig({ iniText: ini, env }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('configuration', () => {
  test("the seed's example INI parses to the seed's targets and intervals", () => {
    const c = loadConfig({ iniText: seedIni, env: noEnv });
    assert.equal(c.concurrency, 2);
    assert.deepEqual(c.pool.volumeTypes, ['sas']);
    assert.deepEqual(c.pool.osMore, ['Debian8 64bit', 'Debian9 64bit']);
    assert.equal(c.pool.osLess.length, 9);
    assert.equal(c.pool.osLess[0], 'Freebsd9.3 64bit');
    assert.equal(c.pool.fillEveryMinutes, 20);
    assert.equal(c.pool.checkStateEveryMinutes, 5);
    assert.equal(c.pool.createIntervalSeconds, 40);
    assert.equal(c.pool.targets.length, 11);
    // The seed's counts are floors; demand may raise a pool to 3 × its floor by default.
    // The seed names no zones: one pool per (type, OS) in Cinder's default zone ('').
    assert.deepEqual(c.pool.targets[0], {
      os: 'Debian8 64bit',
      volumeType: 'sas',
      zone: '',
      target: 10,
      cap: 30,
    });
    assert.deepEqual(
      c.pool.targets.find((t) => t.os === 'Windows2016 64bit'),
      { os: 'Windows2016 64bit', volumeType: 'sas', zone: '', target: 2, cap: 6 },
    );
    assert.deepEqual(c.pool.zones, []);
    assert.equal(c.pool.defaultZone, '');
    assert.equal(c.pool.policy.demand.enabled, true);
    assert.equal(c.pool.policy.tenantShare, undefined);
    assert.equal(c.pool.policy.maxIdleMinutes, undefined);
    assert.equal(
      c.pool.targets.reduce((n, t) => n + t.target, 0),
      2 * 10 + 9 * 2,
    );
    assert.equal(c.auth.strategy, 'keystone');
    assert.equal(c.auth.user, 'admin');
    assert.equal(c.auth.password, 'admin');
  });

  test('the shipped stack config targets every type × OS × zone', () => {
    const c = loadConfig({ file: 'config/pool.ini', env: noEnv });
    assert.deepEqual(c.pool.volumeTypes, ['sas', 'ssd']);
    assert.deepEqual(c.pool.zones, ['az-1', 'az-2']);
    assert.equal(c.pool.defaultZone, 'az-1', 'the first zone when none is named');
    assert.equal(c.pool.targets.length, 2 * 11 * 2);
    // No zone of its own counts: both have the [volumes_backup] ones.
    const deb = (zone: string) =>
      c.pool.targets.find(
        (t) => t.os === 'Debian8 64bit' && t.volumeType === 'ssd' && t.zone === zone,
      )?.target;
    assert.deepEqual([deb('az-1'), deb('az-2')], [10, 10]);
    assert.equal(c.auth.strategy, 'noauth');
    assert.match(c.auth.projectId ?? '', /^[0-9a-f]{32}$/);
  });

  test('environment overrides win, by POOL__SECTION__KEY and by well-known names', () => {
    const c = loadConfig({
      iniText: seedIni,
      env: {
        POOL__VOLUMES_BACKUP__BACKUP_NUMS_MORE: '3',
        POOL__VOLUMES__CONCURRENCY: '5',
        DATABASE_URL: 'postgres://u:p@db.example:5432/x',
        TEMPORAL_ADDRESS: 'temporal:7233',
      },
    });
    assert.equal(c.pool.targets[0]?.target, 3);
    assert.equal(c.concurrency, 5);
    assert.equal(c.databaseUrl, 'postgres://u:p@db.example:5432/x');
    assert.equal(c.temporal.address, 'temporal:7233');
  });

  test('a malformed number is rejected naming the key and the value', () => {
    rejects(
      seedIni.replace('backup_nums_more=10', 'backup_nums_more=ten'),
      /\[volumes_backup\] backup_nums_more = "ten".*whole number/,
    );
    rejects(seedIni.replace('concurrency=2', 'concurrency=0'), /\[volumes\] concurrency = "0"/);
    rejects(seedIni, /environment POOL__VOLUMES_BACKUP__BACKUP_FREQUENCY_MINUTE = "soon"/, {
      POOL__VOLUMES_BACKUP__BACKUP_FREQUENCY_MINUTE: 'soon',
    });
  });

  test('several problems are reported together, secrets are not echoed', () => {
    const bad = seedIni
      .replace('concurrency=2', 'concurrency=x')
      .replace('backup_nums_less=2', 'backup_nums_less=-1');
    rejects(bad, /concurrency.*\n.*backup_nums_less/s);
    rejects(seedIni, /\[database\] url|DATABASE_URL = <secret>/, { DATABASE_URL: 'mysql://nope' });
  });

  test('unknown keys, empty type lists, an OS in both lists and missing auth are rejected', () => {
    rejects(
      seedIni.replace('backup_nums_less=2', 'backup_nums_less=2\nbackup_num_more=3'),
      /unknown configuration key.*backup_num_more/,
    );
    rejects(
      seedIni.replace('volume_backup_types=sas', 'volume_backup_types= , '),
      /volume_backup_types.*at least one/,
    );
    rejects(seedIni.replace('Freebsd9.3 64bit,', 'Debian8 64bit,'), /both .*Debian8 64bit/);
    rejects(seedIni.replace('auth_url=http://127.0.0.1:5000/v3', ''), /auth_url is required/);
    rejects('[auth_args]\nauth_strategy=noauth\ncinder_url=http://c:8776/v3', /auth_project_id/);
    rejects('[auth_args]\nauth_strategy=ldap', /auth_strategy = "ldap"/);
    rejects(
      seedIni.replace('interval_second=40', 'interval_second=40\nsnapshot_name_rule = {image}'),
      /snapshot_name_rule: unknown placeholder \{image\}/,
    );
  });

  test('a missing file is a clear error', () => {
    assert.throws(
      () => loadConfig({ file: 'config/nope.ini', env: noEnv }),
      /cannot read configuration file config\/nope\.ini/,
    );
  });
});

describe('availability zones', () => {
  /** The seed's INI with these lines added to [volumes_backup], and these sections at the end. */
  const zoned = (keys: string, sections = '') =>
    seedIni.replace('backup_nums_less=2', `backup_nums_less=2\n${keys}`) + `\n${sections}\n`;
  const TWO = 'availability_zones = az-1, az-2';

  test('availability_zones makes the targets per (type, OS, zone); the first zone is the default', () => {
    const plain = loadConfig({ iniText: seedIni, env: noEnv });
    const c = loadConfig({ iniText: zoned(TWO), env: noEnv });
    assert.deepEqual(c.pool.zones, ['az-1', 'az-2']);
    assert.equal(c.pool.defaultZone, 'az-1');
    assert.equal(c.pool.targets.length, 2 * plain.pool.targets.length);
    for (const zone of ['az-1', 'az-2'])
      assert.deepEqual(
        c.pool.targets.filter((t) => t.zone === zone),
        plain.pool.targets.map((t) => ({ ...t, zone })),
        `every (type, OS) with the same counts in ${zone}`,
      );
    assert.ok(!c.pool.targets.some((t) => t.zone === ''), 'no zone-less pool once zones are named');
    // The environment names them as well.
    const env = loadConfig({
      iniText: seedIni,
      env: { POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: 'az-2' },
    });
    assert.deepEqual(
      [env.pool.zones, env.pool.defaultZone, [...new Set(env.pool.targets.map((t) => t.zone))]],
      [['az-2'], 'az-2', ['az-2']],
    );
  });

  test('default_availability_zone picks another of the zones', () => {
    const c = loadConfig({
      iniText: zoned(`${TWO}\ndefault_availability_zone = az-2`),
      env: noEnv,
    });
    assert.equal(c.pool.defaultZone, 'az-2');
    assert.deepEqual(c.pool.zones, ['az-1', 'az-2'], 'the order of the list is kept');
  });

  test('[zone az-2] backup_nums_more = 1 overrides that zone only', () => {
    const c = loadConfig({ iniText: zoned(TWO, '[zone az-2]\nbackup_nums_more = 1'), env: noEnv });
    const of = (os: string, zone: string) =>
      c.pool.targets.find((t) => t.os === os && t.zone === zone);
    assert.deepEqual(of('Debian8 64bit', 'az-2'), {
      os: 'Debian8 64bit',
      volumeType: 'sas',
      zone: 'az-2',
      target: 1,
      cap: 3,
    });
    assert.deepEqual(of('Debian8 64bit', 'az-1'), {
      os: 'Debian8 64bit',
      volumeType: 'sas',
      zone: 'az-1',
      target: 10,
      cap: 30,
    });
    // backup_nums_less is not overridden: the [volumes_backup] count in both zones.
    assert.equal(of('Windows2016 64bit', 'az-2')?.target, 2);
    assert.equal(of('Windows2016 64bit', 'az-1')?.target, 2);
    const less = loadConfig({
      iniText: zoned(TWO, '[zone az-1]\nbackup_nums_less = 0'),
      env: noEnv,
    });
    assert.deepEqual(
      ['az-1', 'az-2'].map(
        (zone) =>
          less.pool.targets.find((t) => t.os === 'Windows2016 64bit' && t.zone === zone)?.target,
      ),
      [0, 2],
    );
  });

  test('a section of a zone not served is unused (the environment may narrow the zones)', () => {
    const narrowed = loadConfig({
      iniText: zoned(TWO, '[zone az-2]\nbackup_nums_more = 1'),
      env: { ...noEnv, POOL__VOLUMES_BACKUP__AVAILABILITY_ZONES: 'az-1' },
    });
    assert.deepEqual(narrowed.pool.zones, ['az-1']);
    assert.ok(narrowed.pool.targets.every((t) => t.zone === 'az-1'));
    const none = loadConfig({
      iniText: seedIni + '\n[zone az-1]\nbackup_nums_more = 1\n',
      env: noEnv,
    });
    assert.ok(none.pool.targets.every((t) => t.zone === ''));
    // Its keys are checked all the same.
    rejects(
      zoned(TWO, '[zone az-3]\nbackup_nums_more = many'),
      /\[zone az-3\] backup_nums_more = "many": expected a whole number/,
    );
  });

  test('a default zone not in the list and a zone named twice are refused', () => {
    rejects(
      zoned(`${TWO}\ndefault_availability_zone = az-9`),
      /\[volumes_backup\] default_availability_zone = az-9 is not one of availability_zones \(az-1, az-2\)/,
    );
    rejects(
      zoned('default_availability_zone = az-1'),
      /\[volumes_backup\] default_availability_zone = az-1 needs availability_zones/,
    );
    rejects(
      zoned('availability_zones = az-1, az-2, az-1'),
      /\[volumes_backup\] availability_zones lists a zone twice/,
    );
  });

  test('a zone section takes only whole counts of backup_nums_more and backup_nums_less', () => {
    rejects(
      zoned(TWO, '[zone az-2]\nbackup_nums_max = 9'),
      /\[zone az-2\] backup_nums_max: unknown key/,
    );
    rejects(
      zoned(TWO, '[zone az-2]\nbackup_nums_more = ten'),
      /\[zone az-2\] backup_nums_more = "ten": expected a whole number/,
    );
  });
});

describe('snapshot naming rule', () => {
  const rule = parseSnapshotNameRule('os-image {os} {type} v{version}');

  test('matches an OS name with spaces and dots literally, and yields the version', () => {
    assert.equal(rule.match('os-image Freebsd9.3 64bit sas v12', 'Freebsd9.3 64bit', 'sas'), '12');
    assert.equal(rule.match('os-image Freebsd9.3 64bit ssd v12', 'Freebsd9.3 64bit', 'sas'), null);
    assert.equal(rule.match('os-image Freebsd9x3 64bit sas v12', 'Freebsd9.3 64bit', 'sas'), null);
    assert.equal(rule.match('os-image Debian8 64bit sas v1.2', 'Debian8 64bit', 'sas'), '1.2');
    assert.equal(rule.match('os-image Debian8 64bit sas vX', 'Debian8 64bit', 'sas'), null);
  });

  test('formats what it parses', () => {
    const name = rule.format('Centos7.3 64bit', 'ssd', '20261123');
    assert.equal(name, 'os-image Centos7.3 64bit ssd v20261123');
    assert.equal(rule.match(name, 'Centos7.3 64bit', 'ssd'), '20261123');
  });

  test('a rule without type or version matches every type, version empty', () => {
    const r = parseSnapshotNameRule('{os}-golden');
    assert.equal(r.match('Debian9 64bit-golden', 'Debian9 64bit', 'anything'), '');
    assert.equal(r.hasType, false);
  });

  test('rejects rules without {os} or with repeated placeholders', () => {
    assert.throws(() => parseSnapshotNameRule('image-{type}'), /\{os\} exactly once/);
    assert.throws(() => parseSnapshotNameRule('{os}{os}'), /\{os\} exactly once/);
    assert.throws(() => parseSnapshotNameRule('{os} {version} {version}'), /may appear once/);
  });

  test('versions compare numerically', () => {
    assert.ok(compareVersions('10', '9') > 0);
    assert.ok(compareVersions('1.10', '1.9') > 0);
    assert.equal(compareVersions('2.0', '2'), 0);
  });
});

describe('OpenStack conventions: clouds.yaml (OS_CLOUD) and OS_* variables', () => {
  const dir = mkdtempSync(join(tmpdir(), 'clouds-'));
  const file = join(dir, 'clouds.yaml');
  writeFileSync(
    file,
    [
      'clouds:',
      '  lab:',
      '    region_name: RegionTwo',
      '    auth:',
      '      auth_url: http://127.0.0.1:5000/v3',
      '      username: pool-svc',
      '      password: yaml-secret',
      '      project_name: warmpool',
      '      user_domain_name: Default',
      '      project_domain_name: Default',
      '  broken:',
      '    auth:',
      '      auth_url: http://127.0.0.1:5000/v3',
      '      project_id: not-hex',
      '      password: yaml-secret',
    ].join('\n'),
  );
  const env = (over: NodeJS.ProcessEnv = {}) => ({
    OS_CLIENT_CONFIG_FILE: file,
    OS_CLOUD: 'lab',
    ...over,
  });

  test('the named cloud supplies the auth keys (keystone) over the INI', () => {
    const c = loadConfig({ iniText: seedIni, env: env() });
    assert.equal(c.auth.strategy, 'keystone');
    assert.equal(c.auth.authUrl, 'http://127.0.0.1:5000/v3');
    assert.equal(c.auth.user, 'pool-svc');
    assert.equal(c.auth.password, 'yaml-secret');
    assert.equal(c.auth.project, 'warmpool');
    assert.equal(c.auth.region, 'RegionTwo');
  });

  test('OS_* variables win over clouds.yaml; POOL__ variables over both', () => {
    const c = loadConfig({
      iniText: seedIni,
      env: env({ OS_USERNAME: 'from-env', POOL__AUTH_ARGS__AUTH_PASSWD: 'pool-env' }),
    });
    assert.equal(c.auth.user, 'from-env');
    assert.equal(c.auth.password, 'pool-env');
  });

  test('a cloud over the noauth INI takes its group: Keystone, the catalog’s Cinder, its project', () => {
    const stack = readFileSync('config/pool.ini', 'utf8');
    const c = loadConfig({ iniText: stack, env: env() });
    assert.equal(c.auth.strategy, 'keystone');
    assert.equal(c.auth.cinderUrl, undefined, 'the INI’s noauth Cinder URL is not an override');
    assert.equal(c.auth.projectId, undefined, 'the INI’s project id gives way to the cloud’s name');
    assert.equal(c.auth.project, 'warmpool');
    assert.equal(c.plainCreateIn, 'pool', 'tenants cannot read the pool’s snapshots here');
    // A POOL__ variable still decides; an empty one unsets.
    const pinned = loadConfig({
      iniText: stack,
      env: env({
        POOL__AUTH_ARGS__CINDER_URL: 'http://127.0.0.1:8777/v3',
        POOL__AUTH_ARGS__AUTH_PROJECT_ID: 'ab'.repeat(16),
      }),
    });
    assert.equal(pinned.auth.cinderUrl, 'http://127.0.0.1:8777/v3');
    assert.equal(pinned.auth.projectId, 'ab'.repeat(16));
    const unset = loadConfig({
      iniText: stack,
      env: {
        POOL__AUTH_ARGS__CINDER_URL: '',
        POOL__AUTH_ARGS__AUTH_STRATEGY: 'keystone',
        OS_AUTH_URL: 'http://127.0.0.1:5000/v3',
      },
    });
    assert.equal(unset.auth.cinderUrl, undefined);
    // Without any cloud the stack's INI stays noauth.
    const plain = loadConfig({ iniText: stack, env: noEnv });
    assert.equal(plain.auth.strategy, 'noauth');
    assert.equal(plain.auth.cinderUrl, 'http://127.0.0.1:8776/v3');
    assert.equal(plain.plainCreateIn, 'tenant');
    const forced = loadConfig({
      iniText: stack,
      env: { POOL__VOLUMES__PLAIN_CREATE_IN: 'pool' },
    });
    assert.equal(forced.plainCreateIn, 'pool');
    rejects(stack, /POOL__VOLUMES__PLAIN_CREATE_IN = "nowhere": .*auto/, {
      POOL__VOLUMES__PLAIN_CREATE_IN: 'nowhere',
    });
  });

  test('a cloud that is not there names the file and the clouds it has', () => {
    rejects(
      seedIni,
      /clouds\.yaml: no cloud "nope" \(OS_CLOUD\); it has: lab, broken/,
      env({ OS_CLOUD: 'nope' }),
    );
  });

  test('a bad value names the file and its path, and never shows the password', () => {
    assert.throws(
      () => loadConfig({ iniText: seedIni, env: env({ OS_CLOUD: 'broken' }) }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /clouds\.yaml clouds\.broken\.auth\.project_id = "not-hex"/);
        assert.doesNotMatch(err.message, /yaml-secret/);
        return true;
      },
    );
  });

  test('a domain given by id alone is refused with the key to use instead', () => {
    const idOnly = join(dir, 'id-only.yaml');
    writeFileSync(
      idOnly,
      'clouds:\n  lab:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      user_domain_id: default\n',
    );
    rejects(
      seedIni,
      /clouds\.lab\.auth\.user_domain_id is not supported; give user_domain_name/,
      env({ OS_CLIENT_CONFIG_FILE: idOnly }),
    );
  });

  test('OS_CLOUD without any clouds.yaml says where it looked', () => {
    rejects(seedIni, /OS_CLOUD=lab but no clouds\.yaml found/, {
      OS_CLOUD: 'lab',
      OS_CLIENT_CONFIG_FILE: join(dir, 'missing.yaml'),
      HOME: dir,
    });
  });
});

describe('TLS to Temporal and the API keys’ dev mode', () => {
  const stackIni = readFileSync('config/pool.ini', 'utf8');
  const load = (env: Record<string, string>) => loadConfig({ iniText: stackIni, env });

  test('TLS is off by default and on with tls = true or any of its files', () => {
    assert.equal(load({}).temporal.tls, undefined);
    assert.deepEqual(load({ POOL__TEMPORAL__TLS: 'true' }).temporal.tls, {
      caFile: undefined,
      certFile: undefined,
      keyFile: undefined,
      serverName: undefined,
    });
    assert.deepEqual(
      load({
        POOL__TEMPORAL__TLS_CA_FILE: '/etc/ca.pem',
        POOL__TEMPORAL__TLS_CERT_FILE: '/etc/c.pem',
        POOL__TEMPORAL__TLS_KEY_FILE: '/etc/c.key',
        POOL__TEMPORAL__TLS_SERVER_NAME: 'temporal',
      }).temporal.tls,
      {
        caFile: '/etc/ca.pem',
        certFile: '/etc/c.pem',
        keyFile: '/etc/c.key',
        serverName: 'temporal',
      },
    );
  });

  test('a client certificate without its key (or the other way round) is refused', () => {
    assert.throws(
      () => load({ POOL__TEMPORAL__TLS_CERT_FILE: '/etc/c.pem' }),
      /\[temporal\] tls_cert_file and tls_key_file go together/,
    );
    assert.throws(() => load({ POOL__TEMPORAL__TLS_KEY_FILE: '/etc/c.key' }), ConfigError);
    assert.throws(
      () => load({ POOL__TEMPORAL__TLS: 'yes' }),
      /POOL__TEMPORAL__TLS = "yes": Invalid option/,
    );
  });

  test('the SDK’s TLS options carry the files’ contents; a missing file names its key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-tls-'));
    writeFileSync(join(dir, 'ca.pem'), 'CA');
    writeFileSync(join(dir, 'c.pem'), 'CERT');
    writeFileSync(join(dir, 'c.key'), 'KEY');
    const tls = tlsOptions({
      caFile: join(dir, 'ca.pem'),
      certFile: join(dir, 'c.pem'),
      keyFile: join(dir, 'c.key'),
      serverName: 'temporal.internal',
    });
    assert.equal(tls?.serverNameOverride, 'temporal.internal');
    assert.equal(tls?.serverRootCACertificate?.toString(), 'CA');
    assert.equal(tls?.clientCertPair?.crt.toString(), 'CERT');
    assert.equal(tls?.clientCertPair?.key.toString(), 'KEY');
    assert.equal(tlsOptions(undefined), undefined);
    assert.throws(
      () => tlsOptions({ certFile: join(dir, 'gone.pem'), keyFile: join(dir, 'c.key') }),
      /\[temporal\] tls_cert_file: cannot read .*gone\.pem/,
    );
  });

  test('allow_example_keys: off by default, on in the local stack’s config, off by environment', () => {
    const noauth = {
      POOL__AUTH_ARGS__CINDER_URL: 'http://cinder:8776/v3',
      POOL__AUTH_ARGS__AUTH_PROJECT_ID: '0123456789abcdef0123456789abcdef',
    };
    assert.equal(loadConfig({ iniText: '', env: noauth }).api.allowExampleKeys, false);
    assert.equal(load({}).api.allowExampleKeys, true);
    assert.equal(load({ POOL__API__ALLOW_EXAMPLE_KEYS: 'false' }).api.allowExampleKeys, false);
  });
});
