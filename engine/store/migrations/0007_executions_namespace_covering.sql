-- The executions listing of a namespace (the dashboard's page) reads the index on (namespace, seq) in
-- order. Holding the listed columns in the index answers the page from the index alone: a first page
-- read from the disk takes as many page reads as the unfiltered listing's, instead of one more table
-- page for every few rows. Keep the columns in step with `select_executions_part` (sql/executions.sql).
DROP INDEX IF EXISTS executions_namespace;
CREATE INDEX executions_namespace ON executions
    (namespace, seq, id, flow_id, flow_revision, state, start_date, end_date, labels, parent_id, trigger_type);
