"""`tiercel triggers` and `tiercel backfill`: trigger state, switching triggers, and backfills.

Switching a trigger and every backfill command go through `connect(db)`: to the engine that owns
the database (the dashboard, `tiercel server`) through its control channel, or else to an engine
started here, which holds the database until the command is done. Listing asks the owner, or reads
the store read-only when no engine runs. A backfill with no engine running runs here, in an engine
that fires it until it is done (Ctrl-C pauses it; it resumes with `--resume`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from tiercel.engine import describe_target

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_db_option,
    add_flows_option,
    add_json_option,
    add_value_options,
    command,
    existing_db,
    flows_folder,
    parse_pairs,
    resolve_db,
    say,
)
from .tables import table

if TYPE_CHECKING:
    from tiercel.engine import BackfillAction, BackfillProgress, Commands, DbTarget, Engine

TriggerKey = tuple[str, str, str]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    triggers = command(
        sub,
        "triggers",
        "list triggers with their state; switch one on or off",
        [
            "tiercel triggers",
            "tiercel triggers --disable acme.data nightly_load schedule",
            "tiercel triggers --enable acme.data nightly_load schedule",
        ],
    )
    add_flows_option(triggers)
    add_db_option(triggers)
    add_json_option(triggers, "the triggers")
    switch = triggers.add_mutually_exclusive_group()
    for verb in ("enable", "disable"):
        switch.add_argument(
            f"--{verb}", nargs=3, metavar=("NAMESPACE", "FLOW_ID", "TRIGGER_ID"),
            help=f"{verb} a trigger (the choice is stored, and kept across restarts)",
        )  # fmt: skip

    backfill = command(
        sub,
        "backfill",
        "fire a Schedule trigger for its slots between two dates",
        [
            "tiercel backfill --start 2025-01-01T00:00:00Z --end 2025-01-31T00:00:00Z \\\n"
            "      acme.data nightly_load schedule",
            "tiercel backfill --pause acme.data nightly_load schedule",
        ],
    )
    add_flows_option(backfill)
    add_db_option(backfill)
    backfill.add_argument("--start", help="first date, ISO 8601 with a time zone (2025-01-01T00:00:00Z)")
    backfill.add_argument("--end", help="last date (default: now)")
    add_value_options(backfill)
    action = backfill.add_mutually_exclusive_group()
    for name, text in (
        ("pause", "pause the trigger's running backfill"),
        ("resume", "resume its paused backfill"),
        ("cancel", "cancel its backfill"),
    ):
        action.add_argument(f"--{name}", action="store_const", const=name, dest="action", help=text)
    backfill.add_argument("namespace", help="the flow's namespace")
    backfill.add_argument("flow_id", help="the flow's id")
    backfill.add_argument("trigger_id", help="the Schedule trigger's id")


def _unanswered(db: DbTarget, error: OSError) -> str:
    where = describe_target(db)
    return f"tiercel: {where} is owned by a Tiercel process that does not answer ({error})"


# -- triggers ---------------------------------------------------------------------------------------


async def cmd_triggers(args: argparse.Namespace) -> int:
    db = existing_db(args.db)
    chosen = args.enable or args.disable
    if chosen:
        key = (chosen[0], chosen[1], chosen[2])
        await _check_trigger(db, *key)
        return await _switch(db, key, bool(args.enable))
    return await _list(db, json_output=args.json)


async def _check_trigger(db: DbTarget, namespace: str, flow_id: str, trigger_id: str) -> None:
    """Refuse (a usage error) a flow or trigger the database does not know, rather than switch a
    trigger that does not exist."""
    from tiercel.engine import FlowParseError, Store, parse_flow

    async with await Store.open(db, readonly=True) as store:
        found = await store.flow_source(namespace, flow_id)
    if found is None:
        where = describe_target(db)
        raise UsageError(f"no flow {namespace}.{flow_id} in {where} (`tiercel triggers` lists the triggers)")
    try:
        flow = parse_flow(found[1])
    except FlowParseError:
        return  # a revision this version cannot read again: let the engine decide
    known = [trigger.id for trigger in flow.triggers]
    if trigger_id not in known:
        has = f"its triggers: {', '.join(known)}" if known else "it has none"
        raise UsageError(f"flow {namespace}.{flow_id} has no trigger `{trigger_id}` ({has})")


async def _switch(db: DbTarget, key: TriggerKey, enabled: bool) -> int:
    from tiercel.engine import ConnectError, EngineCommandError, SchedulerError, connect

    try:
        async with connect(db) as commands:
            await commands.set_trigger_enabled(*key, enabled)
    except OSError as error:
        say(_unanswered(db, error), err=True)
        return EXIT_FAILED
    except (ConnectError, EngineCommandError, SchedulerError) as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    say(f"{'.'.join(key)} {'enabled' if enabled else 'disabled'}")
    return EXIT_OK


async def _list(db: DbTarget, *, json_output: bool) -> int:
    from tiercel.engine import ConnectError, EngineCommandError, NoEngineError, connect, trigger_json

    try:
        async with connect(db, local=False) as commands:
            rows = [trigger_json(state) for state in await commands.trigger_states()]
    except NoEngineError:
        rows = await _stored_triggers(db)
    except OSError as error:
        say(_unanswered(db, error), err=True)
        return EXIT_FAILED
    except (ConnectError, EngineCommandError) as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    if json_output:
        say(json.dumps(rows, indent=2))
        return EXIT_OK
    if rows:
        say("\n".join(table([_trigger_cells(row) for row in rows])))
    return EXIT_OK


def _trigger_cells(row: dict[str, Any]) -> list[str]:
    """A trigger's line: its three ids apart (as --enable and --disable take them), then its state."""
    state = "on" if row["enabled"] and not row.get("disabled") else "off"
    kind = (row.get("type") or "").rsplit(".", 1)[-1] or "-"
    backfill = row.get("backfill")
    cells = [row["namespace"], row["flowId"], row["triggerId"], kind, state]
    cells += [f"last={row['lastDate'] or '-'}", f"next={row['nextDate'] or '-'}"]
    return cells + ([f"backfill {backfill['status']} {backfill['fired']} fired"] if backfill else [])


