"""`tiercel run` and `tiercel validate`: one execution of a flow to its end, and checking flow files.

`run` owns the database while it runs: its engine loads the flows folder and fires no trigger. When
the dashboard or a server owns the database, the run goes to that engine instead (following.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_db_option,
    add_flows_option,
    add_json_option,
    add_storage_option,
    add_value_options,
    command,
    default_flows_dir,
    flow_files,
    flows_folder,
    parse_pairs,
    report_input_error,
    resolve_db,
    say,
    silence_stdout,
    use_storage,
    warn_undeclared_inputs,
)
from .progress import RunView
from .remote_run import run_through
from .running import RunRequest, finish, stop_on_signals

if TYPE_CHECKING:
    from tiercel.engine import Engine, Event, FlowError, TaskRun


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = command(
        sub,
        "run",
        "run one execution of a flow to its end",
        [
            "tiercel run flows/hello.yml",
            "tiercel run acme.data nightly_load --input day=2025-01-31 --label team=data",
            "tiercel run --flows sample_flows acme.data.ingest exchange_rates --json > result.json",
        ],
    )
    add_flows_option(run, "the file's folder, ./flows or .")
    add_db_option(run)
    add_storage_option(run)
    add_value_options(run)
    run.add_argument("--json", action="store_true", help="print the final execution as JSON, nothing else")
    run.add_argument(
        "target", nargs="+", metavar="FILE | NAMESPACE FLOW_ID",
        help="a flow file, or a flow of the flows folder by its namespace and id",
    )  # fmt: skip

    validate = command(
        sub,
        "validate",
        "check flow files and folders",
        ["tiercel validate", "tiercel validate flows/hello.yml flows/acme/", "tiercel validate --json flows"],
    )
    add_json_option(validate, "every file with its errors (file, line, column, message)")
    validate.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="flow files and folders (default: ./flows if there is one, else .)",
    )


def _request(args: argparse.Namespace) -> RunRequest | int:
    """The run asked for, or the exit code when the flow file is invalid (said already)."""
    from tiercel.engine import warm_python

    target: list[str] = args.target
    flows_dir = flows_folder(args.flows) if args.flows else None
    file, flow = None, None
    if len(target) == 1:
        file = Path(target[0])
        if not file.is_file():
            raise UsageError(f"{file}: no such flow file (or give NAMESPACE FLOW_ID)")
        warm_python(file)  # its Python tasks' interpreter starts while the engine loads
    from tiercel.engine import FlowParseError, Label, parse_flow_file

    if file is not None:
        try:
            flow = parse_flow_file(file)
        except FlowParseError as error:
            say(str(error), err=True)
            return EXIT_FAILED  # an invalid flow, as `validate` reports it (2 is for usage errors)
        namespace, flow_id = flow.namespace, flow.id
    elif len(target) == 2:
        namespace, flow_id = target
    else:
        raise UsageError("run takes a flow FILE, or a NAMESPACE and a FLOW_ID")
    inputs = parse_pairs(args.input or [], "--input")
    labels = [Label(k, v) for k, v in parse_pairs(args.label or [], "--label").items()]
    folder = flows_dir or (file.parent if file is not None else default_flows_dir())
    return RunRequest(
        namespace, flow_id, folder, flows_dir is not None, file, flow, inputs, labels, args.json
    )


async def cmd_run(args: argparse.Namespace) -> int:
    """Run here when the database is free; through its owner's control channel when the dashboard
    or a server owns it."""
    from tiercel.engine import ConnectError, ControlClient, Engine, connect

    request = _request(args)
    if isinstance(request, int):
        return request
    use_storage(args)
    db = resolve_db(args.db)
    view = RunView(json_output=request.json_output)
    try:
        # A file's run reads only that file and the flows it names, not every flow beside it.
        async with connect(
            db,
            flows_dir=request.flows_dir,
            recover=(),
            triggers=False,
            control=True,
            flows_on_demand=request.file is not None,
        ) as commands:
            if isinstance(commands, ControlClient):
                return await run_through(commands, request, view)
            assert isinstance(commands, Engine)
            return await _run_here(commands, request, view)
    except ConnectError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    finally:
        view.close()


async def _run_here(engine: Engine, request: RunRequest, view: RunView) -> int:
    """Run in the engine this command owns; it loads the flows folder and fires no trigger."""
    from tiercel.engine import EngineCommandError, FlowParseError, InputError, StateType

    namespace, flow_id = request.namespace, request.flow_id
    if request.file is not None:
        # The file named on the command line is what runs, whatever else the folder holds.
        try:
            await engine.load_flow_file(request.file)
        except FlowParseError as error:  # its subflow calls lead back to it, as `validate` says
            say(str(error), err=True)
            return EXIT_FAILED
    if (namespace, flow_id) not in engine.flows:
        say(
            f"tiercel: no valid flow `{flow_id}` in namespace `{namespace}` under {request.flows_dir}",
            err=True,
        )
        for errors in engine.flow_errors.values():
            for problem in errors:
                say(f"  {problem}", err=True)
        return EXIT_USAGE
    flow = engine.flows[(namespace, flow_id)]
    for warning in flow.warnings:  # what the flow asks for that this engine does not do
        say(f"warning: {warning}", err=True)
    warn_undeclared_inputs(request.inputs, flow)
    events = engine.events.subscribe()
    try:
        # The user names a local file for a FILE input here; triggers may pass only kestra:// URIs.
        execution_id = await engine.trigger(
            namespace, flow_id, request.inputs, request.labels, local_files=True
        )
    except InputError as error:
        report_input_error(error, f"invalid inputs for {namespace}.{flow_id}:")
        return EXIT_USAGE
    except EngineCommandError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    view.say(f"Execution {execution_id} of {namespace}.{flow_id} started")
    view.start()
    # A retry with `behavior: CREATE_NEW_EXECUTION` ends an execution RETRIED and starts the next
    # attempt as a new execution: the run follows the attempts to the last one.
    attempts: dict[tuple[str, int], str] = {}
    while True:
        streamer = asyncio.create_task(_stream(events, execution_id, view, attempts))
        stop_on_signals(engine, execution_id, view)
        try:
            execution = await engine.wait(execution_id, until_paused=True)
            await asyncio.sleep(0)
            await engine.flush_logs()  # the lines still buffered, announced on the bus before the drain
            await asyncio.sleep(0)
        finally:
            streamer.cancel()
        try:
            _show(engine.events.drain(events), execution_id, view, attempts)
        except BrokenPipeError:
            silence_stdout()  # the reader left (`| head`): the end is still said, on stderr
        following = attempts.get((execution.original_id or execution.id, execution.attempt_number + 1))
        if execution.state.current is not StateType.RETRIED or following is None:
            return finish(execution, view)
        view.say(f"Execution {execution_id} RETRIED: attempt {execution.attempt_number + 1} is {following}")
        execution_id = following


async def _stream(
    events: asyncio.Queue[Event], execution_id: str, view: RunView, attempts: dict[tuple[str, int], str]
) -> None:
    from tiercel.engine import EventBus

    while True:
        batch = [await events.get(), *EventBus.drain(events)]
        try:
            _show(batch, execution_id, view, attempts)
        except BrokenPipeError:
            silence_stdout()
            return  # the reader left (`| head`): the execution still runs to its end


def _show(
    events: list[Event], execution_id: str, view: RunView, attempts: dict[tuple[str, int], str]
) -> None:
    """Log lines (of the execution and of its subflows), and the execution's task runs: those
    announced together are shown together, in the order they changed. New attempts of executions
    (retries that create one) are noted in `attempts`, by first execution and attempt number."""
    from tiercel.engine import ExecutionChanged, LogsAppended, TaskRunChanged

    runs: list[TaskRun] = []
    for event in events:
        if isinstance(event, TaskRunChanged) and event.execution_id == execution_id:
            runs.append(event.task_run)
            continue
        if runs:
            view.task_runs(runs)
            runs = []
        if isinstance(event, LogsAppended):
            view.logs(event.entries)
        elif isinstance(event, ExecutionChanged) and event.execution.id == execution_id:
            view.execution(event.execution, task_runs=False)  # each came as a TaskRunChanged
        elif isinstance(event, ExecutionChanged) and event.execution.attempt_number > 1:
            attempt = event.execution
            attempts.setdefault((attempt.original_id or attempt.id, attempt.attempt_number), attempt.id)
    view.task_runs(runs)


def cmd_validate(args: argparse.Namespace) -> int:
    from tiercel.engine import (
        NAMESPACE_FILES,
        NAMESPACE_FILES_FOLDER,
        FlowParseError,
        Namespaces,
        is_test_file,
        parse_flow_file,
        read_suite,
        validate_flows,
    )

    paths = args.paths or [str(default_flows_dir())]
    files = [f for f in flow_files(paths) if NAMESPACE_FILES_FOLDER not in f.parts]
    # Namespace declarations are checked, and give their plugin defaults to the flows below them.
    namespaces = Namespaces()
    for folder in {Path(p) for p in paths if Path(p).is_dir()}:
        namespaces.load(folder)
    flows = []
    results: dict[str, Checked] = {}
    for file in files:
        checked = results[str(file)] = Checked(str(file))
        if file.name in NAMESPACE_FILES:
            checked.what = checked.kind = "namespace"
            checked.errors = list(namespaces.errors.get(str(file)) or ())
            continue
        try:
            if is_test_file(file):  # flow tests (`tiercel test`) are checked as such
                checked.kind = "tests"
                suite = read_suite(file)
                checked.flow = f"{suite.namespace}.{suite.flow_id}"
                checked.what = f"tests of {checked.flow}"
                continue
            flow = parse_flow_file(file, defaults=namespaces.plugin_defaults)
        except FlowParseError as error:
            checked.errors = error.errors
            continue
        flows.append(flow)
        checked.what = checked.flow = f"{flow.namespace}.{flow.id}"
        checked.warnings = list(flow.warnings)
    for problem in validate_flows(flows):
        results.setdefault(str(problem.path), Checked(str(problem.path))).errors.append(problem)
    failed = sum(1 for checked in results.values() if checked.errors)
    if args.json:
        report = {"files": len(files), "invalid": failed, "results": [c.to_json() for c in results.values()]}
        say(json.dumps(report, indent=2))
        return EXIT_FAILED if failed else EXIT_OK
    for checked in results.values():
        if checked.errors:
            say("\n".join(str(error) for error in checked.errors))
        else:
            say(f"OK {checked.file} ({checked.what})")
        for warning in checked.warnings:
            say(f"warning: {warning}")
    say(f"{len(files)} file{'' if len(files) == 1 else 's'}, {failed} invalid", err=True)
    return EXIT_FAILED if failed else EXIT_OK


@dataclass
class Checked:
    """What `validate` found of one file: the flow (or namespace) it holds, its errors and warnings."""

    file: str
    what: str | None = None
    kind: str = "flow"  # or "namespace", or "tests" (of `flow`)
    flow: str | None = None
    errors: list[FlowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "valid": not self.errors,
            "kind": self.kind,
            "flow": self.flow,
            "errors": [
                {
                    "file": e.path,
                    "line": e.line,
                    "column": e.column,
                    "path": e.yaml_path,
                    "message": e.message,
                }
                for e in self.errors
            ],
            "warnings": self.warnings,
        }
