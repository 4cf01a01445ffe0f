"""`tiercel triggers` and `tiercel backfill`: trigger state, switching triggers, and backfills.

When an engine owns the database (the dashboard, `tiercel server`), the command goes to it through
the control channel. Otherwise listing reads the store, switching writes it, and a backfill runs
here, in an engine of its own, until it is done (Ctrl-C pauses it; it resumes with `--resume`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from .cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    flows_folder,
    open_engine,
    parse_pairs,
    resolve_db,
    say,
)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    triggers = sub.add_parser("triggers", help="list triggers with their state; switch one on or off")
    triggers.add_argument("--flows")
    triggers.add_argument("--db")
    triggers.add_argument("--json", action="store_true")
    switch = triggers.add_mutually_exclusive_group()
    switch.add_argument("--enable", nargs=3, metavar=("NAMESPACE", "FLOW_ID", "TRIGGER_ID"))
    switch.add_argument("--disable", nargs=3, metavar=("NAMESPACE", "FLOW_ID", "TRIGGER_ID"))

    backfill = sub.add_parser("backfill", help="fire a Schedule trigger for its slots between two dates")
    backfill.add_argument("--flows")
    backfill.add_argument("--db")
    backfill.add_argument("--start", help="first date, ISO 8601 with a time zone (2025-01-01T00:00:00Z)")
    backfill.add_argument("--end", help="last date (default: now)")
    backfill.add_argument("--input", action="append", metavar="KEY=VALUE")
    backfill.add_argument("--label", action="append", metavar="KEY=VALUE")
    action = backfill.add_mutually_exclusive_group()
    for name in ("pause", "resume", "cancel"):
        action.add_argument(f"--{name}", action="store_const", const=name, dest="action")
    backfill.add_argument("namespace")
    backfill.add_argument("flow_id")
    backfill.add_argument("trigger_id")


def _db(args: argparse.Namespace) -> Path:
    return resolve_db(args.db)


async def _check_trigger(db: Path, namespace: str, flow_id: str, trigger_id: str) -> None:
    """Refuse (a usage error) a flow or trigger the database does not know, rather than switch a
    trigger that does not exist."""
    from tiercel.engine.parser import FlowParseError, parse_flow
    from tiercel.engine.store import Store

    async with await Store.open(db, readonly=True) as store:
        found = await store.flow_source(namespace, flow_id)
    if found is None:
        raise UsageError(f"no flow {namespace}.{flow_id} in {db} (`tiercel triggers` lists the triggers)")
    try:
        flow = parse_flow(found[1])
    except FlowParseError:
        return  # a revision this version cannot read again: let the engine decide
    known = [trigger.id for trigger in flow.triggers]
    if trigger_id not in known:
        has = f"its triggers: {', '.join(known)}" if known else "it has none"
        raise UsageError(f"flow {namespace}.{flow_id} has no trigger `{trigger_id}` ({has})")


def _date(option: str, text: str | None) -> None:
    """Refuse a --start or --end that is not an ISO 8601 date with a time zone (a usage error)."""
    from tiercel.engine.commands import parse_date

    try:
        date = parse_date(text)
    except ValueError:
        date = None
    if text and (date is None or date.tzinfo is None):
        raise UsageError(
            f"{option} `{text}` is not a date with a time zone: give it as ISO 8601, "
            "for instance 2025-01-01T00:00:00Z or 2025-01-01T09:00:00+02:00"
        )


async def _to_owner(db: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The owner's answer, or None when no engine owns the database."""
    from tiercel.engine.control import send
    from tiercel.engine.store import Store, StoreLockedError

    try:
        store = await Store.open(db)
    except StoreLockedError:
        try:
            return await send(db, request)
        except OSError as error:
            return {
                "ok": False,
                "error": f"{db} is owned by a Tiercel process that does not answer ({error})",
            }
    await store.close()
    return None


async def cmd_triggers(args: argparse.Namespace) -> int:
    db = _db(args)
    if not db.exists():
        raise UsageError(f"no database at {db} (give --db or set TIERCEL_DB)")
    chosen = args.enable or args.disable
    if chosen:
        await _check_trigger(db, *chosen)
        request = {
            "command": "set-trigger",
            "namespace": chosen[0],
            "flowId": chosen[1],
            "triggerId": chosen[2],
        }
        reply = await _to_owner(db, {**request, "enabled": bool(args.enable)})
        if reply is None:
            reply = await _switch_stored(db, chosen, bool(args.enable))
        if not reply.get("ok"):
            say(f"tiercel: {reply.get('error')}", err=True)
            return EXIT_FAILED
        say(f"{'.'.join(chosen)} {'enabled' if args.enable else 'disabled'}")
        return EXIT_OK
    reply = await _to_owner(db, {"command": "triggers"})
    rows = reply.get("triggers", []) if reply else await _stored_triggers(db)
    if reply is not None and not reply.get("ok"):
        say(f"tiercel: {reply.get('error')}", err=True)
        return EXIT_FAILED
    if args.json:
        say(json.dumps(rows, indent=2))
        return EXIT_OK
    for row in rows:
        state = "on" if row["enabled"] and not row.get("disabled") else "off"
        kind = (row.get("type") or "").rsplit(".", 1)[-1] or "-"
        backfill = row.get("backfill")
        progress = f"  backfill {backfill['status']} {backfill['fired']} fired" if backfill else ""
        say(
            f"{row['namespace']}.{row['flowId']}.{row['triggerId']:<20} {kind:<9} {state:<3} "
            f"last={row['lastDate'] or '-'} next={row['nextDate'] or '-'}{progress}"
        )
    return EXIT_OK


