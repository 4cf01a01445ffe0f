-- Trigger state (enabled, last and next fire date, backfill progress) and the record of fires.
CREATE TABLE IF NOT EXISTS triggers (
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    last_date TEXT,
    next_date TEXT,
    backfill TEXT,
    -- What next_date was computed from (cron, time zone, seconds): a change recomputes it.
    schedule TEXT,
    updated TEXT NOT NULL,
    PRIMARY KEY (namespace, flow_id, trigger_id)
);

-- One row per (trigger, scheduled date): the primary key makes a date fire at most once.
CREATE TABLE IF NOT EXISTS trigger_fires (
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    date TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    PRIMARY KEY (namespace, flow_id, trigger_id, date)
);
CREATE INDEX IF NOT EXISTS trigger_fires_execution ON trigger_fires (execution_id);
