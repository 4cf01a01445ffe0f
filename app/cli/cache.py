"""`tiercel cache clear`: forget what a flow's task caches keep (`cache`, `taskCache`).

The engine that owns the database clears it (through `connect`); without one, an engine is started
here for it. The next run of each cached task runs it again.
"""

from __future__ import annotations

import argparse

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_db_option, command, existing_db, say


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "cache",
        "clear what a flow's task caches keep",
        [
            "tiercel cache clear acme.data nightly_load",
            "tiercel cache clear acme.data nightly_load --task extract",
        ],
    )
    add_db_option(parser)
    parser.add_argument("action", choices=["clear"], help="what to do with the cache")
    parser.add_argument("namespace", help="the flow's namespace")
    parser.add_argument("flow_id", help="the flow's id")
    parser.add_argument("--task", metavar="TASK_ID", help="only this task's cache")


async def cmd_cache(args: argparse.Namespace) -> int:
    from tiercel.engine import ConnectError, EngineCommandError, connect

    db = existing_db(args.db)
    try:
        async with connect(db, recover=set()) as commands:
            cleared = await commands.clear_task_cache(args.namespace, args.flow_id, args.task)
    except ConnectError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    except (EngineCommandError, OSError) as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    what = f"task `{args.task}` of " if args.task else ""
    entries = "entry" if cleared == 1 else "entries"
    say(f"{cleared} cached {entries} of {what}{args.namespace}.{args.flow_id} cleared")
    return EXIT_OK
