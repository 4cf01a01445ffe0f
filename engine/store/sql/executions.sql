-- Executions and their task runs. An execution's row holds its JSON without the task runs; each
-- task run is a row of its own, `seq` (the rowid) being its creation order.
--
-- The condition "state NOT IN (...terminal states...)" below must stay identical to the WHERE clause
-- of the executions_unfinished index in schema.sql, or SQLite will not use that index.

-- name: upsert_execution
INSERT INTO executions
    (id, namespace, flow_id, flow_revision, state, start_date, end_date, parent_id, trigger_type,
     labels, json)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    namespace = excluded.namespace,
    flow_id = excluded.flow_id,
    flow_revision = excluded.flow_revision,
    state = excluded.state,
    start_date = excluded.start_date,
    end_date = excluded.end_date,
    parent_id = excluded.parent_id,
    trigger_type = excluded.trigger_type,
    labels = excluded.labels,
    json = excluded.json;

-- name: upsert_task_run
INSERT INTO task_runs (id, execution_id, task_id, parent_id, value, state, json) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    execution_id = excluded.execution_id,
    task_id = excluded.task_id,
    parent_id = excluded.parent_id,
    value = excluded.value,
    state = excluded.state,
    json = excluded.json;

-- name: delete_task_run
DELETE FROM task_runs WHERE id = ? AND execution_id = ?;

-- One statement, so one snapshot: the execution (kind 0) then its task runs (kind 1) in creation order.
-- name: select_execution
SELECT 0 AS kind, seq, json FROM executions WHERE id = ?
UNION ALL
SELECT 1 AS kind, seq, json FROM task_runs WHERE execution_id = ?
ORDER BY kind, seq;

-- name: select_unfinished
SELECT 0 AS kind, e.seq AS seq, e.id AS execution_id, e.json AS json
FROM executions AS e
WHERE e.state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED')
UNION ALL
SELECT 1 AS kind, t.seq AS seq, t.execution_id AS execution_id, t.json AS json
FROM task_runs AS t WHERE t.execution_id IN (
    SELECT id FROM executions
    WHERE state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED')
)
ORDER BY kind, seq;

-- A page of executions, newest first, merged from sub-selects that each read one index in `seq` order
-- (one per namespace, or one per state: see executions.py). `{parts}` is them joined by UNION ALL and
-- `{where}` the filter of one: only the conditions used are written, so that SQLite picks the index
-- that fits them. SQLite merges the ordered parts and stops at the LIMIT, so a page reads about as
-- many rows as it shows, where one OR of namespaces would sort every row that matches.
-- name: select_executions_part
SELECT seq, id, namespace, flow_id, flow_revision, state, start_date, end_date, labels, parent_id, trigger_type
FROM executions {where};

-- name: select_executions_page
{parts} ORDER BY seq DESC LIMIT ?;

-- The namespaces strictly below one that have executions, in order: the range [?1, ?2) (the namespace
-- followed by '.' then by '/') of the index on (namespace, seq), read one distinct value at a time:
-- one index seek per namespace, however many executions each holds. The index is named: it is the one
-- the page reads next, so the pages these seeks read are those the page needs.
-- name: select_namespaces_below
WITH RECURSIVE below (name) AS (
    SELECT (SELECT namespace FROM executions INDEXED BY executions_namespace
            WHERE namespace >= ?1 AND namespace < ?2 ORDER BY namespace LIMIT 1)
    UNION ALL
    SELECT (SELECT e.namespace FROM executions AS e INDEXED BY executions_namespace
            WHERE e.namespace > below.name AND e.namespace < ?2 ORDER BY e.namespace LIMIT 1)
    FROM below WHERE below.name IS NOT NULL
)
SELECT name FROM below WHERE name IS NOT NULL;

-- A listing that needs several statements reads them all in one snapshot.
-- name: begin_read
BEGIN DEFERRED;

-- name: end_read
COMMIT;

-- The state of the newest execution of each (namespace, flow id) that has one. The pairs are read from
-- the index on (namespace, flow_id, seq) one distinct pair at a time (the next flow id in the same
-- namespace, else the first of the next namespace), then the newest execution of each: an index seek
-- per flow, however many executions each holds (named: the namespace's index also holds `state`, but
-- finding a flow's newest execution there would read its namespace's newer executions of other flows).
-- name: select_last_states
WITH RECURSIVE flows_run (namespace, flow_id) AS (
    SELECT * FROM (SELECT namespace, flow_id FROM executions ORDER BY namespace, flow_id LIMIT 1) AS head
    UNION ALL
    SELECT e.namespace, e.flow_id
    FROM flows_run AS f JOIN executions AS e ON e.seq = coalesce(
        (SELECT seq FROM executions WHERE namespace = f.namespace AND flow_id > f.flow_id
         ORDER BY flow_id LIMIT 1),
        (SELECT seq FROM executions WHERE namespace > f.namespace ORDER BY namespace, flow_id LIMIT 1))
)
SELECT f.namespace, f.flow_id,
    (SELECT e.state FROM executions AS e INDEXED BY executions_flow
     WHERE e.namespace = f.namespace AND e.flow_id = f.flow_id ORDER BY e.seq DESC LIMIT 1)
FROM flows_run AS f;

-- name: count_executions
SELECT count(*) FROM executions {where};

-- The ids that start with a prefix, in order: `id >= prefix AND id < bound` (the prefix with its last
-- character raised by one) reads the unique index on `id` as a range, with no pattern to escape.
-- name: select_execution_ids_from
SELECT id FROM executions WHERE id >= ? AND id < ? ORDER BY id LIMIT ?;
