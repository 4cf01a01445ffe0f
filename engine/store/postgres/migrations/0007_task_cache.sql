-- Task caches, as in the SQLite store's migration 0009.
CREATE TABLE task_cache (
    namespace       TEXT COLLATE "C" NOT NULL,
    flow_id         TEXT COLLATE "C" NOT NULL,
    cache_key       TEXT COLLATE "C" NOT NULL,
    task_id         TEXT NOT NULL,
    execution_id    TEXT NOT NULL,
    state           TEXT NOT NULL,
    outputs         TEXT NOT NULL,
    created         TEXT COLLATE "C" NOT NULL,
    expires_at      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (namespace, flow_id, cache_key)
);
