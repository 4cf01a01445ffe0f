"""Flows: get, list, search, validate, and create, update or delete from YAML (Kestra's FlowController).

The flows folder stays the truth: a flow created or updated through the API is written to its file
(the one it came from, else `<flows>/<namespace as folders>/<id>.yml`), a deleted one's file is
removed, and the engine reads the change at once, as the watcher would. A flow that does not parse
is refused with its errors and never written.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tiercel.engine import (
    Flow,
    FlowChanges,
    FlowParseError,
    FlowWriteError,
    flow_schema,
    parse_flow,
    parsed_flow,
)

from .guard import Permission, need, readable
from .responses import ApiError, engine_of, flag, json_response, page_params, paged, whole_number

# How Kestra splits a request holding several flows.
_DOCUMENTS = re.compile(r"\n+---\n*?")
_MAX_FLOW_BYTES = 1_000_000


def flow_json(flow: Flow, *, source: bool = False) -> dict[str, Any]:
    """A flow as Kestra's API gives it: its document as written, with its revision (and source)."""
    try:
        document = yaml.safe_load(flow.source) if flow.source else None
    except yaml.YAMLError:
        document = None
    body: dict[str, Any] = dict(document) if isinstance(document, dict) else {}
    body.update({"id": flow.id, "namespace": flow.namespace, "revision": flow.revision})
    body["disabled"], body["deleted"] = flow.disabled, False
    if source:
        body["source"] = flow.source
    return body


def _parse(text: str) -> Flow:
    """The flow a request's YAML holds.

    Raises:
        ApiError: 422 with every error, each at its path.
    """
    try:
        return parsed_flow(text)
    except FlowWriteError as error:
        raise ApiError.invalid(error.problems) from None


_YAML_TYPES = frozenset({"application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml"})


async def _yaml_body(request: Request) -> str:
    """The flow source a request carries, as `application/x-yaml` (Kestra's only type for it: a
    browser cannot send it across sites without asking first)."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind not in _YAML_TYPES:
        raise ApiError(415, f"Send the flow source as application/x-yaml, not `{kind[:100] or 'nothing'}`")
    body = await request.body()
    if len(body) > _MAX_FLOW_BYTES:
        raise ApiError(422, f"a flow source is limited to {_MAX_FLOW_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "the flow source is not UTF-8 text") from None


@contextlib.asynccontextmanager
async def _changing(request: Request) -> AsyncIterator[FlowChanges]:
    """One request's changes to the flows folder (engine.flows.writing): one request at a time,
    all put back if it fails; a write the engine refuses is a 422 with its problems."""
    try:
        async with engine_of(request).folder.files.changes() as changes:
            yield changes
    except FlowWriteError as error:
        if not error.invalid:  # a valid flow this server cannot keep: a conflict with its setup
            raise ApiError(409, str(error)) from None
        raise ApiError.invalid(error.problems) from None


def _flow(request: Request, namespace: str, flow_id: str) -> Flow:
    flow = engine_of(request).flows.get((namespace, flow_id))
    if flow is None:
        raise ApiError(404, "Requested Flow is not found.")
    return flow


async def create(request: Request) -> Response:
    flow = _parse(await _yaml_body(request))
    need(request, flow.namespace, Permission.OWNER)
    async with _changing(request) as changes:
        if flow.uid in engine_of(request).flows:
            raise ApiError.invalid([("flow.id", "Flow id already exists")])
        saved = await changes.save(flow)
    return json_response(request, flow_json(saved, source=True))


async def update(request: Request) -> Response:
    namespace, flow_id = request.path_params["namespace"], request.path_params["id"]
    need(request, namespace, Permission.OWNER)
    flow = _parse(await _yaml_body(request))
    async with _changing(request) as changes:
        current = _flow(request, namespace, flow_id)
        if flow.id != current.id:
            raise ApiError.invalid([("flow.id", "Illegal flow id update")])
        if flow.namespace != current.namespace:
            raise ApiError.invalid([("flow.namespace", "Illegal namespace update")])
        saved = await changes.save(flow)
    return json_response(request, flow_json(saved, source=True))


async def get(request: Request) -> Response:
    namespace, flow_id = request.path_params["namespace"], request.path_params["id"]
    need(request, namespace, Permission.READ)
    flow = _flow(request, namespace, flow_id)
    revision = request.query_params.get("revision")
    if revision is not None:
        if not whole_number(revision):
            raise ApiError(422, f"`revision` must be a whole number, not `{revision}`")
        older = await engine_of(request).flow_revision(namespace, flow_id, int(revision))
        if older is None:
            raise ApiError(404, f"Unable to find revision {revision} on flow {namespace}.{flow_id}")
        flow = older
    return json_response(request, flow_json(flow, source=flag(request.query_params, "source", False)))


async def delete(request: Request) -> Response:
    need(request, request.path_params["namespace"], Permission.OWNER)
    async with _changing(request) as changes:
        flow = _flow(request, request.path_params["namespace"], request.path_params["id"])
        if not await changes.remove(flow.namespace, flow.id):
            raise ApiError(404, f"Flow {flow.namespace}.{flow.id} has no file to delete")
    return Response(status_code=204)


def _all(request: Request) -> list[Flow]:
    """The flows the request's sender may read."""
    flows = engine_of(request).flows
    found = (flows[uid] for uid in flows)
    return sorted((f for f in found if readable(request, f.namespace)), key=lambda f: (f.namespace, f.id))


