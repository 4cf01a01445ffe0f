-- Kestra's system tasks over the history: execution.Count, execution.PurgeExecutions and log.PurgeLogs.
-- Lists (flows, namespaces, states, levels) are passed as JSON arrays and read with json_each, so that
-- each statement stays static; a NULL list means "no filter". Instants compare as text (Kestra's
-- format, in UTC).

-- Executions started within [start, end], by flow, of the given flows (each [namespace, flow id]) or
-- namespaces (exact), in the given states.
-- name: count_executions_by_flow
SELECT namespace, flow_id, count(*)
FROM executions
WHERE start_date >= ? AND start_date <= ?
  AND (? IS NULL OR state IN (SELECT value FROM json_each(?)))
  AND (EXISTS (SELECT 1 FROM json_each(?) AS f
               WHERE json_extract(f.value, '$[0]') = namespace AND json_extract(f.value, '$[1]') = flow_id)
       OR namespace IN (SELECT value FROM json_each(?)))
GROUP BY namespace, flow_id
ORDER BY namespace, flow_id;

-- Ended executions (an end date at or before `end`), oldest first: a running or paused execution has
-- no end date, so it is never listed. The namespace is exact with a flow id, else a prefix
-- (the namespace or any below it: the range from the namespace and '.' to it and '/', case and all).
-- name: select_ended_executions
SELECT id, namespace, flow_id
FROM executions
WHERE end_date IS NOT NULL AND end_date <= ?
  AND (? IS NULL OR start_date >= ?)
  AND (? IS NULL OR flow_id = ?)
  AND (? IS NULL
       OR namespace = ?
       OR (? IS NULL AND namespace >= ? AND namespace < ?))
  AND (? IS NULL OR state IN (SELECT value FROM json_each(?)))
ORDER BY seq;

-- name: count_task_outputs
SELECT count(*) FROM task_runs WHERE execution_id = ? AND json_extract(json, '$.outputs') IS NOT NULL;

-- Task runs go with their execution (ON DELETE CASCADE).
-- name: delete_execution
DELETE FROM executions WHERE id = ?;

-- name: delete_execution_logs
DELETE FROM logs WHERE execution_id = ?;

-- Log lines by date (at or before `end`, at or after `start`), namespace (exact), flow, execution and
-- level ranks.
-- name: purge_logs
DELETE FROM logs
WHERE timestamp <= ?
  AND (? IS NULL OR timestamp >= ?)
  AND (? IS NULL OR namespace = ?)
  AND (? IS NULL OR flow_id = ?)
  AND (? IS NULL OR execution_id = ?)
  AND (? IS NULL OR level IN (SELECT value FROM json_each(?)));

-- name: delete_execution_metrics
DELETE FROM metrics WHERE execution_id = ?;
