-- Metrics of task runs (Kestra's metric entries): one row per (type, name, tags) an attempt reported,
-- a counter's count or a timer's milliseconds as `value`, the tags as a JSON object. No foreign key,
-- as for log lines: PurgeExecutions deletes them by its own `purgeMetric` switch, as Kestra does.
CREATE TABLE metrics (
    id              INTEGER PRIMARY KEY,
    execution_id    TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    flow_id         TEXT NOT NULL,
    task_id         TEXT,
    task_run_id     TEXT,
    type            TEXT NOT NULL,
    name            TEXT NOT NULL,
    value           REAL NOT NULL,
    timestamp       TEXT NOT NULL,
    tags            TEXT NOT NULL
);

CREATE INDEX metrics_execution ON metrics (execution_id, id);
