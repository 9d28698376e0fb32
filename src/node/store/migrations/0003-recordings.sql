-- Recordings: one Matroska/WebM file per publisher session (audio + video), written as it arrives.
-- Times are UTC milliseconds since the epoch; paths are relative to the data directory.

CREATE TABLE recordings (
  id               TEXT PRIMARY KEY,
  case_id          TEXT NOT NULL REFERENCES cases (id),
  session_id       TEXT NOT NULL,
  role             TEXT NOT NULL,
  -- the file to play: the live file once finalised, or the repaired copy after a crash
  path             TEXT NOT NULL,
  -- after a repair: the file as the crash left it, kept untouched
  original_path    TEXT,
  container        TEXT NOT NULL CHECK (container IN ('webm','matroska')),
  -- JSON array: [{number, kind, codec, frames, width, height, ...}]
  tracks           TEXT NOT NULL DEFAULT '[]',
  -- wall-clock time of media time 0, and of the end of the last frame
  started_at       INTEGER NOT NULL,
  ended_at         INTEGER,
  duration_ms      INTEGER,
  bytes            INTEGER,
  sha256           TEXT,
  original_sha256  TEXT,
  status           TEXT NOT NULL DEFAULT 'recording'
                   CHECK (status IN ('recording','finished','truncated','repaired','failed')),
  -- why a recording is truncated or failed
  note             TEXT,
  erased_at        INTEGER
);
CREATE INDEX recordings_case ON recordings (case_id, started_at);
CREATE INDEX recordings_open ON recordings (status) WHERE status = 'recording';

-- Per-case media state: a legal hold exempts the case from retention and erasure; an erased
-- case keeps its record and timeline, its media files are gone.
CREATE TABLE case_media (
  case_id       TEXT PRIMARY KEY REFERENCES cases (id),
  hold_reason   TEXT,
  hold_by       TEXT,
  hold_at       INTEGER,
  erased_at     INTEGER,
  erased_by     TEXT,
  erase_reason  TEXT
);