async def list_namespace(request: Request) -> Response:
    namespace = request.path_params["namespace"]
    need(request, namespace, Permission.READ)
    return json_response(request, [flow_json(flow) for flow in _all(request) if flow.namespace == namespace])


async def search(request: Request) -> Response:
    page, size = page_params(request)
    namespace = request.query_params.get("namespace")
    text = (request.query_params.get("q") or "").lower()
    found = [
        flow
        for flow in _all(request)
        if (namespace is None or flow.namespace == namespace or flow.namespace.startswith(namespace + "."))
        and (not text or text in f"{flow.namespace}.{flow.id} {flow.description or ''}".lower())
    ]
    shown = found[(page - 1) * size : page * size]
    return json_response(request, paged([flow_json(flow) for flow in shown], len(found)))


def _documents(text: str) -> list[str]:
    """The YAML documents of a request, each without the blank lines around it (as Kestra trims them)."""
    return [part.strip("\n") + "\n" for part in _DOCUMENTS.split(text) if part.strip()]


async def validate(request: Request) -> Response:
    """One verdict per YAML document, always 200 (the problems are in `constraints`)."""
    results = []
    for index, document in enumerate(_documents(await _yaml_body(request))):
        verdict: dict[str, Any] = {
            "index": index,
            "outdated": False,
            "deprecationPaths": [],
            "warnings": [],
            "infos": [],
        }
        try:
            flow = parse_flow(document)
        except FlowParseError as error:
            verdict["constraints"] = ", ".join(
                f"{problem.yaml_path}: {problem.message}" if problem.yaml_path else problem.message
                for problem in error.errors
            )
            try:
                head = yaml.safe_load(document)
            except yaml.YAMLError:
                head = None
            if isinstance(head, dict):
                verdict.update({k: head[k] for k in ("id", "namespace") if isinstance(head.get(k), str)})
                if "id" in verdict:
                    verdict["flow"] = verdict.pop("id")
        else:
            verdict.update({"flow": flow.id, "namespace": flow.namespace, "warnings": list(flow.warnings)})
        results.append(verdict)
    return json_response(request, results)


async def update_namespace(request: Request) -> Response:
    """Make a namespace's flows those of the request (Kestra's `flow namespace update`): each one
    created or updated; with `delete` (the default), the namespace's other flows deleted."""
    namespace = request.path_params["namespace"]
    need(request, namespace, Permission.OWNER)
    flows = [_parse(document) for document in _documents(await _yaml_body(request))]
    problems = [
        ("flow.namespace", f"Flow namespace is invalid: {flow.id} is in {flow.namespace}")
        for flow in flows
        if flow.namespace != namespace
    ]
    ids = [flow.id for flow in flows]
    problems += [
        ("flow.id", f"Duplicate flow id: {flow_id}")
        for flow_id in sorted({i for i in ids if ids.count(i) > 1})
    ]
    if problems:
        raise ApiError(422, ", ".join(f"{path}: {message}" for path, message in problems), problems)
    async with _changing(request) as changes:
        saved = [flow_json(await changes.save(flow), source=True) for flow in flows]
        deleted = []
        if flag(request.query_params, "delete", True):  # once every flow of the request is in
            for flow in _all(request):
                if flow.namespace == namespace and flow.id not in ids:
                    await changes.remove(flow.namespace, flow.id)
                    deleted.append(flow_json(flow, source=True))
    return json_response(request, deleted + saved)


async def schema(request: Request) -> Response:
    kind = request.path_params["type"].lower()
    if kind != "flow":
        raise ApiError(404, f"No schema for `{kind}`: this server serves the flow schema")
    answer = json_response(request, flow_schema(engine_of(request).registry))
    answer.headers["Cache-Control"] = "public, max-age=3600"
    return answer


ROUTES = [
    Route("/flows", create, methods=["POST"]),
    Route("/flows/validate", validate, methods=["POST"]),
    Route("/flows/search", search, methods=["GET"]),
    Route("/flows/{namespace}", list_namespace, methods=["GET"]),
    Route("/flows/{namespace}", update_namespace, methods=["POST"]),
    Route("/flows/{namespace}/{id}", get, methods=["GET"]),
    Route("/flows/{namespace}/{id}", update, methods=["PUT"]),
    Route("/flows/{namespace}/{id}", delete, methods=["DELETE"]),
]
# Served without the tenant segment in every Kestra version.
UNTENANTED = [Route("/plugins/schemas/{type}", schema, methods=["GET"])]
