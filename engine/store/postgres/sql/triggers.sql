-- The statements of sql/triggers.sql that PostgreSQL needs written otherwise, by the same names.

-- name: insert_fire
INSERT INTO trigger_fires (namespace, flow_id, trigger_id, date, execution_id)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: prune_fires
DELETE FROM trigger_fires
WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND date < ?
    AND (strpos(date, '#') = 0 OR substr(date, strpos(date, '#')) <> ?)
    AND NOT EXISTS (
        SELECT 1 FROM executions AS e WHERE e.id = trigger_fires.execution_id
            AND e.state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED')
    );

-- name: prune_backfill_fires
DELETE FROM trigger_fires
WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND date < ?
    AND strpos(date, '#') > 0 AND substr(date, strpos(date, '#')) = ?
    AND NOT EXISTS (
        SELECT 1 FROM executions AS e WHERE e.id = trigger_fires.execution_id
            AND e.state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED')
    );

-- name: save_window
INSERT INTO flow_trigger_windows
    (namespace, flow_id, trigger_id, condition_id, start_date, end_date, results, outputs, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace, flow_id, trigger_id, condition_id) DO UPDATE SET
    start_date = excluded.start_date, end_date = excluded.end_date, results = excluded.results,
    outputs = excluded.outputs, updated = excluded.updated;
