"""`tiercel server`: the engine, the flows watcher, the triggers and the webhook port, with no screen.

It runs until SIGTERM or SIGINT, then stops cleanly: no new executions start, running tasks are
stopped and every state reached is stored, so the next engine on the database carries on.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from .cli import EXIT_OK, EXIT_USAGE, UsageError, default_flows_dir, open_engine, resolve_db, say


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    server = sub.add_parser(
        "server", help="run the engine, watcher, scheduler and webhooks without the dashboard"
    )
    server.add_argument("--flows", help="flows folder (default: ./flows or .)")
    server.add_argument("--db", help="database file (default: .tiercel/tiercel.db in the current folder)")
    server.add_argument("--host", default="127.0.0.1", help="address for webhooks (default: 127.0.0.1)")
    server.add_argument(
        "--port", type=int, default=8080, help="port for webhooks (default: 8080; 0: any free)"
    )


async def cmd_server(args: argparse.Namespace) -> int:
    from tiercel.engine.triggers.webhook import WebhookServer

    flows_dir = Path(args.flows) if args.flows else default_flows_dir()
    if not flows_dir.is_dir():
        raise UsageError(f"{flows_dir}: no such flows folder")
    db = resolve_db(args.db)
    engine = await open_engine(db, flows_dir)
    if engine is None:
        return EXIT_USAGE
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    webhooks = WebhookServer(engine, args.host, args.port)
    # The port first: a busy one must stop us before the engine resumes anything (a rerun that is
    # cancelled at once would use up an attempt for nothing).
    try:
        await webhooks.start()
    except OSError as error:
        await engine.store.close()
        say(f"tiercel: cannot listen on {args.host}:{args.port}: {error.strerror or error}", err=True)
        return EXIT_USAGE
    await engine.start(watch=True)
    try:
        errors = sum(len(found) for found in engine.flow_errors.values())
        say(
            f"tiercel server: {len(engine.flows)} flows from {flows_dir} ({errors} errors), database {db}, "
            f"webhooks on {webhooks.url}",
            err=True,
        )
        await stopping.wait()
        say("tiercel server: stopping", err=True)
    finally:
        await webhooks.stop()
        await engine.stop()
    return EXIT_OK
