"""The `tiercel` command line.

Headless sub-commands import only the engine (never textual), so they start fast in scripts and CI.
Exit codes: 0 success, 1 failed execution or invalid flow, 2 usage error, 3 execution left PAUSED.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tiercel.engine.text import visible

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED = 0, 1, 2, 3


class UsageError(Exception):
    """A wrong command, option or argument: exit code 2 with the message."""


# -- locations --------------------------------------------------------------------------------


# The default database, for every command: in the folder the command runs from, so that `run FILE`,
# `run --flows DIR`, the dashboard and `executions` started in one folder all see the same executions,
# and a database never lands outside the current folder (or the one --db names).
DEFAULT_DB = Path(".tiercel") / "tiercel.db"


def default_flows_dir() -> Path:
    return Path("flows") if Path("flows").is_dir() else Path(".")


def flows_folder(name: str | None) -> Path:
    """The flows folder --flows names (it must exist: a usage error otherwise), else the default one."""
    if not name:
        return default_flows_dir()
    folder = Path(name)
    if not folder.is_dir():
        raise UsageError(f"{name}: no such flows folder")
    return folder


def resolve_db(db: str | None) -> Path:
    """--db, else TIERCEL_DB, else .tiercel/tiercel.db in the current folder."""
    if db:
        return Path(db)
    if os.environ.get("TIERCEL_DB"):
        return Path(os.environ["TIERCEL_DB"])
    return DEFAULT_DB


def parse_pairs(pairs: Sequence[str], what: str) -> dict[str, str]:
    """KEY=VALUE arguments into a dict."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} `{pair}` must look like KEY=VALUE")
        result[key] = value
    return result


def say(text: str = "", *, err: bool = False) -> None:
    """Print one message; every command prints through here.

    What is printed holds untrusted text (log lines, ids, error messages quoting flow files), so
    control characters are shown as ``\\xNN`` rather than obeyed by the terminal. JSON output is left
    as it is: ``json.dumps`` already escapes them (keep its default ``ensure_ascii``).
    """
    print(visible(text), file=sys.stderr if err else sys.stdout, flush=True)


