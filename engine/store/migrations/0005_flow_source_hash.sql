-- The SHA-256 of the current revision's source, so that an engine starting again recognises an
-- unchanged flow file by its content alone and stores nothing for it. NULL until the flow is next
-- saved (rows from before this version).
ALTER TABLE flows ADD COLUMN source_hash TEXT;
