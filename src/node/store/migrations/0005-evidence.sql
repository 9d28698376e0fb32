-- Case data exports and reports (`returncam export cases`, `returncam report`).

-- The network quality a media session measured, reported by the pages (WebRTC getStats) or by the
-- bench clients. NULL until something reports it: the node does not measure these by itself.
ALTER TABLE sessions ADD COLUMN rtt_ms REAL;        -- round-trip time, ms
ALTER TABLE sessions ADD COLUMN loss_ratio REAL;    -- packets lost / packets expected, 0..1
ALTER TABLE sessions ADD COLUMN freeze_ratio REAL;  -- time the video was frozen / time shown, 0..1
ALTER TABLE sessions ADD COLUMN quality_at INTEGER; -- when the numbers were last reported (UTC ms)

-- Exports and reports filter on the creation time and the warehouse.
CREATE INDEX cases_created ON cases (created_at);
CREATE INDEX cases_warehouse ON cases (warehouse_id, created_at);
