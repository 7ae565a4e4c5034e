-- Up Migration

-- Every claim the API answered (201 or 422), for the dashboard: hit ratio, latency by outcome,
-- recent claims. Written after the answer is out, off the claim's path; a retried request
-- replaces its row.
CREATE TABLE claim_log (
  request_id       text PRIMARY KEY,
  workflow_id      text NOT NULL,
  project_id       text NOT NULL,
  os               text,
  volume_type      text NOT NULL,
  outcome          text NOT NULL,
  http_status      integer NOT NULL,
  seconds          double precision,
  fallback_reason  text,
  at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX claim_log_at ON claim_log (at);

-- Down Migration
DROP TABLE claim_log;
