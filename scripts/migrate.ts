/** `npm run migrate [-- up|down]`: creates the pool database if missing and runs migrations. */
import { loadConfig, maskUrlPassword } from '../lib/config/load';
import { ensureDatabase, migrate } from '../lib/pool-state/db';

async function main(): Promise<void> {
  const direction = process.argv[2] ?? 'up';
  if (direction !== 'up' && direction !== 'down') {
    console.error(`usage: migrate [up|down] (got ${JSON.stringify(direction)})`);
    process.exit(2);
  }
  const { databaseUrl } = loadConfig();
  const shown = maskUrlPassword(databaseUrl);
  if (await ensureDatabase(databaseUrl)) console.log(`created database ${shown}`);
  const ran = await migrate(databaseUrl, direction);
  console.log(
    ran.length ? `migrated ${direction}: ${ran.join(', ')}` : 'migrations: already up to date',
  );
}

main().catch((err) => {
  console.error(`migrate failed: ${(err as Error).message}`);
  process.exit(1);
});
