-- Up Migration

-- The hand-off of a reserved row as one fenced state machine. `status = 'reserved'` says the row
-- is held (by `reserved_by`); `handoff_state` says how far its hand-off got:
--   reserved      nothing done in Cinder yet (or undone): the volume is available in the pool
--   transferring  a transfer may exist (`transfer_id` once Cinder named it); no accept yet
--   accepted      the volume is the tenant's; only the rename and the row's removal are left
-- Delivered = the row is gone (recorded in claim_demand). `epoch` is the fencing token: every
-- (re)start of a hand-off or a compensation takes a new one, and every Cinder mutation of theirs
-- is preceded by a compare-and-set on (id, reserved_by, epoch, handoff_state). An attempt whose
-- epoch was taken over makes no further Cinder mutation. Survives a PostgreSQL restart, unlike
-- the advisory locks it replaces as the guarantee.
ALTER TABLE pool_volumes DROP COLUMN handoff_attempts;
ALTER TABLE pool_volumes ADD COLUMN handoff_state text
  CHECK (handoff_state IN ('reserved', 'transferring', 'accepted'));
ALTER TABLE pool_volumes ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE pool_volumes ADD COLUMN transfer_id text;
UPDATE pool_volumes SET handoff_state = 'reserved' WHERE status = 'reserved';
ALTER TABLE pool_volumes DROP CONSTRAINT pool_volumes_reservation;
ALTER TABLE pool_volumes ADD CONSTRAINT pool_volumes_reservation CHECK (
  (status = 'reserved') = (reserved_by IS NOT NULL)
  AND (status = 'reserved') = (handoff_state IS NOT NULL));

-- Down Migration
ALTER TABLE pool_volumes DROP CONSTRAINT pool_volumes_reservation;
ALTER TABLE pool_volumes ADD CONSTRAINT pool_volumes_reservation
  CHECK ((status = 'reserved') = (reserved_by IS NOT NULL));
ALTER TABLE pool_volumes DROP COLUMN transfer_id;
ALTER TABLE pool_volumes DROP COLUMN epoch;
ALTER TABLE pool_volumes DROP COLUMN handoff_state;
ALTER TABLE pool_volumes ADD COLUMN handoff_attempts integer NOT NULL DEFAULT 0;