async def _stored_triggers(db: DbTarget) -> list[dict[str, Any]]:
    """The stored trigger states, for a database no engine runs on (read-only)."""
    from tiercel.engine import Store, iso

    async with await Store.open(db, readonly=True) as store:
        rows = await store.trigger_rows()
    return [
        {
            "namespace": row.namespace,
            "flowId": row.flow_id,
            "triggerId": row.trigger_id,
            "enabled": row.enabled,
            "lastDate": iso(row.last_date) if row.last_date else None,
            "nextDate": iso(row.next_date) if row.next_date else None,
            "backfill": dict(row.backfill) if row.backfill else None,
        }
        for row in sorted(rows, key=lambda r: (r.namespace, r.flow_id, r.trigger_id))
    ]


# -- backfill ---------------------------------------------------------------------------------------


def _date(option: str, text: str | None) -> datetime | None:
    """A --start or --end: an ISO 8601 date with a time zone (anything else is a usage error)."""
    from tiercel.engine import parse_date

    try:
        date = parse_date(text)
    except ValueError:
        date = None
    if text and (date is None or date.tzinfo is None):
        raise UsageError(
            f"{option} `{text}` is not a date with a time zone: give it as ISO 8601, "
            "for instance 2025-01-01T00:00:00Z or 2025-01-01T09:00:00+02:00"
        )
    return date


