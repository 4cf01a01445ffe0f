-- What an engine starting again needs to know of a flow's current revision without parsing it: the
-- types of its triggers (a JSON list), and a fingerprint of what the revision was checked with
-- (engine version, task types, namespace plugin defaults). NULL until the flow is next checked.
ALTER TABLE flows ADD COLUMN trigger_types TEXT;
ALTER TABLE flows ADD COLUMN checked_with TEXT;
