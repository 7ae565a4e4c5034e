-- Up Migration

-- The seed's backup_volumes table, plus what correctness needs: the deterministic name is the
-- idempotency key of a create (a retried create finds its volume by name instead of making a
-- second one), and a reservation records which claim holds the row and since when.
CREATE TABLE pool_volumes (
  id           bigserial PRIMARY KEY,
  volume_id    text UNIQUE,
  name         text NOT NULL UNIQUE,
  type         text NOT NULL,
  os           text NOT NULL,
  snapshot_id  text NOT NULL,
  volume_type  text,
  size_gb      integer CHECK (size_gb > 0),
  status       text NOT NULL DEFAULT 'creating'
               CHECK (status IN ('creating', 'available', 'reserved', 'deleting')),
  reserved_by  text,
  reserved_at  timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pool_volumes_reservation CHECK ((status = 'reserved') = (reserved_by IS NOT NULL))
);
CREATE INDEX pool_volumes_pick ON pool_volumes (type, os, status, created_at);
CREATE INDEX pool_volumes_reserved_by ON pool_volumes (reserved_by) WHERE reserved_by IS NOT NULL;

-- The seed's os table (rebuilt by sync-os, refreshed by every fill): which snapshot is the
-- current image of an OS for a pool volume type, and the real Cinder type of its source volume.
CREATE TABLE os_images (
  os             text NOT NULL,
  type           text NOT NULL,
  snapshot_id    text NOT NULL,
  snapshot_name  text NOT NULL,
  version        text NOT NULL DEFAULT '',
  volume_type    text NOT NULL,
  size_gb        integer NOT NULL CHECK (size_gb > 0),
  synced_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (os, type)
);

-- Down Migration
DROP TABLE os_images;
DROP TABLE pool_volumes;
