/**
 * leak_sightings: pool-tagged volumes no row knows, by reconcile pass. A leak is acted on only
 * when two consecutive passes saw it (a volume whose row is being written is not a leak).
 */
import type { Db } from './db';

export class LeakSightings {
  constructor(private readonly db: Db) {}

  /** A new pass number (a sequence: two reconciles at once never share one). */
  async nextPass(): Promise<number> {
    const { rows } = await this.db.query<{ pass: string }>(
      `SELECT nextval('reconcile_pass') AS pass`,
    );
    return Number(rows[0]?.pass);
  }

  /** The pass that last saw this volume, or null. */
  async lastSeen(volumeId: string): Promise<number | null> {
    const { rows } = await this.db.query<{ last_pass: string }>(
      `SELECT last_pass FROM leak_sightings WHERE volume_id = $1`,
      [volumeId],
    );
    return rows[0] ? Number(rows[0].last_pass) : null;
  }

  /** (Re)starts this volume's sighting at `pass`. */
  async firstSeen(volumeId: string, name: string, pass: number): Promise<void> {
    await this.db.query(
      `INSERT INTO leak_sightings (volume_id, name, first_pass, last_pass) VALUES ($1, $2, $3, $3)
       ON CONFLICT (volume_id) DO UPDATE SET first_pass = $3, last_pass = $3, seen_at = now()`,
      [volumeId, name, pass],
    );
  }

  /** Keeps the sighting alive (a leak that could not be deleted is tried again next pass). */
  async seenAgain(volumeId: string, pass: number): Promise<void> {
    await this.db.query(`UPDATE leak_sightings SET last_pass = $2 WHERE volume_id = $1`, [
      volumeId,
      pass,
    ]);
  }

  async forget(volumeId: string): Promise<void> {
    await this.db.query(`DELETE FROM leak_sightings WHERE volume_id = $1`, [volumeId]);
  }

  /** Sightings this pass did not renew: those volumes are gone or known now. */
  async forgetOlderThan(pass: number): Promise<void> {
    await this.db.query(`DELETE FROM leak_sightings WHERE last_pass < $1`, [pass]);
  }
}
