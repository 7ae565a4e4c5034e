-- Up Migration

-- The check's retention prune deletes claim_demand rows by age across all pools: without an index
-- on `at` alone each batch scans the table (the demand index leads with type and os).
CREATE INDEX IF NOT EXISTS claim_demand_at ON claim_demand (at);

-- Down Migration

DROP INDEX IF EXISTS claim_demand_at;
