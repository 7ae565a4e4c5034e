-- Up Migration

-- A pool volume Cinder refuses to delete (attached by someone, stuck in error_deleting…) is
-- `flagged`: kept out of stock, shown to the operator with Cinder's last word, and retried by the
-- status check. delete_attempts / last_error say how often and why it failed.
ALTER TABLE pool_volumes DROP CONSTRAINT pool_volumes_status_check;
ALTER TABLE pool_volumes ADD CONSTRAINT pool_volumes_status_check
  CHECK (status IN ('creating', 'available', 'reserved', 'deleting', 'flagged'));
ALTER TABLE pool_volumes ADD COLUMN delete_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE pool_volumes ADD COLUMN last_error text;

-- At most one reserved row per claim: concurrent attempts of one claim cannot take two volumes
-- (a check-then-take, even in one statement, sees the same "nothing held" in both).
DROP INDEX pool_volumes_reserved_by;
CREATE UNIQUE INDEX pool_volumes_one_per_claim ON pool_volumes (reserved_by)
  WHERE reserved_by IS NOT NULL;

-- One running claim per (tenant project, volume name): a second claim for the same name waits
-- for the first and then finds its volume (`existing`), instead of both taking a pool volume or
-- both creating one. A lock left by a claim that is no longer running is taken over.
CREATE TABLE claim_names (
  project_id  text NOT NULL,
  name        text NOT NULL,
  claim_id    text NOT NULL,
  locked_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, name)
);

-- Down Migration
DROP TABLE claim_names;
DROP INDEX pool_volumes_one_per_claim;
CREATE INDEX pool_volumes_reserved_by ON pool_volumes (reserved_by) WHERE reserved_by IS NOT NULL;
ALTER TABLE pool_volumes DROP COLUMN last_error;
ALTER TABLE pool_volumes DROP COLUMN delete_attempts;
UPDATE pool_volumes SET status = 'deleting' WHERE status = 'flagged';
ALTER TABLE pool_volumes DROP CONSTRAINT pool_volumes_status_check;
ALTER TABLE pool_volumes ADD CONSTRAINT pool_volumes_status_check
  CHECK (status IN ('creating', 'available', 'reserved', 'deleting'));
