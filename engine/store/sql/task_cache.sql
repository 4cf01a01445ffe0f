-- Task caches: a successful run's outputs by flow and cache key, until they expire.

-- name: upsert_cache
INSERT INTO task_cache (namespace, flow_id, cache_key, task_id, execution_id, state, outputs, created, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace, flow_id, cache_key) DO UPDATE SET
    task_id = excluded.task_id, execution_id = excluded.execution_id, state = excluded.state,
    outputs = excluded.outputs, created = excluded.created, expires_at = excluded.expires_at;

-- Expired entries of a flow go when the flow stores another.
-- name: purge_expired_cache
DELETE FROM task_cache WHERE namespace = ? AND flow_id = ? AND expires_at <= ?;

-- name: select_cache
SELECT execution_id, state, outputs, created, expires_at FROM task_cache
WHERE namespace = ? AND flow_id = ? AND cache_key = ? AND expires_at > ?;

-- name: clear_cache
DELETE FROM task_cache WHERE namespace = ? AND flow_id = ? AND (? IS NULL OR task_id = ?);
