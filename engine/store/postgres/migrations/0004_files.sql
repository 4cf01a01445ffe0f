-- The files of executions (Kestra's internal storage) kept in the database, so that every machine
-- of a cluster reads what another wrote (engine.store.postgres.files). A file is a row of `files`
-- and its content chunks of at most 1 MiB in order; `stamp` (nanoseconds since the epoch, when it
-- was written) tells a machine whether its local copy is still the stored one. URIs sort bytewise
-- (COLLATE "C"), so a folder's files are one range of the primary key.

CREATE TABLE files (
    uri TEXT COLLATE "C" PRIMARY KEY,
    size BIGINT NOT NULL,
    stamp BIGINT NOT NULL
);

CREATE TABLE file_chunks (
    uri TEXT COLLATE "C" NOT NULL REFERENCES files (uri) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (uri, seq)
);
