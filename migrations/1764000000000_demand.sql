-- Up Migration

-- One row per system-disk claim that asked the pool (the fast path's reserve step): the demand
-- that raises a pool's target, and per tenant the hits that the optional fair share counts.
CREATE TABLE claim_demand (
  claim_id     text PRIMARY KEY,
  type         text NOT NULL,
  os           text NOT NULL,
  project_id   text NOT NULL,
  hit          boolean NOT NULL,
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX claim_demand_pool_at ON claim_demand (type, os, at);

-- Refill lead times (requested_at → ready_at) outlive the rows they were measured on: a claimed
-- volume's row is deleted, but the pool still needs to know how long a refill takes.
CREATE TABLE pool_lead_times (
  type         text NOT NULL,
  os           text NOT NULL,
  seconds      double precision NOT NULL,
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pool_lead_times_pool_at ON pool_lead_times (type, os, at);

-- Down Migration
DROP TABLE pool_lead_times;
DROP TABLE claim_demand;
