-- Up Migration

-- Pools per availability zone. A volume made from a snapshot lives in the snapshot's zone
-- (Cinder's cloned_volume_same_az), and Nova with cross_az_attach = False boots only from a
-- volume of the server's zone: so a pool is (volume type, OS, zone), each zone filled from its
-- own snapshot. '' is "no zone configured": Cinder's default zone, the pool of before.
ALTER TABLE pool_volumes ADD COLUMN zone text NOT NULL DEFAULT '';
DROP INDEX pool_volumes_pick;
CREATE INDEX pool_volumes_pick ON pool_volumes (type, os, zone, status, created_at);

ALTER TABLE os_images ADD COLUMN zone text NOT NULL DEFAULT '';
ALTER TABLE os_images DROP CONSTRAINT os_images_pkey;
ALTER TABLE os_images ADD PRIMARY KEY (os, type, zone);

ALTER TABLE claim_demand ADD COLUMN zone text NOT NULL DEFAULT '';
DROP INDEX claim_demand_pool_at;
CREATE INDEX claim_demand_pool_at ON claim_demand (type, os, zone, at);

ALTER TABLE pool_lead_times ADD COLUMN zone text NOT NULL DEFAULT '';
DROP INDEX pool_lead_times_pool_at;
CREATE INDEX pool_lead_times_pool_at ON pool_lead_times (type, os, zone, at);

ALTER TABLE claim_log ADD COLUMN zone text;

-- Reserving takes the zone too: a claim for az-2 never gets an az-1 row, whatever the snapshot.
-- The four-argument function stays for the claims still pinned to the previous build.
CREATE FUNCTION reserve_pool_volume(p_type text, p_os text, p_zone text, p_claim text, p_snapshot text)
RETURNS SETOF pool_volumes LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('reserve:' || p_claim, 0));
  RETURN QUERY SELECT * FROM pool_volumes WHERE reserved_by = p_claim LIMIT 1;
  IF FOUND THEN RETURN; END IF;
  RETURN QUERY
    UPDATE pool_volumes
       SET status = 'reserved', reserved_by = p_claim, reserved_at = now(), updated_at = now(),
           handoff_state = 'reserved', transfer_id = NULL
     WHERE id = (
           SELECT id FROM pool_volumes
            WHERE type = p_type AND os = p_os AND zone = p_zone AND status = 'available'
              AND volume_id IS NOT NULL AND (p_snapshot IS NULL OR snapshot_id = p_snapshot)
            ORDER BY created_at, id
            FOR UPDATE SKIP LOCKED
            LIMIT 1)
       AND status = 'available'
    RETURNING *;
END $$;

-- Down Migration
-- Drain zoned stock first (`pool drain`): down, every zone's rows fold into one (type, OS) pool.
DROP FUNCTION reserve_pool_volume(text, text, text, text, text);
ALTER TABLE claim_log DROP COLUMN zone;
DROP INDEX pool_lead_times_pool_at;
ALTER TABLE pool_lead_times DROP COLUMN zone;
CREATE INDEX pool_lead_times_pool_at ON pool_lead_times (type, os, at);
DROP INDEX claim_demand_pool_at;
ALTER TABLE claim_demand DROP COLUMN zone;
CREATE INDEX claim_demand_pool_at ON claim_demand (type, os, at);
DELETE FROM os_images WHERE zone <> '';
ALTER TABLE os_images DROP CONSTRAINT os_images_pkey;
ALTER TABLE os_images DROP COLUMN zone;
ALTER TABLE os_images ADD PRIMARY KEY (os, type);
DROP INDEX pool_volumes_pick;
ALTER TABLE pool_volumes DROP COLUMN zone;
CREATE INDEX pool_volumes_pick ON pool_volumes (type, os, status, created_at);
