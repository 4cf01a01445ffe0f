-- Several servers on one store (engine.cluster.servers): each runs the executions it owns, and the
-- executions of a server that stops heartbeating go to another.

CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The server that runs an unfinished execution: the last one to write it.
ALTER TABLE executions ADD COLUMN owner TEXT;
CREATE INDEX executions_owner ON executions (owner)
    WHERE state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED');

-- A server's writer session names it in `tiercel.server`; each execution it writes becomes its own.
-- The fence: a server declared gone (its row deleted, its executions taken over) writes no execution
-- any more, even if it runs on unaware; no server writes an unfinished execution another live server
-- owns (an ended one, any server may restart). A session that names no server (an engine holding
-- the store alone) writes as before.
CREATE FUNCTION stamp_execution_owner() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me TEXT := nullif(current_setting('tiercel.server', true), '');
BEGIN
    IF me IS NULL THEN
        RETURN NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM servers WHERE id = me) THEN
        RAISE EXCEPTION 'server % was declared gone: its executions went to others', me
            USING ERRCODE = 'TC001';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.owner IS DISTINCT FROM me AND OLD.owner IS NOT NULL
            AND OLD.state NOT IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED')
            AND EXISTS (SELECT 1 FROM servers WHERE id = OLD.owner) THEN
        RAISE EXCEPTION 'execution % is run by server %, not by this one (%)', OLD.id, OLD.owner, me
            USING ERRCODE = 'TC001';
    END IF;
    NEW.owner := me;
    RETURN NEW;
END $$;

CREATE TRIGGER executions_owner BEFORE INSERT OR UPDATE ON executions
    FOR EACH ROW EXECUTE FUNCTION stamp_execution_owner();

-- Jobs and results name the server whose executor waits for them.
ALTER TABLE worker_jobs ADD COLUMN server_id TEXT;
ALTER TABLE worker_results ADD COLUMN server_id TEXT;
CREATE INDEX worker_results_server ON worker_results (server_id, id);
CREATE INDEX worker_jobs_execution ON worker_jobs (execution_id);
CREATE INDEX worker_results_execution ON worker_results (execution_id);
