-- The shared worker queue of a cluster (engine.cluster): the workers that are up, the task runs
-- waiting for a worker or claimed by one, and the results the workers report to the executor.

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    worker_group TEXT,
    concurrency INTEGER NOT NULL,
    started TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per attempt to run: claimed by a worker (worker_id set) or waiting for one.
CREATE TABLE worker_jobs (
    id BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL,
    task_run_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    worker_group TEXT,
    worker_id TEXT,
    claimed TIMESTAMPTZ,
    cancel BOOLEAN NOT NULL DEFAULT FALSE,
    UNIQUE (task_run_id, attempt)
);
CREATE INDEX worker_jobs_waiting ON worker_jobs (id) WHERE worker_id IS NULL;
CREATE INDEX worker_jobs_claimed ON worker_jobs (worker_id) WHERE worker_id IS NOT NULL;

-- An attempt's end, written with the deletion of its job, read (then deleted) by the executor.
CREATE TABLE worker_results (
    id BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL,
    task_run_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    result TEXT NOT NULL
);
