-- The key-value store: JSON values by namespace and key, with an optional expiry date.

-- name: upsert_kv
INSERT INTO kv (namespace, key, value, expires_at, updated) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = excluded.value, expires_at = excluded.expires_at, updated = excluded.updated;

-- Inserts, or replaces an expired value only; changes() == 0 means a live value is in the way.
-- name: insert_kv
INSERT INTO kv (namespace, key, value, expires_at, updated) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (namespace, key) DO UPDATE SET
    value = excluded.value, expires_at = excluded.expires_at, updated = excluded.updated
WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= excluded.updated;

-- name: purge_kv
DELETE FROM kv WHERE namespace = ? AND expires_at IS NOT NULL AND expires_at <= ?;

-- name: delete_kv
DELETE FROM kv WHERE namespace = ? AND key = ? RETURNING expires_at;

-- name: select_kv
SELECT value FROM kv WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?);

-- name: select_kv_keys
SELECT key FROM kv
WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?) AND (? IS NULL OR substr(key, 1, ?) = ?)
ORDER BY key;

-- name: select_kv_entries
SELECT key, updated, expires_at FROM kv
WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?)
ORDER BY key;
