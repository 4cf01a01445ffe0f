"""HTTP tasks: Request (the response lands in the outputs) and Download (the body lands in the storage).

Semantics follow Kestra's `io.kestra.plugin.core.http` tasks:

- `uri` (required), `method` (GET), `headers`, `body` (text; a map or a list is sent as compact JSON),
  `contentType` (`application/json`, as in Kestra, also sent on requests without a body), `formData`
  (URL-encoded, or multipart when `contentType` is `multipart/form-data`; in a multipart form a
  `kestra://` value, or a `{name, content}` map, is sent as a file).
- `options`: `timeout.connectTimeout` / `timeout.readIdleTimeout` (and the older `connectTimeout` /
  `readTimeout`), `followRedirects` (true), `allowFailed` (also the top-level `allowFailed`),
  `allowedResponseCodes`, `auth` (`BASIC`, `BEARER` or `DIGEST`; also the older `basicAuthUser` /
  `basicAuthPassword`), `proxy` (HTTP), `ssl.insecureTrustAllCertificates` (also the top-level
  `sslOptions`), `defaultCharset`, `logs`, `maxContentLength` (Request only).
- A response code >= 400 fails the task with Kestra's message ("Failed http request with response
  code '404' ...") unless failed responses are allowed.

A trigger that polls an endpoint (`io.kestra.plugin.core.http.Trigger`) sends the same request as the
Request task: it renders the properties itself and calls `send_request` with a `RenderedRequest`.

Defaults chosen here: a connection must open within 30 s and the server may stay silent for at most
5 minutes (Kestra's read idle timeout); a Request keeps at most 10 MiB of body (Kestra's default) and a
Download stores at most 1 GiB. Proxies from the environment (HTTP_PROXY ...) are not used, as in Kestra.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ...internal_storage import Storage, StorageError
from ...model import LogLevel
from ..base import TaskContext, TaskFailure
from .call import CORE_HTTP, LOGGED_BODY_CHARS, Call, RequestSource, flag, prepare, shorten
from .response import (
    MAX_DOWNLOAD_BYTES,
    decode,
    file_name,
    headers_map,
    log_exchange,
    network_failure,
    read_capped,
    refusal,
    stream_to_file,
)

if TYPE_CHECKING:
    import httpx

R = TypeVar("R")


async def request(context: TaskContext) -> Mapping[str, Any] | None:
    """io.kestra.plugin.core.http.Request: send a request and keep the response in the outputs.

    Returns:
        `uri` (the request URL), `code`, `headers` (lower-case name -> list of values) and `body` (text).

    Raises:
        TaskFailure: The request could not be made, the response code is not accepted, or the body is
            larger than `options.maxContentLength`.
    """
    return await send_request(context)


async def send_request(source: RequestSource, *, allow_failed: bool = False) -> dict[str, Any]:
    """Send the request the properties of `source` describe; return the Request task's outputs.

    With `allow_failed`, any response code is accepted (the caller judges the response itself).

    Raises:
        TaskFailure: As `request`.
    """
    call = prepare(source, for_download=False)
    if allow_failed:
        call.allow_failed = True
    if flag(source.prop("encryptBody"), "encryptBody", False):
        source.log(LogLevel.WARN, "`encryptBody` is not supported by this engine: the body is kept in `body`")
    started = time.monotonic()
    response, data = await _exchange(source, call, started, lambda r: read_capped(call, r))
    log_exchange(source, call, response, len(data), time.monotonic() - started)
    body = decode(response, data)
    if "RESPONSE_BODY" in call.logs and body:
        source.log(LogLevel.INFO, f"Response body:\n{shorten(body, LOGGED_BODY_CHARS)}")
    return {"uri": call.url, "code": response.status_code, "headers": headers_map(response), "body": body}


@dataclass
class RenderedRequest:
    """A request's properties already rendered by their owner (a trigger), for `send_request`.

    Attributes:
        props: The Request task's properties (`uri`, `method`, `headers`, `options` ...), rendered.
        emit: Where the call's log lines go.
        storage: The internal storage, for multipart files given as kestra:// URIs.
    """

    props: Mapping[str, Any]
    emit: Callable[[LogLevel, str], None]
    storage: Storage | None = None

    def prop(self, name: str, default: Any = None) -> Any:
        value = self.props.get(name)
        return default if value is None else value

    def log(self, level: LogLevel, message: str) -> None:
        self.emit(level, message)

    def require_storage(self) -> Storage:
        if self.storage is None:
            raise TaskFailure("This request needs the internal storage, which is not available here")
        return self.storage


async def download(context: TaskContext) -> Mapping[str, Any] | None:
    """io.kestra.plugin.core.http.Download: stream a response body into the internal storage.

    The body goes to a temporary file chunk by chunk (never whole in memory) and is refused beyond
    `MAX_DOWNLOAD_BYTES`.

    Returns:
        `uri` (kestra:// of the stored file), `code`, `length` (bytes) and `headers`.

    Raises:
        TaskFailure: The request could not be made, the response code is not accepted, the body is
            empty (unless `failOnEmptyResponse` is false), too large, or shorter than announced.
    """
    context.require_storage()
    call = prepare(context, for_download=True)
    fail_on_empty = flag(context.prop("failOnEmptyResponse"), "failOnEmptyResponse", True)
    folder = Path(tempfile.mkdtemp(prefix="tiercel-download-"))
    try:
        started = time.monotonic()
        target = folder / "body"
        response, size = await _exchange(context, call, started, lambda r: stream_to_file(call, r, target))
        log_exchange(context, call, response, size, time.monotonic() - started)
        if size == 0:
            if fail_on_empty and not call.allow_failed:
                raise TaskFailure(
                    f"No response from server: {call.method} {call.shown_url} returned an empty body "
                    "(set `failOnEmptyResponse: false` to accept an empty file)"
                )
            context.log(LogLevel.WARN, f"File '{call.shown_url}' is empty")
        try:
            # Copying up to a gigabyte must not stall the other tasks of the engine.
            uri = await asyncio.to_thread(context.put_file, file_name(response), target)
        except StorageError as error:
            raise TaskFailure(f"Cannot store the download of {call.shown_url}: {error}") from None
        return {"uri": uri, "code": response.status_code, "length": size, "headers": headers_map(response)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _exchange(
    context: RequestSource,
    call: Call,
    started: float,
    consume: Callable[[httpx.Response], Awaitable[R]],
) -> tuple[httpx.Response, R]:
    """Send the call, refuse a response whose code is not accepted, then let `consume` read it."""
    import httpx  # loaded by the first HTTP call: `validate`, and runs without one, never need it

    with ExitStack() as files:
        async with call.client() as client:
            try:
                response = await client.send(call.build(client, files), stream=True)
                try:
                    refused = await refusal(call, response)
                    if refused is not None:
                        log_exchange(context, call, response, refused[1], time.monotonic() - started)
                        raise refused[0]
                    return response, await consume(response)
                finally:
                    await response.aclose()
            except httpx.HTTPError as error:
                raise network_failure(call, error) from None


HANDLERS: dict[str, Any] = {
    f"{CORE_HTTP}.Request": request,
    f"{CORE_HTTP}.Download": download,
}


__all__ = ["HANDLERS", "MAX_DOWNLOAD_BYTES", "RenderedRequest", "download", "request", "send_request"]
