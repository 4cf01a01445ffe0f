-- The statements of sql/flows.sql that PostgreSQL needs written otherwise, by the same names.

-- name: select_flows
SELECT namespace, flow_id, revision, path, updated, deleted, source_hash, trigger_types, checked_with
FROM flows
WHERE deleted = 0 OR ? <> 0 ORDER BY namespace, flow_id;
