-- Up Migration

-- How many times a claim's hand-off began on its reserved row. A local activity re-run after a
-- worker crash starts again at attempt 1, so the attempt number alone cannot tell a first
-- hand-off (no recovery checks needed) from one that may follow a dead one; this count can.
-- Reset whenever the row is reserved or released.
ALTER TABLE pool_volumes ADD COLUMN handoff_attempts integer NOT NULL DEFAULT 0;

-- Down Migration
ALTER TABLE pool_volumes DROP COLUMN handoff_attempts;
