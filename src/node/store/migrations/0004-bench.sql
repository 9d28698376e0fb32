-- Benchmark results (`returncam bench run | capacity | probe`), kept so `bench list` and
-- `bench compare` can find them. `result` is the versioned JSON the command printed with --json;
-- the columns beside it are copies for listing and filtering.
CREATE TABLE bench_runs (
  id           TEXT PRIMARY KEY,
  kind         TEXT NOT NULL CHECK (kind IN ('run','capacity','probe')),
  started_at   INTEGER NOT NULL,
  profile      TEXT,
  mode         TEXT,
  sessions     INTEGER,
  duration_ms  INTEGER,
  p50_ms       REAL,
  p95_ms       REAL,
  p99_ms       REAL,
  target_ms    INTEGER,
  pass         INTEGER CHECK (pass IN (0, 1)),
  result       TEXT NOT NULL
);
CREATE INDEX bench_runs_started ON bench_runs (started_at);
CREATE INDEX bench_runs_profile ON bench_runs (profile, started_at);
