-- The statements of sql/executions.sql that PostgreSQL needs written otherwise, by the same names.

-- A listing's statements read one snapshot.
-- name: begin_read
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;

-- PostgreSQL 15 wants a name for a sub-select in FROM, and finds a flow's newest execution on the
-- flow's index by itself.
-- name: select_last_states
WITH RECURSIVE flows_run (namespace, flow_id) AS (
    SELECT * FROM (SELECT namespace, flow_id FROM executions ORDER BY namespace, flow_id LIMIT 1) AS first
    UNION ALL
    SELECT e.namespace, e.flow_id
    FROM flows_run AS f JOIN executions AS e ON e.seq = coalesce(
        (SELECT seq FROM executions WHERE namespace = f.namespace AND flow_id > f.flow_id
         ORDER BY flow_id LIMIT 1),
        (SELECT seq FROM executions WHERE namespace > f.namespace ORDER BY namespace, flow_id LIMIT 1))
)
SELECT f.namespace, f.flow_id,
    (SELECT e.state FROM executions AS e
     WHERE e.namespace = f.namespace AND e.flow_id = f.flow_id ORDER BY e.seq DESC LIMIT 1)
FROM flows_run AS f;
