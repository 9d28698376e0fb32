-- Cases, links, the append-only hash-chained event log, chat messages and media sessions.
-- Times are UTC milliseconds since the epoch.

CREATE TABLE cases (
  id              TEXT PRIMARY KEY,
  order_id        TEXT NOT NULL,
  sku             TEXT NOT NULL,
  marketplace     TEXT,
  warehouse_id    TEXT,
  reason          TEXT NOT NULL CHECK (reason IN ('damaged','defective','wrong_item','missing_parts','not_as_described','unwanted','other')),
  note            TEXT,
  status          TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open','inspecting','decided','closed')),
  outcome         TEXT CHECK (outcome IN ('refund','replacement','partial_refund','rejected')),
  disposition     TEXT CHECK (disposition IN ('restock','refurbish','dispose','return_to_sender')),
  decision_note   TEXT,
  created_at      INTEGER NOT NULL,
  first_joined_at INTEGER,
  decided_at      INTEGER,
  closed_at       INTEGER
);
CREATE INDEX cases_status ON cases (status, created_at);
CREATE INDEX cases_order ON cases (order_id);

CREATE TABLE links (
  id          TEXT PRIMARY KEY,
  case_id     TEXT NOT NULL REFERENCES cases (id),
  role        TEXT NOT NULL CHECK (role IN ('buyer','staff')),
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  revoked_at  INTEGER
);
CREATE INDEX links_case ON links (case_id, role);

CREATE TABLE events (
  case_id   TEXT NOT NULL REFERENCES cases (id),
  seq       INTEGER NOT NULL,
  at        INTEGER NOT NULL,
  type      TEXT NOT NULL,
  actor     TEXT NOT NULL,
  data      TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL,
  PRIMARY KEY (case_id, seq)
) WITHOUT ROWID;

-- The event log is evidence: it only grows.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE messages (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  case_id    TEXT NOT NULL REFERENCES cases (id),
  client_id  TEXT NOT NULL,
  role       TEXT NOT NULL,
  kind       TEXT NOT NULL CHECK (kind IN ('text','prompt')),
  body       TEXT NOT NULL,
  at         INTEGER NOT NULL,
  event_seq  INTEGER NOT NULL,
  UNIQUE (case_id, client_id)
);

CREATE TABLE sessions (
  id          TEXT PRIMARY KEY,
  case_id     TEXT NOT NULL REFERENCES cases (id),
  role        TEXT NOT NULL,
  direction   TEXT NOT NULL CHECK (direction IN ('publish','subscribe')),
  link_id     TEXT,
  started_at  INTEGER NOT NULL,
  ended_at    INTEGER,
  end_reason  TEXT
);
CREATE INDEX sessions_case ON sessions (case_id, started_at);