async def _stored_triggers(db: Path) -> list[dict[str, Any]]:
    from tiercel.engine.model import iso
    from tiercel.engine.store import Store

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


async def _switch_stored(db: Path, key: list[str], enabled: bool) -> dict[str, Any]:
    from tiercel.engine.store import Store, TriggerRow
    from tiercel.engine.triggers.schedule import switched

    async with await Store.open(db) as store:
        rows = {(r.namespace, r.flow_id, r.trigger_id): r for r in await store.trigger_rows()}
        row = rows.get((key[0], key[1], key[2])) or TriggerRow(key[0], key[1], key[2])
        if row.enabled != enabled:
            await store.save_trigger(switched(row, enabled))
    return {"ok": True}


async def cmd_backfill(args: argparse.Namespace) -> int:
    db = _db(args)
    trigger = {"namespace": args.namespace, "flowId": args.flow_id, "triggerId": args.trigger_id}
    action = args.action or "start"
    if action == "start" and not args.start:
        raise UsageError("backfill needs --start (or one of --pause, --resume, --cancel)")
    _date("--start", args.start)
    _date("--end", args.end)
    flows_dir = flows_folder(args.flows)
    inputs = parse_pairs(args.input or [], "--input")
    labels = parse_pairs(args.label or [], "--label")
    request = {"command": "backfill", "action": action, **trigger, "start": args.start, "end": args.end}
    reply = await _to_owner(db, {**request, "inputs": inputs, "labels": labels}) if db.exists() else None
    if reply is not None:
        if not reply.get("ok"):
            say(f"tiercel: {reply.get('error')}", err=True)
            return EXIT_FAILED
        say(f"backfill {action} sent to the engine running on {db}; follow it with `tiercel triggers`")
        return EXIT_OK
    if action in ("pause", "cancel"):
        say(f"tiercel: no engine runs on {db}, so no backfill is advancing to {action}", err=True)
        return EXIT_FAILED
    return await _backfill_here(args, db, flows_dir, action, inputs, labels)


async def _backfill_here(
    args: argparse.Namespace,
    db: Path,
    flows_dir: Path,
    action: str,
    inputs: dict[str, str],
    labels: dict[str, str],
) -> int:
    """Run an engine here until the backfill is done and its executions ended; Ctrl-C pauses it."""
    from tiercel.engine.commands import parse_date
    from tiercel.engine.triggers.schedule import SchedulerError

    engine = await open_engine(db, flows_dir)
    if engine is None:
        return EXIT_USAGE
    await engine.start(control=True, triggers=True)
    key = (args.namespace, args.flow_id, args.trigger_id)
    interrupted = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        try:
            if action == "resume":
                await engine.scheduler.resume_backfill(*key)
            else:
                start = parse_date(args.start)
                assert start is not None  # cmd_backfill asked for --start
                await engine.scheduler.backfill(*key, start, parse_date(args.end), inputs, labels)
        except (SchedulerError, ValueError) as error:
            say(f"tiercel: {error}", err=True)
            return EXIT_FAILED
        while not interrupted.is_set():
            state = next(
                s for s in engine.scheduler.triggers() if (s.namespace, s.flow_id, s.trigger_id) == key
            )
            progress = state.backfill
            if progress is None or progress.status not in ("RUNNING", "PAUSED"):
                if not engine.live_execution_ids():
                    break
            elif progress is not None:
                say(f"backfill {progress.status}: {progress.fired} fired, next {progress.current}", err=True)
            await asyncio.wait([asyncio.ensure_future(interrupted.wait())], timeout=1)
        if interrupted.is_set():
            await engine.scheduler.pause_backfill(*key)
            say("backfill paused; `tiercel backfill --resume ...` goes on from here", err=True)
            return 130
        done = next(s for s in engine.scheduler.triggers() if (s.namespace, s.flow_id, s.trigger_id) == key)
        fired, status = (done.backfill.fired, done.backfill.status) if done.backfill else (0, "DONE")
        say(f"backfill of {'.'.join(key)} {status}: {fired} executions")
    finally:
        await engine.stop()
    return EXIT_OK
