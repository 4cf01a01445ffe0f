-- The statements of sql/processes.sql that PostgreSQL needs written otherwise, by the same names.

-- name: insert_process
INSERT INTO processes (task_run_id, attempt, pid, pgid, start_ticks, token, engine_pid, created)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (pid, start_ticks) DO UPDATE SET task_run_id = excluded.task_run_id,
    attempt = excluded.attempt, pgid = excluded.pgid, token = excluded.token,
    engine_pid = excluded.engine_pid, created = excluded.created;
