-- Task caches (a task's `cache` or `taskCache`): the outputs of a successful run by flow and key (a
-- hash of what the task's cache is keyed by), reused by later runs until `expires_at`.
CREATE TABLE task_cache (
    namespace       TEXT NOT NULL,
    flow_id         TEXT NOT NULL,
    cache_key       TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    execution_id    TEXT NOT NULL,
    outputs         TEXT NOT NULL,
    created         TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    PRIMARY KEY (namespace, flow_id, cache_key)
);