class _SayHandler(logging.Handler):
    """The engine's warnings and errors, printed through `say`: they may quote a webhook's body."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(f"tiercel: {self.format(record)}", err=True)
        except Exception:
            self.handleError(record)


def report_engine_warnings() -> None:
    """Print the engine's warnings and errors on stderr (instead of Python's bare last resort)."""
    logger = logging.getLogger("tiercel")
    if not any(isinstance(handler, _SayHandler) for handler in logger.handlers):
        handler = _SayHandler(logging.WARNING)
        logger.addHandler(handler)


def format_log(entry: Any) -> str:
    from tiercel.engine.model import iso

    task = entry.task_id or "-"
    return f"{iso(entry.timestamp)} {entry.level.value:<5} {task:<20} {entry.message}"


# -- run --------------------------------------------------------------------------------------


async def cmd_run(args: argparse.Namespace) -> int:
    from tiercel.engine.engine import EngineCommandError
    from tiercel.engine.events import LogsAppended
    from tiercel.engine.inputs import InputError
    from tiercel.engine.model import Label, StateType
    from tiercel.engine.parser import FlowParseError, parse_flow_file

    target: list[str] = args.target
    flows_dir = flows_folder(args.flows) if args.flows else None
    file: Path | None = None
    if len(target) == 1:
        file = Path(target[0])
        if not file.is_file():
            raise UsageError(f"{file}: no such flow file (or give NAMESPACE FLOW_ID)")
        try:
            flow = parse_flow_file(file)
        except FlowParseError as error:
            say(str(error), err=True)
            return EXIT_USAGE
        flows_dir = flows_dir or file.parent
        namespace, flow_id = flow.namespace, flow.id
    elif len(target) == 2:
        namespace, flow_id = target
        flows_dir = flows_dir or default_flows_dir()
    else:
        raise UsageError("run takes a flow FILE, or a NAMESPACE and a FLOW_ID")
    inputs = parse_pairs(args.input or [], "--input")
    labels = [Label(k, v) for k, v in parse_pairs(args.label or [], "--label").items()]
    db = resolve_db(args.db)
    engine = await open_engine(db, flows_dir)
    if engine is None:
        return EXIT_USAGE
    await engine.start(triggers=False, recover=())
    try:
        if file is not None:
            # The file named on the command line is what runs, whatever else the folder holds.
            await engine.load_flow_file(file)
        if (namespace, flow_id) not in engine.flows:
            problems = [str(e) for errors in engine.flow_errors.values() for e in errors]
            say(f"tiercel: no valid flow `{flow_id}` in namespace `{namespace}` under {flows_dir}", err=True)
            for problem in problems:
                say(f"  {problem}", err=True)
            return EXIT_USAGE
        events = engine.events.subscribe()
        try:
            # The user names a local file for a FILE input here; triggers may pass only kestra:// URIs.
            execution_id = await engine.trigger(namespace, flow_id, inputs, labels, local_files=True)
        except InputError as error:
            say(f"tiercel: invalid inputs for {namespace}.{flow_id}:", err=True)
            for message in error.errors:
                say(f"  {message}", err=True)
            return EXIT_USAGE
        except EngineCommandError as error:
            say(f"tiercel: {error}", err=True)
            return EXIT_USAGE
        if not args.json:
            say(f"Execution {execution_id} of {namespace}.{flow_id} started", err=True)

        async def stream() -> None:
            while True:
                event = await events.get()
                if isinstance(event, LogsAppended):
                    try:
                        for entry in event.entries:
                            say(format_log(entry), err=args.json)
                    except BrokenPipeError:
                        return  # the reader left (`| head`): the execution still runs to its end

        streamer = asyncio.create_task(stream())
        stop_on_signals(engine, execution_id)
        execution = await engine.wait(execution_id, until_paused=True)
        await asyncio.sleep(0)
        await engine._flush_logs()
        await asyncio.sleep(0)
        streamer.cancel()
        for event in engine.events.drain(events):
            if isinstance(event, LogsAppended):
                for entry in event.entries:
                    say(format_log(entry), err=args.json)
    finally:
        await engine.stop()
    state = execution.state.current
    if args.json:
        say(json.dumps(execution.to_json(), indent=2))
    else:
        seconds = execution.state.duration().total_seconds()
        say(
            f"Execution {execution.id} ended {state.value} in {seconds:.3f} s",
            err=True,
        )
    if state in (StateType.SUCCESS, StateType.WARNING):
        return EXIT_OK
    return EXIT_PAUSED if state is StateType.PAUSED else EXIT_FAILED


async def engine_or_none(store: Any, flows_dir: Path | None) -> Any:
    """An Engine on the store, or None (store closed, message said) when its settings are wrong."""
    from tiercel.engine.engine import Engine
    from tiercel.engine.secrets import SecretError

    try:
        return Engine(store, flows_dir=flows_dir)
    except SecretError as error:
        say(f"tiercel: {error} (TIERCEL_SECRETS_FILE)", err=True)
        await store.close()
        return None


async def open_engine(db: Path, flows_dir: Path | None) -> Any:
    """An Engine owning `db` (not started), or None when it cannot be had (the message is said)."""
    from tiercel.engine.store import Store, StoreError

    try:
        store = await Store.open(db)
    except StoreError as error:
        say(f"tiercel: {error}", err=True)
        return None
    return await engine_or_none(store, flows_dir)


def stop_on_signals(engine: Any, execution_id: str) -> None:
    """Ctrl-C (or SIGTERM) kills the execution cleanly; a second one leaves it unfinished at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    pending: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        if pending:
            if main is not None:
                main.cancel()
            return
        say(f"Killing execution {execution_id} (interrupt again to stop at once)", err=True)
        task = loop.create_task(engine.kill(execution_id))
        pending.add(task)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)


# -- validate / flows / namespaces -----------------------------------------------------------------


