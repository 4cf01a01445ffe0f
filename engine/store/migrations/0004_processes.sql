-- The process group of every task program while it runs, so that the next engine on this database
-- can kill what a crashed engine left behind. start_ticks is the start time of the group leader
-- (field 22 of /proc/<pid>/stat): a pid reused by an unrelated process never matches it. token is the
-- value of TIERCEL_PROCESS_TOKEN in the program's environment, which finds descendants that left the
-- group. engine_pid is the engine that started the program.
CREATE TABLE IF NOT EXISTS processes (
    task_run_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    pgid INTEGER NOT NULL,
    start_ticks INTEGER NOT NULL,
    token TEXT NOT NULL,
    engine_pid INTEGER NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (pid, start_ticks)
);
