"""`tiercel run` and `tiercel validate`: one execution of a flow to its end, and checking flow files.

`run` owns the database while it runs: its engine loads the flows folder and fires no trigger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PAUSED,
    EXIT_USAGE,
    UsageError,
    default_flows_dir,
    flow_files,
    flows_folder,
    format_log,
    open_engine,
    parse_pairs,
    resolve_db,
    say,
)

if TYPE_CHECKING:
    from tiercel.engine import Commands


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run one execution of a flow to its end")
    run.add_argument("--flows", help="flows folder (default: the file's folder, ./flows or .)")
    run.add_argument("--db", help="database file (default: .tiercel/tiercel.db in the current folder)")
    run.add_argument("--input", action="append", metavar="KEY=VALUE")
    run.add_argument("--label", action="append", metavar="KEY=VALUE")
    run.add_argument("--json", action="store_true", help="print the final execution as JSON, nothing else")
    run.add_argument("target", nargs="+", metavar="FILE | NAMESPACE FLOW_ID")

    validate = sub.add_parser("validate", help="check flow files and folders")
    validate.add_argument("paths", nargs="*")


async def cmd_run(args: argparse.Namespace) -> int:
    from tiercel.engine import (
        EngineCommandError,
        FlowParseError,
        InputError,
        Label,
        LogsAppended,
        StateType,
        parse_flow_file,
    )

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
            return EXIT_FAILED  # an invalid flow, as `validate` reports it (2 is for usage errors)
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
        await engine.flush_logs()  # the lines still buffered, announced on the bus before the drain
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


def stop_on_signals(engine: Commands, execution_id: str) -> None:
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


def cmd_validate(args: argparse.Namespace) -> int:
    from tiercel.engine import (
        NAMESPACE_FILES,
        NAMESPACE_FILES_FOLDER,
        FlowParseError,
        Namespaces,
        parse_flow_file,
        validate_flows,
    )

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
