-- A flow's concurrency limit across the servers of a cluster (engine.cluster.slots): the executions
-- that hold a slot of their flow, and those queued for one, first come first served. A server asks
-- admit_execution() before an execution of a limited flow starts; an execution's end, stored by
-- whichever server, frees its slot in the same transaction and hands free slots to the head of the
-- queue, whose server is told on the `slots` channel. The limit is the flow's as last admitted.

CREATE TABLE flow_slots (
    execution_id TEXT COLLATE "C" PRIMARY KEY,
    namespace TEXT COLLATE "C" NOT NULL,
    flow_id TEXT COLLATE "C" NOT NULL,
    queued BOOLEAN NOT NULL,
    slot_limit INTEGER NOT NULL,
    admitted TIMESTAMPTZ NOT NULL DEFAULT now(),
    seq BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX flow_slots_flow ON flow_slots (namespace, flow_id, queued, seq);

-- One flow's slots change in one transaction at a time.
CREATE FUNCTION lock_flow_slots(ns TEXT, flow TEXT) RETURNS void LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('tiercel slots ' || ns || '.' || flow, 0));
$$;

-- Hand the free slots of a flow (its lock held) to the head of its queue, telling their servers.
CREATE FUNCTION fill_flow_slots(ns TEXT, flow TEXT) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    head TEXT;
    head_limit INTEGER;
    running BIGINT;
    channel TEXT := 'tiercel_' || left(md5(current_database() || '.' || current_schema()), 20) || '_slots';
BEGIN
    LOOP
        SELECT execution_id, slot_limit INTO head, head_limit FROM flow_slots
            WHERE namespace = ns AND flow_id = flow AND queued ORDER BY seq LIMIT 1;
        EXIT WHEN NOT FOUND;
        SELECT count(*) INTO running FROM flow_slots WHERE namespace = ns AND flow_id = flow AND NOT queued;
        EXIT WHEN running >= head_limit;
        UPDATE flow_slots SET queued = false WHERE execution_id = head;
        PERFORM pg_notify(channel, head);
    END LOOP;
END $$;

-- RUN (the slot is taken), QUEUE (queued, or still queued), or the behavior over the limit
-- (CANCEL, FAIL: nothing is kept). A changed limit applies to the queue at once.
CREATE FUNCTION admit_execution(ns TEXT, flow TEXT, id TEXT, lim INTEGER, behavior TEXT)
RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    waits BOOLEAN;
    running BIGINT;
    waiting BIGINT;
BEGIN
    PERFORM lock_flow_slots(ns, flow);
    UPDATE flow_slots SET slot_limit = lim WHERE namespace = ns AND flow_id = flow AND slot_limit <> lim;
    IF FOUND THEN
        PERFORM fill_flow_slots(ns, flow);
    END IF;
    SELECT queued INTO waits FROM flow_slots WHERE execution_id = id;
    IF FOUND THEN
        RETURN CASE WHEN waits THEN 'QUEUE' ELSE 'RUN' END;
    END IF;
    SELECT count(*) FILTER (WHERE NOT queued), count(*) FILTER (WHERE queued) INTO running, waiting
        FROM flow_slots WHERE namespace = ns AND flow_id = flow;
    IF running < lim AND waiting = 0 THEN
        INSERT INTO flow_slots (execution_id, namespace, flow_id, queued, slot_limit)
            VALUES (id, ns, flow, false, lim);
        RETURN 'RUN';
    END IF;
    IF behavior = 'QUEUE' THEN
        INSERT INTO flow_slots (execution_id, namespace, flow_id, queued, slot_limit)
            VALUES (id, ns, flow, true, lim);
        RETURN 'QUEUE';
    END IF;
    RETURN behavior;
END $$;

-- Free an execution's slot (or its place in the queue) and give free slots to the queue's head.
CREATE FUNCTION release_flow_slot(id TEXT) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ns TEXT;
    flow TEXT;
BEGIN
    SELECT namespace, flow_id INTO ns, flow FROM flow_slots WHERE execution_id = id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM lock_flow_slots(ns, flow);
    DELETE FROM flow_slots WHERE execution_id = id;
    PERFORM fill_flow_slots(ns, flow);
END $$;

CREATE FUNCTION release_ended_execution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM release_flow_slot(NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER executions_slot AFTER INSERT OR UPDATE OF state ON executions
    FOR EACH ROW
    WHEN (NEW.state IN ('SUCCESS', 'WARNING', 'FAILED', 'KILLED', 'CANCELLED', 'SKIPPED', 'RETRIED'))
    EXECUTE FUNCTION release_ended_execution();
