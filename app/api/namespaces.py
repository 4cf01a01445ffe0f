"""A namespace's files and key-value pairs (Kestra's NamespaceFileController and KVController).

Namespace files are where the engine's tasks read them (the flows folder's `_files`, or the store
shared by a cluster); a path is relative to the namespace, with or without a leading `/`, and one
that leaves the namespace is refused. KV values are JSON, typed on the way out as Kestra types them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tiercel.engine import Conflict, NamespaceFiles, StorageError, namespace_files, parse_duration

from .guard import Permission, need
from .responses import ApiError, engine_of, json_response

_KEY = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]*")
_ISO_DURATION = re.compile(r"^-?P(?!$)(\d+(\.\d+)?[YMWD])*(T(?=\d)(\d+(\.\d+)?[HMS])*)?$")
# The largest namespace file taken in one upload.
MAX_UPLOAD_BYTES = 1024 * 1024


def _files(request: Request) -> NamespaceFiles:
    engine = engine_of(request)
    found = namespace_files(engine.storage, engine.flows_dir)
    if found is None:
        raise ApiError(409, "this server has no flows folder, so no namespace files")
    return found


def _path(request: Request, required: bool = True) -> str:
    path = (request.query_params.get("path") or "").strip("/")
    if required and not path:
        raise ApiError(400, "Required QueryValue [path] not specified")
    if path.startswith("_flows"):
        raise ApiError(422, f"Illegal argument: Forbidden path: /{path}")
    return path


def _attributes(name: str, kind: str, size: int = 0) -> dict[str, Any]:
    return {"fileName": name, "type": kind, "size": size}


async def directory(request: Request) -> Response:
    """The direct children of a folder (the namespace's root by default)."""
    files, namespace, folder = _files(request), request.path_params["namespace"], _path(request, False)
    prefix = f"{folder}/" if folder else ""
    try:
        every = [path for path in files.list_files(namespace) if path.startswith(prefix)]
    except StorageError as error:
        raise ApiError(422, str(error)) from None
    if folder and not every:
        raise ApiError(404, f"No folder /{folder} in namespace {namespace}")
    children: dict[str, dict[str, Any]] = {}
    for path in every:
        name, slash, _ = path[len(prefix) :].partition("/")
        if slash:
            children.setdefault(name, _attributes(name, "Directory"))
        else:
            size = len(files.read_file(namespace, path))
            children[name] = _attributes(name, "File", size)
    return json_response(request, [children[name] for name in sorted(children)])


async def read(request: Request) -> Response:
    files, namespace, path = _files(request), request.path_params["namespace"], _path(request)
    try:
        data = files.read_file(namespace, path)
    except (StorageError, OSError):
        raise ApiError(404, f"No file /{path} in namespace {namespace}") from None
    return Response(data, media_type="application/octet-stream")


async def upload(request: Request) -> Response:
    files, namespace, path = _files(request), request.path_params["namespace"], _path(request)
    form = await request.form(max_part_size=MAX_UPLOAD_BYTES)
    part = form.get("fileContent")
    if not isinstance(part, UploadFile):
        raise ApiError(400, "Required part [fileContent] not specified: send the file as multipart form data")
    try:
        files.write_file(namespace, path, await part.read(), Conflict.OVERWRITE)
    except StorageError as error:
        raise ApiError(422, str(error)) from None
    return Response(status_code=200)


async def delete(request: Request) -> Response:
    """Delete a file, or a folder and everything in it (`path=/`: every file of the namespace)."""
    if "path" not in request.query_params:
        raise ApiError(400, "Required QueryValue [path] not specified")
    files, namespace, path = _files(request), request.path_params["namespace"], _path(request, False)
    try:
        every = files.list_files(namespace)
        doomed = [p for p in every if not path or p == path or p.startswith(f"{path}/")]
        for found in doomed:
            files.delete_file(namespace, found)
        for found in doomed:  # the folders they leave empty, deepest first
            parts = found.split("/")[:-1]
            while parts:
                files.delete_empty_folder(namespace, "/".join(parts))
                parts.pop()
    except StorageError as error:
        raise ApiError(422, str(error)) from None
    return Response(status_code=200)


# -- KV ----------------------------------------------------------------------------------------------


def _key(request: Request) -> str:
    key = str(request.path_params["key"])
    if not _KEY.fullmatch(key):
        raise ApiError(422, f"Illegal argument: Key must start with an alphanumeric character, not `{key}`")
    return key


def kv_type(value: Any) -> str:
    """Kestra's type of a stored value."""
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, str):
        return "DURATION" if _ISO_DURATION.match(value) else "STRING"
    return "JSON"


async def kv_list(request: Request) -> Response:
    rows = await engine_of(request).store.kv_entries(request.path_params["namespace"])
    entries = []
    for key, updated, expires in rows:
        entry = {"key": key, "creationDate": updated, "updateDate": updated}
        if expires is not None:
            entry["expirationDate"] = expires
        entries.append(entry)
    return json_response(request, entries)


async def kv_get(request: Request) -> Response:
    namespace, key = request.path_params["namespace"], _key(request)
    found, value = await engine_of(request).store.kv_get(namespace, key)
    if not found:
        raise ApiError(404, f"No value found for key '{key}' in namespace '{namespace}'")
    return json_response(request, {"type": kv_type(value), "value": value})


async def kv_put(request: Request) -> Response:
    namespace, key = request.path_params["namespace"], _key(request)
    text = (await request.body()).decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ApiError(422, f"Illegal argument: Invalid JSON value for: {text[:100]}") from None
    ttl: timedelta | None = None
    if request.headers.get("ttl"):
        try:
            ttl = parse_duration(request.headers["ttl"])
        except ValueError as error:
            raise ApiError(422, f"`ttl` header: {error}") from None
    await engine_of(request).store.kv_set(namespace, key, value, ttl=ttl)
    return Response(status_code=200)


async def kv_delete(request: Request) -> Response:
    namespace, key = request.path_params["namespace"], _key(request)
    return json_response(request, await engine_of(request).store.kv_delete(namespace, key))


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(handler: Endpoint, permission: Permission) -> Endpoint:
    """`handler` for those who hold `permission` on the namespace of the path."""

    async def endpoint(request: Request) -> Response:
        need(request, request.path_params["namespace"], permission)
        return await handler(request)

    return endpoint


READ, OWNER = Permission.READ, Permission.OWNER
ROUTES = [
    Route("/namespaces/{namespace}/files/directory", _guarded(directory, READ), methods=["GET"]),
    Route("/namespaces/{namespace}/files", _guarded(read, READ), methods=["GET"]),
    Route("/namespaces/{namespace}/files", _guarded(upload, OWNER), methods=["POST"]),
    Route("/namespaces/{namespace}/files", _guarded(delete, OWNER), methods=["DELETE"]),
    Route("/namespaces/{namespace}/kv", _guarded(kv_list, READ), methods=["GET"]),
    Route("/namespaces/{namespace}/kv/{key}", _guarded(kv_get, READ), methods=["GET"]),
    Route("/namespaces/{namespace}/kv/{key}", _guarded(kv_put, OWNER), methods=["PUT"]),
    Route("/namespaces/{namespace}/kv/{key}", _guarded(kv_delete, OWNER), methods=["DELETE"]),
]
