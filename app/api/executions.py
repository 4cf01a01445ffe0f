"""Executions, their logs and metrics (Kestra's ExecutionController, LogController, MetricController),
and the expression debugger (`eval`).

Creating an execution takes its inputs as multipart form parts, as Kestra's does: a text part per
input, named after it, and a FILE input as an uploaded file whose *file name* is the input's id
(`curl -F "files=@data.csv;filename=data"`). An uploaded file is copied into the execution's storage;
a text value of a FILE input must be a `kestra://` URI, never a path on this machine.

`follow` routes are server-sent events as Kestra sends them: no event name, the kind in the `id:`
field (`progress`, then `end` for an execution), the JSON on one `data:` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tiercel.engine import (
    EngineCommandError,
    EventBus,
    Execution,
    ExecutionChanged,
    InputError,
    InputSpec,
    Label,
    LogEntry,
    LogLevel,
    LogsAppended,
    StateType,
)

from .guard import Permission, need, principal_of, readable
from .responses import (
    ApiError,
    engine_of,
    flag,
    json_response,
    labels_param,
    page_params,
    paged,
    whole_number,
)

# How long `follow` waits for an execution that is not stored yet (Kestra waits as long).
_APPEAR_SECONDS = 10.0
# How many executions a search counts for its `total` at most, and the largest page.
_COUNTED = 10_000
_MAX_PAGE = 1_000


def _ended(execution: Execution) -> bool:
    return execution.state.current.is_terminated


async def _execution(
    request: Request, execution_id: str, permission: Permission = Permission.READ
) -> Execution:
    """The stored execution, if the request's sender holds `permission` on its namespace."""
    execution = await engine_of(request).execution(execution_id)
    if execution is None:
        raise ApiError(404, f"Execution '{execution_id}' not found.")
    need(request, execution.namespace, permission)
    return execution


async def _may_read(request: Request, execution_id: str) -> None:
    """Logs and metrics are read by execution id: only the execution's readers read them."""
    if not principal_of(request).owner:
        await _execution(request, execution_id)


async def _inputs(request: Request, folder: Path, file_inputs: set[str]) -> dict[str, Any]:
    """The inputs of a multipart (or URL-encoded) request; uploaded files are saved in `folder`.

    A FILE input (one of `file_inputs`) given as text must be a `kestra://` URI: a path would copy
    whatever file of this machine the server can read into the execution.
    """
    inputs: dict[str, Any] = {}
    async with request.form() as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                input_id = value.filename or ""
                if input_id in ("", ".", "..") or "/" in input_id or "\0" in input_id or input_id in inputs:
                    message = f"an uploaded file's name must be the id of its input, not `{input_id[:100]}`"
                    raise ApiError(422, message)
                path = folder / input_id
                path.write_bytes(await value.read())
                inputs[input_id] = str(path)
            elif name in file_inputs and not value.startswith("kestra://"):
                message = f"Invalid input for `{name}`: upload the file, or give a kestra:// URI"
                raise ApiError(422, message, [(f"inputs.{name}", message)])
            else:
                inputs[name] = value
    return inputs


async def create(request: Request) -> Response:
    engine = engine_of(request)
    namespace, flow_id = request.path_params["namespace"], request.path_params["id"]
    need(request, namespace, Permission.EXECUTE)
    flow = engine.flows.get((namespace, flow_id))
    if flow is None:
        raise ApiError(404, "Requested Flow is not found.")
    if flow.disabled:
        raise ApiError(409, "Requested Flow is disabled.")
    labels = [Label(key, value) for key, value in labels_param(request).items()]
    file_inputs = {spec.id for spec in flow.inputs if spec.type.upper() == "FILE"}
    with tempfile.TemporaryDirectory(prefix="tiercel-upload-") as folder:
        inputs = await _inputs(request, Path(folder), file_inputs)
        with _refusals():
            execution_id = await engine.trigger(namespace, flow_id, inputs, labels, local_files=True)
    if flag(request.query_params, "wait", False):
        execution = await engine.wait(execution_id)
    else:
        execution = await _execution(request, execution_id)
    return json_response(request, execution.to_json())


async def get(request: Request) -> Response:
    return json_response(request, (await _execution(request, request.path_params["executionId"])).to_json())


async def search(request: Request) -> Response:
    page, size = page_params(request)
    if page * size > _COUNTED or size > _MAX_PAGE:
        raise ApiError(422, f"a page may hold {_MAX_PAGE} executions, up to the {_COUNTED}th newest")
    states = [state.upper() for state in request.query_params.getlist("state")]
    unknown = [state for state in states if state not in StateType.__members__]
    if unknown:
        raise ApiError(422, f"unknown state `{unknown[0]}`")
    engine = engine_of(request)
    rows = await engine.list_executions(
        namespace=request.query_params.get("namespace"),
        flow_id=request.query_params.get("flowId"),
        state=states or None,
        limit=_COUNTED,
    )
    rows = [row for row in rows if readable(request, row.namespace)]
    shown = [await engine.execution(row.id) for row in rows[(page - 1) * size : page * size]]
    return json_response(request, paged([e.to_json() for e in shown if e is not None], len(rows)))


