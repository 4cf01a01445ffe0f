-- Flows and their revisions: `flows` holds the latest revision of each flow (with its file and its
-- outline), `flow_revisions` every source, `flow_errors` the last parse error of each broken file.

-- Servers sharing a PostgreSQL store save the same flow at once: each save takes the flow's lock
-- first (postgres/sql/flows.sql). SQLite has one writer: nothing to lock.
-- name: lock_flow
SELECT ?, ?;

-- name: select_latest_flow
SELECT f.revision, f.deleted, f.path, r.source, f.source_hash, f.trigger_types, f.checked_with
FROM flows AS f JOIN flow_revisions AS r
    ON r.namespace = f.namespace AND r.flow_id = f.flow_id AND r.revision = f.revision
WHERE f.namespace = ? AND f.flow_id = ?;

-- name: insert_flow
INSERT INTO flows
    (namespace, flow_id, revision, path, updated, deleted, source_hash, trigger_types, checked_with)
VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?);

-- name: update_flow_revision
UPDATE flows SET revision = ?, path = coalesce(?, path), updated = ?, deleted = 0, source_hash = ?,
    trigger_types = ?, checked_with = ?
WHERE namespace = ? AND flow_id = ?;

-- name: update_flow_path
UPDATE flows SET path = coalesce(?, path), updated = ?, source_hash = ?,
    trigger_types = coalesce(?, trigger_types), checked_with = coalesce(?, checked_with)
WHERE namespace = ? AND flow_id = ?;

-- name: update_flow_outline
UPDATE flows SET trigger_types = ?, checked_with = ? WHERE namespace = ? AND flow_id = ? AND revision = ?;

-- name: insert_flow_revision
INSERT INTO flow_revisions (namespace, flow_id, revision, source, created) VALUES (?, ?, ?, ?, ?);

-- name: delete_flow
UPDATE flows SET deleted = 1, updated = ? WHERE namespace = ? AND flow_id = ? AND deleted = 0;

-- name: select_flow_source_latest
SELECT r.revision, r.source
FROM flows AS f JOIN flow_revisions AS r
    ON r.namespace = f.namespace AND r.flow_id = f.flow_id AND r.revision = f.revision
WHERE f.namespace = ? AND f.flow_id = ? AND f.deleted = 0;

-- name: select_flow_source
SELECT revision, source FROM flow_revisions WHERE namespace = ? AND flow_id = ? AND revision = ?;

-- name: select_flow_revisions
SELECT revision, source, created FROM flow_revisions WHERE namespace = ? AND flow_id = ? ORDER BY revision;

-- name: select_flows
SELECT namespace, flow_id, revision, path, updated, deleted, source_hash, trigger_types, checked_with
FROM flows
WHERE deleted = 0 OR ? <> 0 ORDER BY namespace, flow_id;

-- name: upsert_flow_error
INSERT INTO flow_errors (path, message, updated) VALUES (?, ?, ?)
ON CONFLICT (path) DO UPDATE SET message = excluded.message, updated = excluded.updated;

-- name: delete_flow_error
DELETE FROM flow_errors WHERE path = ?;

-- name: select_flow_errors
SELECT path, message FROM flow_errors ORDER BY path;
