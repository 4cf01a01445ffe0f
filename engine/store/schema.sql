-- Tiercel store, schema version 1.
--
-- Applied by engine/store.py inside one transaction that also sets PRAGMA user_version = 1.
-- Later versions live in engine/migrations/NNNN_<name>.sql and are applied in order.
-- Instants are text in Kestra's format (2024-01-31T12:00:00.000Z), so they sort as text.

-- Flows: one row per (namespace, flow id) pointing at its latest revision; every revision kept.
CREATE TABLE flows (
    namespace   TEXT NOT NULL,
    flow_id     TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    path        TEXT,
    updated     TEXT NOT NULL,
    deleted     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, flow_id)
) WITHOUT ROWID;

CREATE TABLE flow_revisions (
    namespace   TEXT NOT NULL,
    flow_id     TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    source      TEXT NOT NULL,
    created     TEXT NOT NULL,
    PRIMARY KEY (namespace, flow_id, revision),
    FOREIGN KEY (namespace, flow_id) REFERENCES flows (namespace, flow_id) ON DELETE CASCADE
) WITHOUT ROWID;

-- The last parse error of each flow file (a row exists only while the file is broken).
CREATE TABLE flow_errors (
    path        TEXT PRIMARY KEY,
    message     TEXT NOT NULL,
    updated     TEXT NOT NULL
) WITHOUT ROWID;

-- Executions: indexed columns plus the Kestra JSON of the execution without its taskRunList.
-- seq (the rowid) is the creation order; an upsert keeps it, so it is the paging key.
CREATE TABLE executions (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    namespace       TEXT NOT NULL,
    flow_id         TEXT NOT NULL,
    flow_revision   INTEGER NOT NULL,
    state           TEXT NOT NULL,
    start_date      TEXT,
    end_date        TEXT,
    parent_id       TEXT,
    trigger_type    TEXT,
    labels          TEXT NOT NULL DEFAULT '{}',
    json            TEXT NOT NULL
);

CREATE INDEX executions_namespace ON executions (namespace, seq);
CREATE INDEX executions_flow ON executions (namespace, flow_id, seq);
CREATE INDEX executions_state ON executions (state, seq);
CREATE INDEX executions_parent ON executions (parent_id) WHERE parent_id IS NOT NULL;
-- Only unfinished executions: what a restarted engine resumes. Keep the WHERE clause identical to
-- the queries in sql/executions.sql and sql/triggers.sql, or SQLite will not use this index.
CREATE INDEX executions_unfinished ON executions (seq)
    WHERE state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED');

-- Task runs: seq (the rowid) is the creation order; an upsert keeps it.
CREATE TABLE task_runs (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    execution_id    TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    task_id         TEXT NOT NULL,
    parent_id       TEXT,
    value           TEXT,
    state           TEXT NOT NULL,
    json            TEXT NOT NULL
);

CREATE INDEX task_runs_execution ON task_runs (execution_id, seq);

-- Log lines. No foreign key: lines may be written before their execution's first save.
-- level is the rank of the level (TRACE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4).
CREATE TABLE logs (
    id              INTEGER PRIMARY KEY,
    execution_id    TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    flow_id         TEXT NOT NULL,
    task_id         TEXT,
    task_run_id     TEXT,
    attempt         INTEGER,
    level           INTEGER NOT NULL,
    timestamp       TEXT NOT NULL,
    message         TEXT NOT NULL
);

CREATE INDEX logs_execution ON logs (execution_id, id);

-- Kestra's key-value store: values as JSON text, optional expiry.
CREATE TABLE kv (
    namespace   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    expires_at  TEXT,
    updated     TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
