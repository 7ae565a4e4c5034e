/** PostgreSQL access: one pool per process, created from the configuration's URL. */
import { resolve } from 'node:path';
import pg from 'pg';
import { runner } from 'node-pg-migrate';

export type Db = pg.Pool;

/**
 * Bounds on every session: no statement runs longer than STATEMENT_TIMEOUT_MS (the pool's are
 * single-row updates and small reads), no session sits in a transaction forever, and TCP
 * keepalive notices a server that went away while a session was idle.
 */
export const STATEMENT_TIMEOUT_MS = 30_000;

export function createDb(databaseUrl: string, max = 10): Db {
  return survivingServerLoss(
    new pg.Pool({
      connectionString: databaseUrl,
      max,
      connectionTimeoutMillis: 10_000,
      keepAlive: true,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      idle_in_transaction_session_timeout: 60_000,
    }),
  );
}

/**
 * A PostgreSQL restart must not crash the process. The pool listens for errors on idle clients
 * only; a checked-out client that is between queries (a lock session held across Cinder calls)
 * would emit an unhandled 'error' and take the worker down. Every client gets a listener for
 * its whole life; a broken client fails its next query and is dropped when released.
 */
export function survivingServerLoss(pool: pg.Pool): pg.Pool {
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
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
