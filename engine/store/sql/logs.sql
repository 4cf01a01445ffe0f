-- Log lines. Keyset paging on the row id, which the logs_execution index (execution_id, id) walks
-- either way.

-- name: insert_log
INSERT INTO logs (execution_id, namespace, flow_id, task_id, task_run_id, attempt, level, timestamp, message)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: select_logs
SELECT id, execution_id, namespace, flow_id, task_id, task_run_id, attempt, level, timestamp, message
FROM logs
WHERE execution_id = ? AND id > ? AND id < ? AND level >= ? AND (? IS NULL OR task_id = ?)
ORDER BY id LIMIT ?;

-- name: select_logs_newest
SELECT id, execution_id, namespace, flow_id, task_id, task_run_id, attempt, level, timestamp, message
FROM logs
WHERE execution_id = ? AND id > ? AND id < ? AND level >= ? AND (? IS NULL OR task_id = ?)
ORDER BY id DESC LIMIT ?;
