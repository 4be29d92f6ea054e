-- The attempt that wrote each log line. Lines kept from before have 0:
-- which attempt wrote them is not known.
ALTER TABLE logs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
