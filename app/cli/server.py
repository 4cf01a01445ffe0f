"""`tiercel server` and `tiercel ui`: the engines that own a database until they are stopped.

`server` runs the engine, the flows watcher, the triggers and the webhook port (with `/metrics` and
`/health`) with no screen, and logs its executions and flow files on stderr (activity.py). It runs
until SIGTERM or SIGINT, then
stops cleanly: no new executions start, running tasks are stopped and every state reached is
stored, so the next engine on the database carries on.
`ui` opens the dashboard, with the engine running inside it. Both serve the control channel the
other commands reach them through.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tiercel.engine import describe_target

from .activity import ServerActivity, log_line
from .dashboard_access import add_access_options, dashboard_principal

if TYPE_CHECKING:
    from collections.abc import Callable

    from tiercel.engine import DbTarget, Engine, HttpHandler, WebhookGate

    from ..api import Credentials
    from ..api.users import Users

from .common import (
    DEFAULT_CONCURRENCY,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_db_option,
    add_flows_option,
    add_log_format_option,
    add_storage_option,
    command,
    default_flows_dir,
    flows_folder,
    positive_int,
    resolve_db,
    say,
    stop_requested,
    use_log_format,
    use_storage,
)

# The API's credentials, `user:password` (an environment variable: a command line shows in `ps`).
CREDENTIALS_VARIABLE = "TIERCEL_API_USER"


def add_ui_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ui = command(
        sub,
        "ui",
        "open the dashboard",
        [
            "tiercel ui",
            "tiercel ui --flows sample_flows",
            "tiercel ui --webhooks --port 8080",
            "tiercel ui --db postgresql://tiercel@db.example/tiercel",
            "tiercel ui --read-only",
            "tiercel ui --db postgresql://tiercel@db.example/tiercel --users users.yaml --user erin",
        ],
    )
    add_flows_option(ui)
    add_db_option(ui)
    add_storage_option(ui)
    ui.add_argument(
        "--webhooks",
        action="store_true",
        help="serve webhook triggers and the REST API, as `tiercel server` does",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address for webhooks (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8080, help="port for webhooks (default: 8080)")
    ui.add_argument(
        "--users",
        metavar="FILE",
        help="a users file: the dashboard's --user is one of its users; with --webhooks, the API's "
        "users too, as `tiercel server`'s",
    )
    add_access_options(ui)
    _add_open_webhooks_option(ui)


def add_server_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    server = command(
        sub,
        "server",
        "run the engine, watcher, scheduler, webhooks and Kestra's REST API without the dashboard",
        [
            "tiercel server --flows flows",
            "TIERCEL_API_USER=admin:secret tiercel server --host 0.0.0.0 --port 8080",
            "tiercel server --db postgresql://tiercel@db.example/tiercel --no-worker",
        ],
    )
    add_flows_option(server)
    add_db_option(server)
    add_log_format_option(server)
    add_storage_option(server)
    server.add_argument(
        "--host",
        default="127.0.0.1",
        help="address for the API and webhooks (default: 127.0.0.1; beyond it, the API needs "
        "TIERCEL_API_USER=user:password)",
    )
    server.add_argument(
        "--users",
        metavar="FILE",
        help="a users file: the API asks each request for one of its users, who acts with their namespace "
        "permissions (see README, Namespace permissions)",
    )
    _add_open_webhooks_option(server)
    server.add_argument(
        "--port", type=int, default=8080, help="port for the API and webhooks (default: 8080; 0: any free)"
    )
    cluster = server.add_argument_group("with a PostgreSQL store (--db postgresql://...)")
    cluster.add_argument(
        "--no-worker",
        action="store_true",
        help="run no worker here (`tiercel worker` processes run the tasks)",
    )
    cluster.add_argument(
        "--concurrency", type=positive_int, default=DEFAULT_CONCURRENCY,
        help=f"task runs the local worker runs at once (default: {DEFAULT_CONCURRENCY})",
    )  # fmt: skip
    cluster.add_argument(
        "--heartbeat-timeout", type=float, default=10.0, metavar="SECONDS",
        help="a worker or server silent this long is taken as gone, its work handed to others (default: 10)",
    )  # fmt: skip


def _add_open_webhooks_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--open-webhooks",
        action="store_true",
        help="with --users: a webhook call needs its key alone, as in Kestra (by default, also a user "
        "who may run the flow's namespace)",
    )


def _api_users(path: str | None) -> Users | None:
    """The users file's users; a file that cannot be used stops the command before anything starts."""
    from ..api.users import Users, UsersFileError

    if path is None:
        return None
    try:
        return Users.load(Path(path))
    except UsersFileError as error:
        raise UsageError(f"--users: {error}") from None


