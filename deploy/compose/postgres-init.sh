#!/bin/bash
# Run once by the postgres image's entrypoint on an empty data directory
# (/docker-entrypoint-initdb.d): warden's role and the demo application's schema.
#
# Role `warden`: pg_monitor (statistics of every session), pg_read_all_data (pg_dump of `app`),
# pg_signal_backend (the terminate_idle action), CREATEDB (restore drills and restores).
# Table `runs`: the forecasting system's job table (source document 001), watched as a run
# queue; its timestamps are UTC.
set -euo pipefail
# The password is read by psql itself (\set with a backquoted command), so it never appears in
# a process's argv.
psql -v ON_ERROR_STOP=1 -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
\set warden_password `cat /run/secrets/warden/postgres-warden-password`
CREATE ROLE warden LOGIN CREATEDB PASSWORD :'warden_password'
  IN ROLE pg_monitor, pg_read_all_data, pg_signal_backend;

CREATE TABLE runs (
  run_id      bigserial PRIMARY KEY,
  model       text NOT NULL,
  status      text NOT NULL CHECK (status IN ('scheduled', 'running', 'completed', 'failed', 'cancelled')),
  created_at  timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
  start_time  timestamp,
  end_time    timestamp
);
CREATE INDEX runs_status_idx ON runs (status);

-- Finished runs only: nothing writes to this demo table, and a queued or running row would
-- sit there and end up firing RunQueueStalled or LongRunningJob. Insert runs to watch the
-- queue's panels and alerts move.
INSERT INTO runs (model, status, created_at, start_time, end_time) VALUES
  ('sales-daily', 'completed', now() AT TIME ZONE 'UTC' - interval '3 hours',
   now() AT TIME ZONE 'UTC' - interval '3 hours', now() AT TIME ZONE 'UTC' - interval '2 hours'),
  ('inventory', 'failed', now() AT TIME ZONE 'UTC' - interval '1 hour',
   now() AT TIME ZONE 'UTC' - interval '1 hour', now() AT TIME ZONE 'UTC' - interval '50 minutes');
SQL
