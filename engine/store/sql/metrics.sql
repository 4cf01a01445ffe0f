-- Metrics of task runs, in the order they were stored.

-- name: insert_metric
INSERT INTO metrics (execution_id, namespace, flow_id, task_id, task_run_id, type, name, value, timestamp, tags)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: select_metrics
SELECT execution_id, namespace, flow_id, task_id, task_run_id, type, name, value, timestamp, tags
FROM metrics
WHERE execution_id = ? AND (? IS NULL OR task_run_id = ?) AND (? IS NULL OR task_id = ?)
ORDER BY id;
