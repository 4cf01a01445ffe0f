-- Connection settings and schema bookkeeping. PRAGMAs that take a number chosen at run time
-- (busy_timeout, max_page_count) cannot be bound as parameters and are written in connection.py.

-- name: journal_mode_wal
PRAGMA journal_mode = WAL;

-- name: foreign_keys
PRAGMA foreign_keys = ON;

-- name: synchronous_normal
PRAGMA synchronous = NORMAL;

-- name: synchronous_full
PRAGMA synchronous = FULL;

-- name: temp_store_memory
PRAGMA temp_store = MEMORY;

-- name: query_only
PRAGMA query_only = 1;

-- name: optimize
PRAGMA optimize;

-- name: user_version
PRAGMA user_version;

-- name: count_schema_objects
SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%';
