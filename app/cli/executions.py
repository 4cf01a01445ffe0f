"""`tiercel executions` and `tiercel logs`: read-only queries of the store.

They open the database read-only and take no lock, so they work beside a running engine (the
dashboard, `tiercel server`) as well as without one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, UsageError, execution_id_in, existing_db, format_log, say
from .tables import table

if TYPE_CHECKING:
    from tiercel.engine import Store


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    executions = sub.add_parser("executions", help="list executions, newest first")
    executions.add_argument("--db")
    executions.add_argument("--namespace")
    executions.add_argument("--flow")
    executions.add_argument("--state")
    executions.add_argument("--limit", type=int, default=100)
    executions.add_argument("--json", action="store_true")

    logs = sub.add_parser("logs", help="print an execution's logs")
    logs.add_argument("--db")
    logs.add_argument("--level")
    logs.add_argument("--task")
    logs.add_argument("--follow", "-f", action="store_true")
    logs.add_argument("execution_id")


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
            say("\n".join(table(cells)))
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