async def _command(request: Request, command: str, *args: Any, **kwargs: Any) -> Any:
    execution_id = request.path_params["executionId"]
    await _execution(request, execution_id, Permission.EXECUTE)
    with _refusals():
        return await getattr(engine_of(request), command)(execution_id, *args, **kwargs)


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """The engine's refusals as the API's: bad inputs (422), a command the state forbids (409)."""
    try:
        yield
    except InputError as error:
        raise ApiError.bad_inputs(error.errors) from None
    except EngineCommandError as error:
        raise ApiError(409, str(error)) from None


async def kill(request: Request) -> Response:
    """202: the kill is under way (as Kestra, also for an execution that has ended already)."""
    execution = await _execution(request, request.path_params["executionId"], Permission.EXECUTE)
    if not _ended(execution):
        await _command(request, "kill")
    return Response(status_code=202)


async def restart(request: Request) -> Response:
    await _command(request, "restart")
    return json_response(request, (await _execution(request, request.path_params["executionId"])).to_json())


async def replay(request: Request) -> Response:
    revision = request.query_params.get("revision")
    if revision is not None and not whole_number(revision):
        raise ApiError(422, f"`revision` must be a whole number, not `{revision}`")
    task_run_id = request.query_params.get("taskRunId") or None
    new_id = await _command(request, "replay", task_run_id, revision=int(revision) if revision else None)
    return json_response(request, (await _execution(request, new_id)).to_json())


async def evaluate(request: Request) -> Response:
    """Kestra's expression debugger: the text body rendered for one task run of the execution, as
    {result, error, stackTrace} (an expression that fails is still a 200, with its `error`)."""
    execution = await _execution(request, request.path_params["executionId"], Permission.EXECUTE)
    body = await request.body()
    try:
        expression = body.decode()
    except UnicodeDecodeError:
        raise ApiError(422, "the expression must be UTF-8 text") from None
    try:
        found = await engine_of(request).evaluate(execution.id, request.path_params["taskRunId"], expression)
    except EngineCommandError as error:
        raise ApiError(404, str(error)) from None
    return json_response(request, found.to_json())


async def _paused_file_inputs(request: Request, execution: Execution) -> set[str]:
    """The ids of the FILE inputs of the paused tasks' `onResume`."""
    engine = engine_of(request)
    flow = await engine.flow_revision(execution.namespace, execution.flow_id, execution.flow_revision)
    flow = flow or engine.flows.get((execution.namespace, execution.flow_id))
    found: set[str] = set()
    for run in execution.task_runs:
        spec = flow.tasks_by_id.get(run.task_id) if flow is not None else None
        if run.state.current is StateType.PAUSED and spec is not None:
            for entry in spec.props.get("onResume") or ():  # parsed as the flow's inputs are
                if isinstance(entry, InputSpec) and entry.type.upper() == "FILE":
                    found.add(entry.id)
    return found


async def resume(request: Request) -> Response:
    execution = await _execution(request, request.path_params["executionId"], Permission.EXECUTE)
    file_inputs = await _paused_file_inputs(request, execution)
    with tempfile.TemporaryDirectory(prefix="tiercel-upload-") as folder:
        inputs = await _inputs(request, Path(folder), file_inputs)
        await _command(request, "resume", inputs or None)
    return Response(status_code=204)


def _event(kind: str, data: Any) -> bytes:
    return f"id: {kind}\ndata: {json.dumps(data, default=str, ensure_ascii=False)}\n\n".encode()


async def follow(request: Request) -> Response:
    """The execution as it is, then at each change, until it ends."""
    engine = engine_of(request)
    execution_id = request.path_params["executionId"]
    events = engine.events.subscribe()  # before the read: no change falls between the two
    try:
        execution = await engine.execution(execution_id)
        deadline = asyncio.get_running_loop().time() + _APPEAR_SECONDS
        while execution is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            execution = await engine.execution(execution_id)
        if execution is None:
            raise ApiError(404, f"Unable to find the execution {execution_id}")
        need(request, execution.namespace, Permission.READ)
    except BaseException:
        engine.events.unsubscribe(events)
        raise
    mask = engine.masker.mask_value

    async def stream(first: Execution) -> AsyncIterator[bytes]:
        try:
            if _ended(first):
                yield _event("end", mask(first.to_json()))
                return
            yield _event("progress", mask(first.to_json()))
            while True:
                event = await events.get()
                if isinstance(event, ExecutionChanged) and event.execution.id == execution_id:
                    current = event.execution
                    yield _event("end" if _ended(current) else "progress", mask(current.to_json()))
                    if _ended(current):
                        return
        finally:
            engine.events.unsubscribe(events)

    return StreamingResponse(stream(execution), media_type="text/event-stream")


