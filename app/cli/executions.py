"""`tiercel executions`, `tiercel logs` and `tiercel metrics`: read-only queries of the store.

They open the database read-only and take no lock, so they work beside a running engine (the
dashboard, `tiercel server`) as well as without one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING

from .colour import coloured_log, colours, paint
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    add_db_option,
    add_execution_argument,
    add_json_option,
    command,
    execution_id_in,
    existing_db,
    format_log,
    say,
)
from .tables import table

if TYPE_CHECKING:
    from tiercel.engine import Store


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    executions = command(
        sub,
        "executions",
        "list executions, newest first",
        [
            "tiercel executions",
            "tiercel executions --namespace acme --state FAILED --limit 20",
            "tiercel executions --flow nightly_load --namespace acme.data --json | jq '.[0].id'",
        ],
    )
    add_db_option(executions)
    executions.add_argument("--namespace", help="only this namespace and the namespaces below it")
    executions.add_argument("--flow", metavar="FLOW_ID", help="only the executions of this flow")
    executions.add_argument("--state", help="only executions in this state (RUNNING, SUCCESS, FAILED ...)")
    executions.add_argument("--limit", type=int, default=100, help="how many at most (default: 100)")
    add_json_option(executions, "the executions")

    logs = command(
        sub,
        "logs",
        "print an execution's logs",
        [
            "tiercel logs 4wjtkzwV",
            "tiercel logs 4wjtkzwV --level WARN --task extract",
            "tiercel logs -f 4wjtkzwV",
            "tiercel logs --json 4wjtkzwV | jq -r .message",
        ],
    )
    add_db_option(logs)
    logs.add_argument("--level", help="only lines at this level or above (TRACE, DEBUG, INFO, WARN, ERROR)")
    logs.add_argument("--task", metavar="TASK_ID", help="only the lines of this task")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="go on printing new lines until the execution ends"
    )
    add_json_option(logs, "one log entry a line (Kestra's shape)")
    add_execution_argument(logs)

    metrics = command(
        sub,
        "metrics",
        "print the metrics an execution's tasks reported (counters and timers)",
        [
            "tiercel metrics 4wjtkzwV",
            "tiercel metrics 4wjtkzwV --task transform",
            "tiercel metrics --json 4wjtkzwV | jq '.[] | select(.name == \"rows\") | .value'",
        ],
    )
    add_db_option(metrics)
    metrics.add_argument("--task", metavar="TASK_ID", help="only the metrics of this task")
    add_json_option(metrics, "the metric entries (Kestra's shape: a timer's value in milliseconds)")
    add_execution_argument(metrics)


async def _open_readonly(args: argparse.Namespace) -> Store:
    from tiercel.engine import Store

    return await Store.open(existing_db(args.db), readonly=True)


async def cmd_executions(args: argparse.Namespace) -> int:
    from tiercel.engine import StateType

    if args.state and args.state.upper() not in StateType.__members__:
        raise UsageError(f"unknown state `{args.state}` ({', '.join(StateType.__members__)})")
    store = await _open_readonly(args)
    try:
        rows = await store.list_executions(
            namespace=args.namespace,
            flow_id=args.flow,
            state=args.state.upper() if args.state else None,
            limit=args.limit,
        )
        if args.json:
            executions = [await store.get_execution(row.id) for row in rows]
            say(json.dumps([e.to_json() for e in executions if e is not None], indent=2))
            return EXIT_OK
        from tiercel.engine import iso

        cells = [
            [
                row.id,
                f"{row.namespace}.{row.flow_id}",
                row.state,
                iso(row.start_date) or "-",
            ]
            for row in rows
        ]
        if cells:
            state = {2: lambda shown, text: paint(shown, text, sys.stdout)}
            say("\n".join(table(cells, paint=state)), shown=True)
    finally:
        await store.close()
    return EXIT_OK


async def cmd_logs(args: argparse.Namespace) -> int:
    from tiercel.engine import LogLevel

    store = await _open_readonly(args)
    try:
        args.execution_id = await execution_id_in(store, args.execution_id)
        execution = await store.get_execution(args.execution_id)
        if execution is None:
            say(f"tiercel: no execution {args.execution_id}", err=True)
            return EXIT_FAILED
        try:
            level = LogLevel.parse(args.level).value if args.level else None
        except ValueError:
            raise UsageError(f"unknown log level `{args.level}` (TRACE, DEBUG, INFO, WARN, ERROR)") from None
        # Streamed a batch at a time (one query, one write each): a log of millions of lines is
        # never held whole.
        after = 0
        while True:
            # aclosing: when a write fails (the reader left), the read of the next batch ends here,
            # before the store closes, not later as an error of its own.
            batches = store.iter_logs(args.execution_id, level=level, task_id=args.task, after=after)
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    after = batch[-1][0]
                    if args.json:  # one JSON document a line: a log of millions of lines streams
                        say("\n".join(json.dumps(entry.to_json()) for _, entry in batch))
                    elif colours(sys.stdout):
                        say("\n".join(coloured_log(entry, sys.stdout) for _, entry in batch), shown=True)
                    else:
                        say("\n".join(format_log(entry) for _, entry in batch))
            if not args.follow:
                break
            execution = await store.get_execution(args.execution_id)
            if execution is None or execution.state.current.is_terminated:
                args.follow = False
            await asyncio.sleep(0.3)
    finally:
        await store.close()
    return EXIT_OK


async def cmd_metrics(args: argparse.Namespace) -> int:
    store = await _open_readonly(args)
    try:
        args.execution_id = await execution_id_in(store, args.execution_id)
        if await store.get_execution(args.execution_id) is None:
            say(f"tiercel: no execution {args.execution_id}", err=True)
            return EXIT_FAILED
        entries = await store.metrics(args.execution_id, task_id=args.task)
    finally:
        await store.close()
    if args.json:
        say(json.dumps([entry.to_json() for entry in entries], indent=2))
    elif entries:
        cells = [["TASK", "NAME", "TYPE", "VALUE", "TAGS"]]
        for entry in entries:
            tags = " ".join(f"{key}={value}" for key, value in sorted(entry.tags.items()))
            cells.append([entry.task_id or "-", entry.name, entry.type, entry.shown(), tags])
        say("\n".join(line.rstrip() for line in table(cells, align=("<", "<", "<", ">"))))
    else:
        say(f"no metrics for execution {args.execution_id}", err=True)
    return EXIT_OK