def _check_webhook_options(args: argparse.Namespace) -> None:
    """Refuse what would mean nothing, or leave the API open beside a read-only dashboard."""
    users = getattr(args, "users", None)
    if getattr(args, "open_webhooks", False) and not users:
        raise UsageError("--open-webhooks is for --users: without users, webhooks need their key alone")
    if getattr(args, "read_only", False) and getattr(args, "webhooks", False) and not users:
        from ..api.auth import is_loopback

        if is_loopback(args.host) and not os.environ.get(CREDENTIALS_VARIABLE):
            raise UsageError(
                "--read-only with --webhooks: the API would be open to anyone on this machine, who could "
                f"do what the dashboard may not; give it users (--users FILE) or {CREDENTIALS_VARIABLE}"
            )


def _webhook_gate(
    args: argparse.Namespace, users: Users | None, credentials: Credentials | None
) -> Callable[[Engine], WebhookGate] | None:
    """What a webhook call must pass: with a users file, a user who may run the flow's namespace."""
    if users is None or args.open_webhooks:
        return None
    from ..api.auth import webhook_gate

    return lambda engine: webhook_gate(users, credentials, engine.catalog.namespaces.chain)


def _api_credentials() -> Credentials | None:
    """The API's user and password, from the environment (never the command line, which `ps` shows)."""
    from ..api import Credentials

    text = os.environ.get(CREDENTIALS_VARIABLE)
    if not text:
        return None
    try:
        return Credentials.parse(text)
    except ValueError as error:
        raise UsageError(f"{CREDENTIALS_VARIABLE}: {error}") from None