# -- logs --------------------------------------------------------------------------------------------


def _log_filters(request: Request) -> tuple[str | None, str | None, str | None]:
    level = request.query_params.get("minLevel")
    if level is not None:
        try:
            level = LogLevel.parse(level).value
        except ValueError:
            raise ApiError(422, f"unknown log level `{level}` (TRACE, DEBUG, INFO, WARN, ERROR)") from None
    return level, request.query_params.get("taskId"), request.query_params.get("taskRunId")


async def _stored_logs(request: Request) -> list[LogEntry]:
    await _may_read(request, request.path_params["executionId"])
    level, task_id, task_run_id = _log_filters(request)
    rows = await engine_of(request).logs(request.path_params["executionId"], level=level, task_id=task_id)
    return [entry for _, entry in rows if task_run_id is None or entry.task_run_id == task_run_id]


async def logs(request: Request) -> Response:
    return json_response(request, [entry.to_json() for entry in await _stored_logs(request)])


async def download_logs(request: Request) -> Response:
    mask = engine_of(request).masker.mask
    lines = [
        f"{entry.stamp} {entry.level.value} {mask(entry.message)}" for entry in await _stored_logs(request)
    ]
    execution_id = (await _execution(request, request.path_params["executionId"])).id  # letters, digits
    headers = {"Content-Disposition": f'attachment; filename="{execution_id}.log"'}
    return PlainTextResponse("\n".join(lines), headers=headers)


async def follow_logs(request: Request) -> Response:
    """The stored lines, then each new one; the client ends it (as Kestra's, it never ends itself)."""
    engine = engine_of(request)
    execution_id = request.path_params["executionId"]
    level, task_id, task_run_id = _log_filters(request)
    rank = LogLevel.parse(level).rank if level else 0
    events = engine.events.subscribe()
    try:
        stored = await _stored_logs(request)
    except BaseException:  # the stream never starts: its `finally` would not let go of the queue
        engine.events.unsubscribe(events)
        raise
    # Lines announced while the stored ones were read may be among them: those are not sent twice.
    early = [
        entry
        for event in EventBus.drain(events)
        if isinstance(event, LogsAppended)
        for entry in event.entries
    ]
    mask = engine.masker.mask_value

    def wanted(entry: LogEntry) -> bool:
        return (
            entry.execution_id == execution_id
            and entry.level.rank >= rank
            and (not task_id or entry.task_id == task_id)
            and (not task_run_id or entry.task_run_id == task_run_id)
        )

    async def stream() -> AsyncIterator[bytes]:
        try:
            for entry in stored:
                yield _event("progress", mask(entry.to_json()))
            already = set(stored)
            for entry in early:
                if wanted(entry) and entry not in already:
                    yield _event("progress", mask(entry.to_json()))
            while True:
                event = await events.get()
                if isinstance(event, LogsAppended):
                    for entry in event.entries:
                        if wanted(entry):
                            yield _event("progress", mask(entry.to_json()))
        finally:
            engine.events.unsubscribe(events)

    return StreamingResponse(stream(), media_type="text/event-stream")


async def metrics(request: Request) -> Response:
    page, size = page_params(request)
    execution_id = request.path_params["executionId"]
    await _may_read(request, execution_id)
    entries = await engine_of(request).metrics(
        execution_id,
        task_run_id=request.query_params.get("taskRunId"),
        task_id=request.query_params.get("taskId"),
    )
    shown = entries[(page - 1) * size : page * size]
    return json_response(request, paged([entry.to_json() for entry in shown], len(entries)))


ROUTES = [
    Route("/executions/search", search, methods=["GET"]),
    Route("/executions/{executionId}", get, methods=["GET"]),
    # Before the creation route, whose two segments would take them.
    Route("/executions/{executionId}/kill", kill, methods=["DELETE"]),
    Route("/executions/{executionId}/restart", restart, methods=["POST"]),
    Route("/executions/{executionId}/replay", replay, methods=["POST"]),
    Route("/executions/{executionId}/resume", resume, methods=["POST"]),
    Route("/executions/{executionId}/follow", follow, methods=["GET"]),
    Route("/executions/{executionId}/eval/{taskRunId}", evaluate, methods=["POST"]),
    Route("/executions/{namespace}/{id}", create, methods=["POST"]),
    Route("/logs/{executionId}", logs, methods=["GET"]),
    Route("/logs/{executionId}/download", download_logs, methods=["GET"]),
    Route("/logs/{executionId}/follow", follow_logs, methods=["GET"]),
    Route("/metrics/{executionId}", metrics, methods=["GET"]),
]
