-- Up Migration

-- Reserving a pool row for a claim, with the claim's twin attempts serialized: a local activity
-- re-run (its workflow task timed out while the first run went on) reserves at the same moment
-- as the first. In one statement both saw "nothing held" and the loser, skipping the row its
-- twin had locked, found no row at all and fell back to plain creation while its twin's row
-- stayed reserved. Here the claim's transaction lock comes first, and each statement of the
-- function sees what was committed before it ran: the second twin finds the first one's row.
CREATE FUNCTION reserve_pool_volume(p_type text, p_os text, p_claim text, p_snapshot text)
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
            WHERE type = p_type AND os = p_os AND status = 'available' AND volume_id IS NOT NULL
              AND (p_snapshot IS NULL OR snapshot_id = p_snapshot)
            ORDER BY created_at, id
            FOR UPDATE SKIP LOCKED
            LIMIT 1)
       AND status = 'available'
    RETURNING *;
END $$;

-- Down Migration
DROP FUNCTION reserve_pool_volume(text, text, text, text);
