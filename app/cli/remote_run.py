"""`tiercel run` while the dashboard or a server owns the database: the run is handed to that engine
through its control channel, then followed until it ends, as a run here would be.

Only an engine that watches its flows folder takes runs: a one-off owner (another `tiercel run`, a
backfill) stops once its own work is done, and would leave the execution behind. The flow that runs
is the engine's, so `run FILE` needs the engine's current revision of that flow to be the file's
content; the inputs, labels and local FILE inputs are the user's, the environment and secrets the
engine's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from tiercel.engine import describe_target

from .common import (
    EXIT_FAILED,
    EXIT_USAGE,
    report_input_error,
    say,
    warn_undeclared_inputs,
)
from .running import RunRequest, finish, stop_on_signals

if TYPE_CHECKING:
    from tiercel.engine import ControlClient, EngineAbout, Execution, Flow

    from .progress import RunView

# How often the follower reads the new log lines and task run states from the database.
POLL_SECONDS = 0.1
LOG_PAGE = 1000


async def run_through(client: ControlClient, request: RunRequest, view: RunView) -> int:
    """Start the execution in the engine that owns the database and follow it to its end."""
    from tiercel.engine import EngineCommandError, InputError

    about = await _owner(client)
    if about is None:
        return EXIT_USAGE
    flow = await _engine_flow(client, request, about)
    if isinstance(flow, int):
        return flow
    namespace, flow_id = request.namespace, request.flow_id
    if flow is not None:
        warn_undeclared_inputs(request.inputs, flow)
    try:
        execution_id = await client.trigger(
            namespace, flow_id, _local_files(request.inputs, flow), request.labels, local_files=True
        )
    except InputError as error:
        report_input_error(error, f"invalid inputs for {namespace}.{flow_id}:")
        return EXIT_USAGE
    except EngineCommandError as error:
        say(f"tiercel: the engine running on {client.db}: {error}", err=True)
        return EXIT_USAGE
    except OSError as error:
        say(f"tiercel: the engine running on {client.db} does not answer ({error})", err=True)
        return EXIT_FAILED
    view.say(
        f"Execution {execution_id} of {namespace}.{flow_id} started by the engine running on {client.db}"
    )
    view.start()
    stop_on_signals(client, execution_id, view)
    try:
        execution = await follow(client, execution_id, view)
    except (OSError, EngineCommandError) as error:
        view.close()
        say(
            f"tiercel: lost the engine running on {client.db} ({error}); execution {execution_id} "
            f"goes on when an engine runs on the database again (tiercel logs --follow {execution_id})",
            err=True,
        )
        return EXIT_FAILED
    return finish(execution, view)


async def _owner(client: ControlClient) -> EngineAbout | None:
    """The engine owning the database when it takes runs; else None, with why said."""
    from tiercel.engine import EngineCommandError

    db = client.db
    try:
        about = await client.about()
    except OSError as error:
        where = describe_target(db)
        say(
            f"tiercel: database {where} is in use by another Tiercel process that does not answer ({error})",
            err=True,
        )
        return None
    except EngineCommandError:  # an engine of a version without `about`: it cannot say what it is
        about = None
    if about is not None and about.watching:
        return about
    owner = f"pid {about.pid}" if about is not None and about.pid is not None else "pid unknown"
    where = describe_target(db)
    say(
        f"tiercel: database {where} is in use by another Tiercel process ({owner}) that takes no new runs "
        "(a run or a backfill, which stops once done): wait for it, or give another --db",
        err=True,
    )
    return None


async def _engine_flow(client: ControlClient, request: RunRequest, about: EngineAbout) -> Flow | int | None:
    """The engine's current revision of the flow (None when it has none: it refuses the run itself),
    or the exit code when the request does not match the engine's flows (said)."""
    from tiercel.engine import FlowParseError, parse_flow

    db, uid = client.db, f"{request.namespace}.{request.flow_id}"
    stored = await client.flow_source(request.namespace, request.flow_id)
    folder = about.flows_dir or "no flows folder"
    if request.file_flow is not None:
        if stored is None or stored[1] != request.file_flow.source:
            differs = "have no flow" if stored is None else f"hold another content (revision {stored[0]})"
            where = describe_target(db)
            say(
                f"tiercel: {request.file}: the engine running on {where} runs the flows of {folder}, which "
                f"{differs} for {uid}: save this file there, or give another --db to run it apart",
                err=True,
            )
            return EXIT_USAGE
    elif (
        request.flows_named and about.flows_dir is not None and request.flows_dir.resolve() != about.flows_dir
    ):
        where = describe_target(db)
        say(
            f"tiercel: the engine running on {where} runs the flows of {folder}, not {request.flows_dir}: "
            "run without --flows, or give another --db",
            err=True,
        )
        return EXIT_USAGE
    if stored is None:
        return None
    try:
        return parse_flow(stored[1])
    except FlowParseError:  # a revision this version cannot read: the engine decides
        return None


def _local_files(inputs: dict[str, str], flow: Flow | None) -> dict[str, str]:
    """The inputs, with the local files named for FILE inputs made absolute: the engine runs in
    another folder."""
    if flow is None:
        return inputs
    files = {spec.id for spec in flow.inputs if spec.type == "FILE"}
    return {
        key: str(Path(value).expanduser().absolute())
        if key in files and not value.startswith("kestra://")
        else value
        for key, value in inputs.items()
    }


async def follow(client: ControlClient, execution_id: str, view: RunView) -> Execution:
    """Show the execution's log lines and task runs as the engine stores them, until it ends (or is
    left paused); its final state.

    Raises:
        OSError, EngineCommandError: The engine stopped, or stopped answering.
    """
    settled = asyncio.create_task(client.wait(execution_id, until_paused=True))
    after = 0
    try:
        while True:
            done = settled.done()  # before reading: the engine stored every line before answering
            after = await _show_new(client, execution_id, after, view)
            if done:
                execution = settled.result()
                view.execution(execution)
                return execution
            await asyncio.wait({settled}, timeout=POLL_SECONDS)
    finally:
        settled.cancel()


async def _show_new(client: ControlClient, execution_id: str, after: int, view: RunView) -> int:
    """Show the lines stored after row `after` and the task runs as stored; the last row shown."""
    while True:
        page = await client.logs(execution_id, after=after, limit=LOG_PAGE)
        if not page:
            break
        view.logs(entry for _, entry in page)
        after = page[-1][0]
    execution = await client.execution(execution_id)
    if execution is not None:
        view.execution(execution)
    return after
