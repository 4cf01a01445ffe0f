-- Task caches (a task's `cache` or `taskCache`): the state (SUCCESS or WARNING) and outputs of a run
-- by flow and key (a hash of the task's rendered properties), reused by later runs until `expires_at`.
CREATE TABLE task_cache (
    namespace       TEXT NOT NULL,
    flow_id         TEXT NOT NULL,
    cache_key       TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    execution_id    TEXT NOT NULL,
    state           TEXT NOT NULL,
    outputs         TEXT NOT NULL,
    created         TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    PRIMARY KEY (namespace, flow_id, cache_key)
);
