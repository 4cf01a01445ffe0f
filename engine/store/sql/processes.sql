-- The task programs running now, so that the next engine can kill those a crash left behind.

-- name: insert_process
INSERT INTO processes (task_run_id, attempt, pid, pgid, start_ticks, token, engine_pid, created)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (pid, start_ticks) DO UPDATE SET task_run_id = excluded.task_run_id,
    attempt = excluded.attempt, pgid = excluded.pgid, token = excluded.token,
    engine_pid = excluded.engine_pid, created = excluded.created;

-- name: delete_process
DELETE FROM processes WHERE pid = ? AND start_ticks = ?;

-- name: select_processes
SELECT pid, pgid, start_ticks, token FROM processes ORDER BY created;