async def cmd_server(args: argparse.Namespace) -> int:
    from tiercel.engine import HostedEngine, SecretError, StoreError, Telemetry, WebhookServer

    from ..api import api_app
    from ..api.asgi import asgi_handler
    from ..api.auth import is_loopback

    use_log_format(args)

    flows_dir = Path(args.flows) if args.flows else default_flows_dir()
    if not flows_dir.is_dir():
        raise UsageError(f"{flows_dir}: no such flows folder")
    use_storage(args)
    credentials = _api_credentials()
    _check_webhook_options(args)
    users = _api_users(args.users)
    db = resolve_db(args.db)
    concurrency = 0 if args.no_worker else args.concurrency
    try:  # on PostgreSQL, one server of the store's cluster
        hosted = await HostedEngine.open(
            db, flows_dir, local_concurrency=concurrency, heartbeat_timeout=args.heartbeat_timeout
        )
    except StoreError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    except SecretError as error:
        say(f"tiercel: {error} (TIERCEL_SECRETS_FILE)", err=True)
        return EXIT_USAGE
    engine = hosted.engine
    stopping = stop_requested()
    # /metrics and /health beside the webhooks, from the engine's events and a read of its store.
    telemetry = Telemetry(engine, lambda: engine.list_executions(limit=1), hosted.lost.is_set)
    open_api = is_loopback(args.host)
    api = api_app(engine, credentials=credentials, open_api=open_api, users=users)
    handler = asgi_handler(api, server=(args.host, args.port))
    gate = _webhook_gate(args, users, credentials)
    webhooks = WebhookServer(
        engine,
        args.host,
        args.port,
        routes=telemetry.routes(),
        fallback=handler,
        gate=gate(engine) if gate is not None else None,
    )
    # The port first: a busy one must stop us before the engine resumes anything (a rerun that is
    # cancelled at once would use up an attempt for nothing).
    try:
        await webhooks.start()
    except OSError as error:
        await engine.store.close()
        say(f"tiercel: cannot listen on {args.host}:{args.port}: {error.strerror or error}", err=True)
        return EXIT_USAGE
    telemetry.start()
    await hosted.start(watch=True)
    activity = ServerActivity(engine)
    try:
        errors = sum(len(found) for found in engine.flow_errors.values())
        member = f", server {hosted.server_id}" if hosted.server_id else ""
        log_line(
            f"tiercel server: {len(engine.flows)} flows from {flows_dir} ({errors} errors), "
            f"database {describe_target(db)}{member}, webhooks on {webhooks.url}",
            "server.started",
            webhooks=webhooks.url,
            server=hosted.server_id,
        )
        if credentials is None and users is None and not open_api:
            log_line(
                f"tiercel server: the API is off beyond the loopback interface without credentials: "
                f"set {CREDENTIALS_VARIABLE}=user:password (webhooks, /metrics and /health are served)",
                "server.api_off",
            )
        activity.start()
        await _either(stopping, hosted.lost)
        log_line("tiercel server: stopping", "server.stopping")
    finally:
        await webhooks.stop()
        await hosted.stop()
        await activity.stop()
        await telemetry.stop()
    if hosted.lost.is_set():
        say("tiercel: this server was declared gone by the cluster (it was silent too long); "
            "its executions went to other servers", err=True)  # fmt: skip
        return EXIT_FAILED
    return EXIT_OK


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


def cmd_ui(args: argparse.Namespace) -> int:
    """Open the dashboard on a flows folder; the engine runs inside it and stops with it."""
    flows_dir = flows_folder(args.flows)
    if not flows_dir.is_dir():
        raise UsageError(f"{flows_dir}: no such flows folder")
    users_file = getattr(args, "users", None)  # `tiercel` alone has no such option
    if users_file and not args.webhooks and not args.user:
        raise UsageError("--users: name the dashboard's user with --user, or serve the API with --webhooks")
    _check_webhook_options(args)
    users = _api_users(users_file)
    principal = dashboard_principal(args, users)
    use_storage(args)
    db = resolve_db(args.db)
    problem = asyncio.run(_store_problem(db))
    if problem:  # said before the screen switches, so the message stays readable
        say(f"tiercel: {problem}", err=True)
        return EXIT_USAGE
    from ..app import TiercelApp

    webhooks = (args.host, args.port) if args.webhooks else None
    credentials = _api_credentials()

    def api(engine: Engine) -> HttpHandler:
        from ..api import api_app
        from ..api.asgi import asgi_handler
        from ..api.auth import is_loopback

        served = api_app(engine, credentials=credentials, open_api=is_loopback(args.host), users=users)
        return asgi_handler(served, server=(args.host, args.port))

    app = TiercelApp(
        flows_dir,
        db,
        webhooks=webhooks,
        api=api if webhooks else None,
        gate=_webhook_gate(args, users, credentials),
        principal=principal,
    )
    app.run()
    if app.startup_error:
        say(f"tiercel: {app.startup_error}", err=True)
        return EXIT_USAGE
    return app.return_code or EXIT_OK


async def _store_problem(db: DbTarget) -> str | None:
    """Why the dashboard cannot own the database file (another process holds it...), or None. (On
    PostgreSQL it joins the store's cluster beside the servers; its problems are said on exit.)"""
    from tiercel.engine import Store, StoreError

    if isinstance(db, str):
        return None
    try:
        store = await Store.open(db)
    except StoreError as error:
        return str(error)
    await store.close()
    return None