class _Backfill:
    """A backfill command as given: which trigger, what to do, and for a start its range and values."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.key: TriggerKey = (args.namespace, args.flow_id, args.trigger_id)
        # argparse gives one of --pause, --resume or --cancel, or None for a start
        self.action: Literal["start"] | BackfillAction = args.action or "start"
        if self.action == "start" and not args.start:
            raise UsageError("backfill needs --start (or one of --pause, --resume, --cancel)")
        self.start = _date("--start", args.start)
        self.end = _date("--end", args.end)
        self.flows_dir = flows_folder(args.flows)
        self.inputs = parse_pairs(args.input or [], "--input")
        self.labels = parse_pairs(args.label or [], "--label")

    async def apply(self, commands: Commands) -> None:
        if self.action == "start":
            assert self.start is not None  # asked for above
            await commands.start_backfill(*self.key, self.start, self.end, self.inputs, self.labels)
        else:
            await commands.change_backfill(*self.key, self.action)


async def cmd_backfill(args: argparse.Namespace) -> int:
    from tiercel.engine import ConnectError, ControlClient, Engine, NoEngineError, connect

    db = resolve_db(args.db)
    backfill = _Backfill(args)
    if backfill.action in ("pause", "cancel"):
        # Only a running engine has a backfill advancing: never start one for this.
        try:
            async with connect(db, local=False) as commands:
                return await _send_backfill(commands, db, backfill)
        except NoEngineError:
            where = describe_target(db)
            nothing = f"no engine runs on {where}, so no backfill is advancing to {backfill.action}"
            say(f"tiercel: {nothing}", err=True)
            return EXIT_FAILED
        except ConnectError as error:
            say(f"tiercel: {error}", err=True)
            return EXIT_FAILED
    # With no engine running, this one runs the flows folder's triggers until the backfill is done.
    try:
        async with connect(
            db, flows_dir=backfill.flows_dir, recover=None, triggers=True, control=True
        ) as commands:
            if isinstance(commands, ControlClient):
                return await _send_backfill(commands, db, backfill)
            assert isinstance(commands, Engine)
            return await _backfill_here(commands, backfill)
    except ConnectError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE


async def _send_backfill(commands: Commands, db: DbTarget, backfill: _Backfill) -> int:
    """Hand the backfill command to the engine that owns the database."""
    from tiercel.engine import EngineCommandError, InputError

    try:
        await backfill.apply(commands)
    except OSError as error:
        say(_unanswered(db, error), err=True)
        return EXIT_FAILED
    except (EngineCommandError, InputError) as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    where = describe_target(db)
    say(
        f"backfill {backfill.action} sent to the engine running on {where}; follow it with `tiercel triggers`"
    )
    return EXIT_OK


async def _backfill_here(engine: Engine, backfill: _Backfill) -> int:
    """Fire the backfill in this engine until it is done and its executions ended; Ctrl-C pauses it."""
    from tiercel.engine import EngineCommandError, SchedulerError

    key = backfill.key
    interrupted = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        await backfill.apply(engine)
    except (EngineCommandError, SchedulerError, ValueError) as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    while not interrupted.is_set():
        progress = await _progress(engine, key)
        if progress is None or progress.status not in ("RUNNING", "PAUSED"):
            if not engine.live_execution_ids():
                break
        else:
            say(f"backfill {progress.status}: {progress.fired} fired, next {progress.current}", err=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interrupted.wait(), 1)
    if interrupted.is_set():
        await engine.change_backfill(*key, "pause")
        say("backfill paused; `tiercel backfill --resume ...` goes on from here", err=True)
        return 130
    done = await _progress(engine, key)
    fired, status = (done.fired, done.status) if done else (0, "DONE")
    say(f"backfill of {'.'.join(key)} {status}: {fired} executions")
    return EXIT_OK


async def _progress(commands: Commands, key: TriggerKey) -> BackfillProgress | None:
    """The trigger's backfill progress (None when it has none)."""
    for state in await commands.trigger_states():
        if (state.namespace, state.flow_id, state.trigger_id) == key:
            return state.backfill
    return None
