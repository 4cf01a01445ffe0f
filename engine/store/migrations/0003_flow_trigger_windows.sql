-- Flow trigger preconditions: which conditions were satisfied within the current time window.
-- results is a JSON list of satisfied condition keys, outputs the merged outputs of the executions
-- that satisfied them (Kestra's MultipleConditionWindow). end_date is inclusive.
CREATE TABLE IF NOT EXISTS flow_trigger_windows (
    namespace TEXT NOT NULL,
    flow_id TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    condition_id TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    results TEXT NOT NULL,
    outputs TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (namespace, flow_id, trigger_id, condition_id)
);
CREATE INDEX IF NOT EXISTS flow_trigger_windows_end ON flow_trigger_windows (end_date);