def flow_files(paths: Sequence[str]) -> list[Path]:
    """The YAML files named, and those under the folders named, as the watcher sees them: without
    dot-folders or dot-files (.git, .venv, .tiercel) and without following links to folders."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found: list[Path] = []
            for root, dirs, names in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                yaml = (n for n in names if Path(n).suffix in (".yml", ".yaml"))
                found.extend(Path(root) / n for n in yaml if not n.startswith("."))
            files.extend(sorted(p for p in found if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return files


def cmd_validate(args: argparse.Namespace) -> int:
    from tiercel.engine.flows.catalog import NAMESPACE_FILES_FOLDER
    from tiercel.engine.flows.namespaces import NAMESPACE_FILES, Namespaces
    from tiercel.engine.parser import FlowParseError, parse_flow_file, validate_flows

    paths = args.paths or [str(default_flows_dir())]
    files = [f for f in flow_files(paths) if NAMESPACE_FILES_FOLDER not in f.parts]
    # Namespace declarations are checked, and give their plugin defaults to the flows below them.
    namespaces = Namespaces()
    for folder in {Path(p) for p in paths if Path(p).is_dir()}:
        namespaces.load(folder)
    flows = []
    failed = 0
    for file in files:
        if file.name in NAMESPACE_FILES:
            problems = namespaces.errors.get(str(file))
            failed += bool(problems)
            say("\n".join(str(p) for p in problems) if problems else f"OK {file} (namespace)")
            continue
        try:
            flow = parse_flow_file(file, defaults=namespaces.plugin_defaults)
        except FlowParseError as error:
            failed += 1
            say(str(error))
            continue
        flows.append(flow)
        say(f"OK {file} ({flow.namespace}.{flow.id})")
    for problem in validate_flows(flows):
        failed += 1
        say(str(problem))
    say(f"{len(files)} files, {failed} invalid", err=True)
    return EXIT_FAILED if failed else EXIT_OK


# -- executions / logs ------------------------------------------------------------------------------


async def _open_readonly(args: argparse.Namespace) -> Any:
    from tiercel.engine.store import Store

    db = resolve_db(args.db)
    if not db.exists():
        raise UsageError(f"no database at {db} (give --db or set TIERCEL_DB)")
    return await Store.open(db, readonly=True)


async def cmd_executions(args: argparse.Namespace) -> int:
    from tiercel.engine.model import StateType

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
        from tiercel.engine.model import iso

        for row in rows:
            say(f"{row.id}  {row.namespace}.{row.flow_id:<28} {row.state:<9} {iso(row.start_date)}")
    finally:
        await store.close()
    return EXIT_OK


async def cmd_logs(args: argparse.Namespace) -> int:
    from tiercel.engine.model import LogLevel

    store = await _open_readonly(args)
    try:
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
            async for batch in store.iter_logs(
                args.execution_id, level=level, task_id=args.task, after=after
            ):
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


# -- kill / resume / restart ------------------------------------------------------------------------


async def cmd_control(args: argparse.Namespace) -> int:
    from tiercel.engine.commands import EngineCommandError, parse_state
    from tiercel.engine.inputs import InputError
    from tiercel.engine.model import StateType
    from tiercel.engine.store import Store, StoreError, StoreLockedError

    db = resolve_db(args.db)
    if not db.exists():
        raise UsageError(f"no database at {db} (give --db or set TIERCEL_DB)")
    inputs = parse_pairs(getattr(args, "input", None) or [], "--input")
    request: dict[str, Any] = {"command": args.command, "executionId": args.execution_id, "inputs": inputs}
    if args.command == "replay":
        request.update(taskRunId=args.from_task_run, revision=args.revision)
    if args.command == "change-status":
        request["state"] = args.state
    try:
        store = await Store.open(db)
    except StoreLockedError:
        return await _control_running_engine(db, request)
    except StoreError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    engine = await engine_or_none(store, None)
    if engine is None:
        return EXIT_USAGE
    # Only the execution the command is about comes back to life in this short-lived engine.
    live = {args.execution_id} if args.command in ("kill", "resume") else set()
    await engine.start(control=False, triggers=False, recover=live)
    try:
        execution_id = args.execution_id
        if args.command == "kill":
            await engine.kill(execution_id)
        elif args.command == "resume":
            await engine.resume(execution_id, inputs)
        elif args.command == "replay":
            execution_id = await engine.replay(execution_id, args.from_task_run, revision=args.revision)
            say(f"Execution {execution_id} replays {args.execution_id}", err=True)
        elif args.command == "change-status":
            await engine.change_status(execution_id, parse_state(args.state))
        else:
            await engine.restart(execution_id)
        execution = await engine.wait(execution_id, until_paused=True)
    except EngineCommandError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    except InputError as error:  # resume: the onResume inputs given are missing or wrong
        say(f"tiercel: invalid inputs to resume {args.execution_id}:", err=True)
        for message in error.errors:
            say(f"  {message}", err=True)
        return EXIT_USAGE
    finally:
        await engine.stop()
    state = execution.state.current
    say(f"Execution {execution.id} is {state.value}")
    if args.command == "change-status" or (args.command == "kill" and state.is_terminated):
        return EXIT_OK
    if state in (StateType.SUCCESS, StateType.WARNING):
        return EXIT_OK
    return EXIT_PAUSED if state is StateType.PAUSED else EXIT_FAILED


async def _control_running_engine(db: Path, request: dict[str, Any]) -> int:
    """Hand the command to the engine that owns the database, through its control channel."""
    from tiercel.engine.control import send

    command = request["command"]
    try:
        reply = await send(db, request)
    except OSError as error:
        say(f"tiercel: {db} is owned by another Tiercel process that does not answer ({error})", err=True)
        return EXIT_FAILED
    if not reply.get("ok"):
        say(f"tiercel: {reply.get('error')}", err=True)
        return EXIT_USAGE if reply.get("usage") else EXIT_FAILED
    if reply.get("executionId"):
        say(str(reply["executionId"]))
    say(f"{command} sent to the engine running on {db}", err=bool(reply.get("executionId")))
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    """Open the dashboard on a flows folder; the engine runs inside it and stops with it."""
    flows_dir = flows_folder(args.flows)
    if not flows_dir.is_dir():
        raise UsageError(f"{flows_dir}: no such flows folder")
    db = resolve_db(args.db)
    problem = asyncio.run(_store_problem(db))
    if problem:  # said before the screen switches, so the message stays readable
        say(f"tiercel: {problem}", err=True)
        return EXIT_USAGE
    from .app import create_app

    webhooks = (args.host, args.port) if args.webhooks else None
    app = create_app(flows_dir, db, webhooks=webhooks)
    app.run()
    if app.startup_error:
        say(f"tiercel: {app.startup_error}", err=True)
        return EXIT_USAGE
    return app.return_code or EXIT_OK


async def _store_problem(db: Path) -> str | None:
    """Why the dashboard cannot own the database (another process holds it...), or None."""
    from tiercel.engine.store import Store, StoreError

    try:
        store = await Store.open(db)
    except StoreError as error:
        return str(error)
    await store.close()
    return None


# -- parser -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiercel", description="Kestra-compatible flows, in the terminal.")
    sub = parser.add_subparsers(dest="command")

    ui = sub.add_parser("ui", help="open the dashboard")
    ui.add_argument("--flows")
    ui.add_argument("--db")
    ui.add_argument(
        "--webhooks", action="store_true", help="serve webhook triggers, as `tiercel server` does"
    )
    ui.add_argument("--host", default="127.0.0.1", help="address for webhooks (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8080, help="port for webhooks (default: 8080)")

    run = sub.add_parser("run", help="run one execution of a flow to its end")
    run.add_argument("--flows", help="flows folder (default: the file's folder, ./flows or .)")
    run.add_argument("--db", help="database file (default: .tiercel/tiercel.db in the current folder)")
    run.add_argument("--input", action="append", metavar="KEY=VALUE")
    run.add_argument("--label", action="append", metavar="KEY=VALUE")
    run.add_argument("--json", action="store_true", help="print the final execution as JSON, nothing else")
    run.add_argument("target", nargs="+", metavar="FILE | NAMESPACE FLOW_ID")

    validate = sub.add_parser("validate", help="check flow files and folders")
    validate.add_argument("paths", nargs="*")

    from .cli_flows import add_parsers as add_flow_parsers
    from .cli_triggers import add_parsers as add_trigger_parsers
    from .server import add_parser as add_server_parser

    add_flow_parsers(sub)
    add_trigger_parsers(sub)
    add_server_parser(sub)

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

    for name, text in (
        ("kill", "kill an execution"),
        ("resume", "resume a paused execution"),
        ("restart", "run the failed tasks of an execution again"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("--db")
        if name == "resume":
            command.add_argument("--input", action="append", metavar="KEY=VALUE")
        command.add_argument("execution_id")
    replay = sub.add_parser(
        "replay", help="run an ended execution again, from a chosen task run or the start"
    )
    replay.add_argument("--db")
    replay.add_argument("--from", dest="from_task_run", metavar="TASKRUN_ID")
    replay.add_argument("--revision", type=int, help="the flow revision to replay with (default: the same)")
    replay.add_argument("execution_id")
    change = sub.add_parser("change-status", help="set the state of an ended execution")
    change.add_argument("--db")
    change.add_argument("execution_id")
    change.add_argument("state", help="SUCCESS, WARNING, FAILED, KILLED or CANCELLED")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    report_engine_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "ui"
    if args.command is None:
        args.flows, args.db, args.webhooks = None, None, False
    try:
        if command == "run":
            return asyncio.run(cmd_run(args))
        if command == "validate":
            return cmd_validate(args)
        if command in ("flows", "namespaces", "revisions"):
            from . import cli_flows

            handlers = {
                "flows": cli_flows.cmd_flows,
                "namespaces": cli_flows.cmd_namespaces,
                "revisions": cli_flows.cmd_revisions,
            }
            return asyncio.run(handlers[command](args))
        if command in ("triggers", "backfill"):
            from . import cli_triggers

            handler = cli_triggers.cmd_triggers if command == "triggers" else cli_triggers.cmd_backfill
            return asyncio.run(handler(args))
        if command == "server":
            from .server import cmd_server

            return asyncio.run(cmd_server(args))
        if command == "executions":
            return asyncio.run(cmd_executions(args))
        if command == "logs":
            return asyncio.run(cmd_logs(args))
        if command in ("kill", "resume", "restart", "replay", "change-status"):
            return asyncio.run(cmd_control(args))
        return cmd_ui(args)
    except UsageError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130
    except BrokenPipeError:
        return _reader_left()
    except Exception as error:
        # The store's own errors (unreadable file, incomplete install ...) are messages, not tracebacks.
        from tiercel.engine.store import StoreError

        if not isinstance(error, StoreError):
            raise
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED


def _reader_left() -> int:
    """Standard output was closed early (`tiercel executions | head -2`): end quietly, as a program
    stopped by SIGPIPE does, without a traceback nor an error when Python flushes it at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
