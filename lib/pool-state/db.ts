/** PostgreSQL access: one pool per process, created from the configuration's URL. */
import { resolve } from 'node:path';
import pg from 'pg';
import { runner } from 'node-pg-migrate';

export type Db = pg.Pool;

export function createDb(databaseUrl: string, max = 10): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, connectionTimeoutMillis: 10_000 });
  // An idle client losing its server must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return pool;
}

/** Creates the database named in the URL when it does not exist yet (first start). */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!/^[\w-]+$/.test(name)) throw new Error(`unsupported database name ${JSON.stringify(name)}`);
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return false;
    await admin.query(`CREATE DATABASE "${name}"`);
    return true;
  } catch (err) {
    // Two starters at once: the loser sees "already exists", which is what it wanted.
    if ((err as { code?: string }).code === '42P04') return false;
    throw err;
  } finally {
    await admin.end();
  }
}

export const MIGRATIONS_DIR = resolve(__dirname, '../../migrations');

export async function migrate(
  databaseUrl: string,
  direction: 'up' | 'down' = 'up',
  log: (msg: string) => void = () => undefined,
): Promise<string[]> {
  const done = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction,
    count: direction === 'up' ? Infinity : 1,
    migrationsTable: 'pgmigrations',
    checkOrder: true,
    logger: { debug: () => undefined, info: log, warn: log, error: log },
  });
  return done.map((m) => m.name);
}
