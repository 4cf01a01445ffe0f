"""Trigger sources: what starts an execution without a person asking for it.

The trigger types and where they live:
    Schedule    `schedule.Scheduler` fires cron slots, recovers missed ones after downtime and
                runs backfills; its parts are `slots` (time arithmetic), `state` (trigger state
                and its persistence), `firing` (due slots, conditions, fire records), `backfill`
                and `clock`.
    Flow        `flow.FlowTriggers` starts a flow when other executions change state; the rules
                of its preconditions and their time windows are `preconditions`.
    Webhook     `webhook.WebhookServer` answers Kestra's webhook route; the HTTP protocol itself
                is `engine.httpserver`.
    HTTP        `http.HttpPolling` polls an endpoint every `interval` and starts the flow when the
                response meets `responseCondition`; the scheduler runs it beside the schedules
                (trigger state, switches, stopAfter, no overlap), and the request is the Request
                task's (`engine.tasks.http.send_request`).
Shared by them: `conditions` (Kestra's trigger conditions), `cron` (cron expressions), and the
switches set by command (the dashboard's toggle, `tiercel triggers --disable`), kept by the
scheduler for every trigger type.

Every source sees its engine as a `host.TriggerHost` and imports nothing of the engine: the
Engine satisfies that protocol structurally, and builds the Schedule (with the HTTP polling) and
Flow sources itself (the webhook server is started by the `server` command and the dashboard).

To add a trigger type: its name goes in `types.py`, its checks in `engine/parser/triggers.py` (its
properties, Kestra's names), its source in a module here that takes a `TriggerHost`, starts
executions with `new_execution` then `submit` (a fire to record goes with `submit`, in the same
transaction), and honours `host.trigger_switches.is_enabled`; the engine starts and stops it
(`engine/engine.py`). If it needs more of the engine, name that in `TriggerHost`.
"""

from .conditions import (
    CONDITION_TYPES,
    ConditionContext,
    ConditionError,
    condition_problem,
    condition_type,
    conditions_hold,
)

__all__ = [
    "CONDITION_TYPES",
    "ConditionContext",
    "ConditionError",
    "condition_problem",
    "condition_type",
    "conditions_hold",
]
