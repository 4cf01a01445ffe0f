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

-- A page of executions, newest first. `{where}` is the filter the caller asked for (see executions.py):
-- only the conditions used are written, so that SQLite picks the index that fits them.
-- name: select_executions_page
SELECT seq, id, namespace, flow_id, flow_revision, state, start_date, end_date, labels, parent_id, trigger_type
FROM executions {where} ORDER BY seq DESC LIMIT ?;

-- name: count_executions
SELECT count(*) FROM executions {where};

-- The ids that start with a prefix, in order: `id >= prefix AND id < bound` (the prefix with its last
-- character raised by one) reads the unique index on `id` as a range, with no pattern to escape.
-- name: select_execution_ids_from
SELECT id FROM executions WHERE id >= ? AND id < ? ORDER BY id LIMIT ?;
