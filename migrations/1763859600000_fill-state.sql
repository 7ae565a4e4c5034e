-- Up Migration

-- When Cinder was asked to create the volume (the rate limiter's slot) and when it became
-- available: the operator's view of refill lead time, and the rate-limit test's evidence.
ALTER TABLE pool_volumes ADD COLUMN requested_at timestamptz;
ALTER TABLE pool_volumes ADD COLUMN ready_at timestamptz;

-- A global spacing between volume creations, shared by every worker: each create takes the next
-- slot, at least `interval` after the previous one.
CREATE TABLE rate_limits (
  name     text PRIMARY KEY,
  last_at  timestamptz NOT NULL
);

-- Tagged volumes in Cinder that the pool table does not know: acted on only when seen in two
-- consecutive reconcile passes (a create in flight is never mistaken for a leak).
CREATE TABLE leak_sightings (
  volume_id   text PRIMARY KEY,
  name        text NOT NULL,
  first_pass  bigint NOT NULL,
  last_pass   bigint NOT NULL,
  seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE reconcile_pass;

-- What each fill / check / drain run did and why it stopped: the operator's record.
CREATE TABLE pool_runs (
  id           bigserial PRIMARY KEY,
  kind         text NOT NULL,
  workflow_id  text NOT NULL,
  run_id       text NOT NULL UNIQUE,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  summary      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX pool_runs_recent ON pool_runs (kind, started_at DESC);

-- Down Migration
DROP TABLE pool_runs;
DROP SEQUENCE reconcile_pass;
DROP TABLE leak_sightings;
DROP TABLE rate_limits;
ALTER TABLE pool_volumes DROP COLUMN ready_at;
ALTER TABLE pool_volumes DROP COLUMN requested_at;
