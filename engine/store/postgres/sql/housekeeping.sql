-- The statements of sql/housekeeping.sql that PostgreSQL needs written otherwise, by the same names:
-- the JSON lists are read with jsonb_array_elements.

-- name: count_executions_by_flow
SELECT namespace, flow_id, count(*)
FROM executions
WHERE start_date >= ? AND start_date <= ?
  AND (? IS NULL OR state IN (SELECT jsonb_array_elements_text(?::jsonb)))
  AND (EXISTS (SELECT 1 FROM jsonb_array_elements(?::jsonb) AS f (value)
               WHERE f.value ->> 0 = namespace AND f.value ->> 1 = flow_id)
       OR namespace IN (SELECT jsonb_array_elements_text(?::jsonb)))
GROUP BY namespace, flow_id
ORDER BY namespace, flow_id;

-- name: select_ended_executions
SELECT id, namespace, flow_id
FROM executions
WHERE end_date IS NOT NULL AND end_date <= ?
  AND (? IS NULL OR start_date >= ?)
  AND (? IS NULL OR flow_id = ?)
  AND (? IS NULL
       OR namespace = ?
       OR (? IS NULL AND namespace >= ? AND namespace < ?))
  AND (? IS NULL OR state IN (SELECT jsonb_array_elements_text(?::jsonb)))
ORDER BY seq;

-- JSON's null is no output, as SQLite's json_extract gives NULL for it. PostgreSQL refuses to read
-- the \u0000 that a NUL in an output is written as: it is read as another character here (the
-- stored JSON is left as it is).
-- name: count_task_outputs
SELECT count(*) FROM task_runs
WHERE execution_id = ?
  AND coalesce(replace(json, '\u0000', '\ufffd')::jsonb -> 'outputs', 'null'::jsonb) <> 'null'::jsonb;

-- name: purge_logs
DELETE FROM logs
WHERE timestamp <= ?
  AND (? IS NULL OR timestamp >= ?)
  AND (? IS NULL OR namespace = ?)
  AND (? IS NULL OR flow_id = ?)
  AND (? IS NULL OR execution_id = ?)
  AND (? IS NULL OR level IN (SELECT jsonb_array_elements_text(?::jsonb)::integer));
