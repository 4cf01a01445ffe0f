-- Triggers: each trigger's state, the dates it fired (one execution per date), and the windows of
-- Flow trigger preconditions.
--
-- The condition "e.state NOT IN (...terminal states...)" below must stay identical to the WHERE clause
-- of the executions_unfinished index in schema.sql, or SQLite will not use that index.

-- name: select_triggers
SELECT namespace, flow_id, trigger_id, enabled, last_date, next_date, backfill, schedule FROM triggers;

-- name: upsert_trigger
INSERT INTO triggers
    (namespace, flow_id, trigger_id, enabled, last_date, next_date, backfill, schedule, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace, flow_id, trigger_id) DO UPDATE SET enabled = excluded.enabled,
    last_date = excluded.last_date, next_date = excluded.next_date, backfill = excluded.backfill,
    schedule = excluded.schedule, updated = excluded.updated;

-- name: insert_fire
INSERT INTO trigger_fires (namespace, flow_id, trigger_id, date, execution_id)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- Fire records of a schedule older than a date: plain dates, and dates of backfills other than `?`.
-- name: prune_fires
DELETE FROM trigger_fires
WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND date < ?
    AND (instr(date, '#') = 0 OR substr(date, instr(date, '#')) <> ?)
    AND NOT EXISTS (
        SELECT 1 FROM executions AS e WHERE e.id = trigger_fires.execution_id
            AND e.state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED')
    );

-- Fire records of one backfill (its `#backfill:id` suffix) older than a date.
-- name: prune_backfill_fires
DELETE FROM trigger_fires
WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND date < ?
    AND instr(date, '#') > 0 AND substr(date, instr(date, '#')) = ?
    AND NOT EXISTS (
        SELECT 1 FROM executions AS e WHERE e.id = trigger_fires.execution_id
            AND e.state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED')
    );

-- name: select_fires
SELECT date, execution_id FROM trigger_fires
WHERE namespace = ? AND flow_id = ? AND trigger_id = ? ORDER BY date;

-- name: select_running_fires
SELECT f.namespace, f.flow_id, f.trigger_id, f.execution_id
FROM executions AS e JOIN trigger_fires AS f ON f.execution_id = e.id
WHERE e.state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED');

-- A Flow trigger's preconditions: the condition keys satisfied within the current time window, and the
-- merged outputs of the executions that satisfied them; `end_date` is inclusive.
-- name: select_window
SELECT start_date, end_date, results, outputs FROM flow_trigger_windows
WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND condition_id = ?;

-- name: save_window
INSERT INTO flow_trigger_windows
    (namespace, flow_id, trigger_id, condition_id, start_date, end_date, results, outputs, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace, flow_id, trigger_id, condition_id) DO UPDATE SET
    start_date = excluded.start_date, end_date = excluded.end_date, results = excluded.results,
    outputs = excluded.outputs, updated = excluded.updated;

-- name: delete_window
DELETE FROM flow_trigger_windows WHERE namespace = ? AND flow_id = ? AND trigger_id = ? AND condition_id = ?;

-- name: purge_windows
DELETE FROM flow_trigger_windows WHERE end_date < ?;
