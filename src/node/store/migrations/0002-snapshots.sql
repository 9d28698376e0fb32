-- Stills staff take from the live video, kept as evidence.
CREATE TABLE snapshots (
  id          TEXT PRIMARY KEY,
  case_id     TEXT NOT NULL REFERENCES cases (id),
  at          INTEGER NOT NULL,
  taken_by    TEXT NOT NULL,
  mime        TEXT NOT NULL,
  bytes       INTEGER NOT NULL,
  width       INTEGER NOT NULL,
  height      INTEGER NOT NULL,
  sha256      TEXT NOT NULL,
  path        TEXT NOT NULL
);
CREATE INDEX snapshots_case ON snapshots (case_id, at);
