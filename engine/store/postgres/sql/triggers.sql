-- The statements of sql/triggers.sql that PostgreSQL needs written otherwise, by the same names:
-- strpos where SQLite has instr.

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
