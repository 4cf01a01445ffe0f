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

Defaults chosen here: a connection must open within 30 s and the server may stay silent for at most
5 minutes (Kestra's read idle timeout); a Request keeps at most 10 MiB of body (Kestra's default) and a
Download stores at most 1 GiB. Proxies from the environment (HTTP_PROXY ...) are not used, as in Kestra.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import email.message
import re
import shutil
import tempfile
import time
import unicodedata
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

from ..durations import parse_duration
from ..expressions import to_text
from ..internal_storage import StorageError
from ..model import LogLevel
from .base import TaskContext, TaskFailure

CORE_HTTP = "io.kestra.plugin.core.http"

DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_READ_TIMEOUT = 300.0
DEFAULT_CONTENT_TYPE = "application/json"
REQUEST_MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024
USER_AGENT = "Tiercel"

_CHUNK_BYTES = 64 * 1024
# How much of a failed response's body goes into the failure message.
_ERROR_BODY_BYTES = 8 * 1024
_LOGGED_BODY_CHARS = 4000
_MAX_FILE_NAME = 128
_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_LOG_TYPES = frozenset({"REQUEST_HEADERS", "REQUEST_BODY", "RESPONSE_HEADERS", "RESPONSE_BODY"})
_KNOWN_OPTIONS = frozenset(
    {
        "timeout",
        "connectTimeout",
        "readTimeout",
        # Accepted and ignored, as Kestra does for old flows.
        "readIdleTimeout",
        "connectionPoolIdleTimeout",
        "maxContentLength",
        "followRedirects",
        "allowFailed",
        "allowedResponseCodes",
        "auth",
        "basicAuthUser",
        "basicAuthPassword",
        "proxy",
        "proxyType",
        "proxyAddress",
        "proxyPort",
        "proxyUsername",
        "proxyPassword",
        "ssl",
        "defaultCharset",
        "logs",
        "logLevel",
    }
)


R = TypeVar("R")


@dataclass
class _Call:
    """One HTTP call, fully rendered and checked before any connection is made."""

    method: str
    url: str
    # Kept as pairs: a header may repeat, and names compare without case.
    headers: list[tuple[str, str]]
    content: bytes | None = None
    # Multipart fields: (name, (file name or None, text or path, content type)).
    parts: list[tuple[str, tuple[str | None, str | Path, str]]] = field(default_factory=list)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    follow_redirects: bool = True
    allow_failed: bool = False
    allowed_codes: frozenset[int] = frozenset()
    auth: httpx.Auth | None = None
    verify: bool = True
    proxy: httpx.Proxy | None = None
    logs: frozenset[str] = frozenset()
    max_body: int = REQUEST_MAX_BODY_BYTES

    @property
    def shown_url(self) -> str:
        """The URL for messages, without a password written in it."""
        return _redacted(self.url)

    def client(self) -> httpx.AsyncClient:
        """A client for this call only; the caller closes it."""
        return httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=self.connect_timeout,
                read=self.read_timeout,
                write=self.read_timeout,
                pool=self.connect_timeout,
            ),
            follow_redirects=self.follow_redirects,
            auth=self.auth,
            verify=self.verify,
            proxy=self.proxy,
            # Kestra ignores HTTP_PROXY and friends; so do we, so that a flow behaves the same everywhere.
            trust_env=False,
        )

    def build(self, client: httpx.AsyncClient, files: ExitStack) -> httpx.Request:
        """The request to send; multipart files are opened on `files`, which the caller closes."""
        if not self.parts:
            return client.build_request(self.method, self.url, headers=self.headers, content=self.content)
        opened: list[tuple[str, tuple[str | None, str | IO[bytes], str]]] = []
        for name, (file_name, value, content_type) in self.parts:
            source = files.enter_context(value.open("rb")) if isinstance(value, Path) else value
            opened.append((name, (file_name, source, content_type)))
        return client.build_request(self.method, self.url, headers=self.headers, files=opened)


# ---------------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------------


async def request(context: TaskContext) -> Mapping[str, Any] | None:
    """io.kestra.plugin.core.http.Request: send a request and keep the response in the outputs.

    Returns:
        `uri` (the request URL), `code`, `headers` (lower-case name -> list of values) and `body` (text).

    Raises:
        TaskFailure: The request could not be made, the response code is not accepted, or the body is
            larger than `options.maxContentLength`.
    """
    call = _prepare(context, for_download=False)
    if _flag(context.prop("encryptBody"), "encryptBody", False):
        context.log(
            LogLevel.WARN, "`encryptBody` is not supported by this engine: the body is kept in `body`"
        )
    started = time.monotonic()
    response, data = await _exchange(context, call, started, lambda r: _read_capped(call, r))
    _log_exchange(context, call, response, len(data), time.monotonic() - started)
    body = _decode(response, data)
    if "RESPONSE_BODY" in call.logs and body:
        context.log(LogLevel.INFO, f"Response body:\n{_shorten(body, _LOGGED_BODY_CHARS)}")
    return {"uri": call.url, "code": response.status_code, "headers": _headers_map(response), "body": body}


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
    call = _prepare(context, for_download=True)
    fail_on_empty = _flag(context.prop("failOnEmptyResponse"), "failOnEmptyResponse", True)
    folder = Path(tempfile.mkdtemp(prefix="tiercel-download-"))
    try:
        started = time.monotonic()
        target = folder / "body"
        response, size = await _exchange(context, call, started, lambda r: _stream_to_file(call, r, target))
        _log_exchange(context, call, response, size, time.monotonic() - started)
        if size == 0:
            if fail_on_empty and not call.allow_failed:
                raise TaskFailure(
                    f"No response from server: {call.method} {call.shown_url} returned an empty body "
                    "(set `failOnEmptyResponse: false` to accept an empty file)"
                )
            context.log(LogLevel.WARN, f"File '{call.shown_url}' is empty")
        try:
            # Copying up to a gigabyte must not stall the other tasks of the engine.
            uri = await asyncio.to_thread(context.put_file, _file_name(response), target)
        except StorageError as error:
            raise TaskFailure(f"Cannot store the download of {call.shown_url}: {error}") from None
        return {"uri": uri, "code": response.status_code, "length": size, "headers": _headers_map(response)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _exchange(
    context: TaskContext,
    call: _Call,
    started: float,
    consume: Callable[[httpx.Response], Awaitable[R]],
) -> tuple[httpx.Response, R]:
    """Send the call, refuse a response whose code is not accepted, then let `consume` read it."""
    with ExitStack() as files:
        async with call.client() as client:
            try:
                response = await client.send(call.build(client, files), stream=True)
                try:
                    refused = await _refusal(call, response)
                    if refused is not None:
                        _log_exchange(context, call, response, refused[1], time.monotonic() - started)
                        raise refused[0]
                    return response, await consume(response)
                finally:
                    await response.aclose()
            except httpx.HTTPError as error:
                raise _network_failure(call, error) from None


HANDLERS: dict[str, Any] = {
    f"{CORE_HTTP}.Request": request,
    f"{CORE_HTTP}.Download": download,
}


# ---------------------------------------------------------------------------------------------------
# Building the call from the task's properties
# ---------------------------------------------------------------------------------------------------


def _prepare(context: TaskContext, *, for_download: bool) -> _Call:
    options = _mapping(context.prop("options"), "options")
    for key in sorted(set(options) - _KNOWN_OPTIONS):
        context.log(LogLevel.WARN, f"`options.{key}` is not supported by this engine and is ignored")

    url = _url(context.prop("uri"))
    method = to_text(context.prop("method") or "GET").strip().upper()
    if not _METHOD.match(method):
        raise TaskFailure(f"`method`: '{method}' is not an HTTP method (GET, POST, PUT, PATCH, DELETE ...)")
    charset = _charset(options.get("defaultCharset"))

    explicit_type = context.prop("contentType")
    content_type = to_text(explicit_type).strip() if explicit_type is not None else DEFAULT_CONTENT_TYPE
    call = _Call(method=method, url=url, headers=[("User-Agent", USER_AGENT)])

    form = _mapping(context.prop("formData"), "formData")
    body = context.task.props.get("body")
    if form:
        if content_type.split(";")[0].strip().lower() == "multipart/form-data":
            call.parts = _multipart(context, form, charset)
        else:
            pairs = [(str(key), to_text(value)) for key, value in form.items()]
            call.content = urllib.parse.urlencode(pairs, encoding=charset).encode("ascii")
            _set_header(call, "Content-Type", f"application/x-www-form-urlencoded; charset={charset.upper()}")
    elif body is not None:
        call.content = to_text(context.prop("body")).encode(charset)
        _set_header(call, "Content-Type", _with_charset(content_type, charset))
    elif content_type:
        _set_header(call, "Content-Type", content_type)

    for name, value in _mapping(context.prop("headers"), "headers").items():
        values = [_header_value(name, item) for item in (value if isinstance(value, list) else [value])]
        _set_header(call, str(name), *values)

    _apply_timeouts(call, options)
    call.follow_redirects = _flag(options.get("followRedirects"), "options.followRedirects", True)
    top_allow = context.prop("allowFailed")
    call.allow_failed = _flag(
        top_allow if top_allow is not None else options.get("allowFailed"), "allowFailed", False
    )
    call.allowed_codes = frozenset(_codes(options.get("allowedResponseCodes")))
    _apply_auth(call, options)
    call.proxy = _proxy(options)
    ssl = context.prop("sslOptions")
    ssl = _mapping(ssl if ssl is not None else options.get("ssl"), "sslOptions")
    call.verify = not _flag(
        ssl.get("insecureTrustAllCertificates"), "sslOptions.insecureTrustAllCertificates", False
    )
    call.logs = _log_types(options)
    if not for_download and options.get("maxContentLength") is not None:
        call.max_body = min(_positive_int(options["maxContentLength"], "options.maxContentLength"), 2**31 - 1)
    if call.logs & {"REQUEST_HEADERS", "REQUEST_BODY"}:
        _log_request(context, call)
    return call


def _set_header(call: _Call, name: str, *values: str) -> None:
    """Replace every value of a header (names compare without case)."""
    call.headers = [pair for pair in call.headers if pair[0].lower() != name.lower()]
    call.headers.extend((name, value) for value in values)


def _header_value(name: str, value: Any) -> str:
    text = to_text(value)
    if "\n" in text or "\r" in text:
        raise TaskFailure(f"`headers.{name}`: a header value cannot contain a line break")
    return text


def _url(value: Any) -> str:
    if value is None or to_text(value).strip() == "":
        raise TaskFailure("`uri` is required: the http:// or https:// URL to call")
    # Kestra encodes the one character people most often leave in a URL.
    text = to_text(value).strip().replace(" ", "%20")
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as error:
        raise TaskFailure(f"`uri`: '{_redacted(text)}' is not a valid URL ({error})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TaskFailure(f"`uri`: '{_redacted(text)}' is not an http:// or https:// URL")
    return text


def _multipart(
    context: TaskContext, form: Mapping[str, Any], charset: str
) -> list[tuple[str, tuple[str | None, str | Path, str]]]:
    text_type = f"text/plain; charset={charset.upper()}"
    parts: list[tuple[str, tuple[str | None, str | Path, str]]] = []
    for key, value in form.items():
        name = str(key)
        if isinstance(value, str) and value.startswith("kestra://"):
            path = _stored_file(context, value, name)
            parts.append((name, (path.name, path, "application/octet-stream")))
        elif isinstance(value, Mapping) and "name" in value and "content" in value:
            path = _stored_file(context, to_text(value["content"]), name)
            parts.append((name, (to_text(value["name"]), path, "application/octet-stream")))
        else:
            parts.append((name, (None, to_text(value), text_type)))
    return parts


def _stored_file(context: TaskContext, uri: str, field_name: str) -> Path:
    storage = context.require_storage()
    try:
        path = Path(storage.path(uri))
    except Exception as error:
        raise TaskFailure(
            f"`formData.{field_name}`: cannot read '{uri}' from the storage ({error})"
        ) from None
    if not path.is_file():
        raise TaskFailure(f"`formData.{field_name}`: no file '{uri}' in the internal storage")
    return path


def _apply_timeouts(call: _Call, options: Mapping[str, Any]) -> None:
    nested = _mapping(options.get("timeout"), "options.timeout")
    connect = nested.get("connectTimeout", options.get("connectTimeout"))
    read = nested.get("readIdleTimeout", options.get("readTimeout"))
    if connect is not None:
        call.connect_timeout = _seconds(connect, "options.timeout.connectTimeout")
    if read is not None:
        call.read_timeout = _seconds(read, "options.timeout.readIdleTimeout")


def _apply_auth(call: _Call, options: Mapping[str, Any]) -> None:
    auth = _mapping(options.get("auth"), "options.auth")
    user = options.get("basicAuthUser")
    if not auth and user is not None:
        auth = {"type": "BASIC", "username": user, "password": options.get("basicAuthPassword")}
    if not auth:
        return
    kind = to_text(auth.get("type") or "BASIC").strip().upper()
    if kind == "BASIC":
        call.auth = httpx.BasicAuth(to_text(auth.get("username")), to_text(auth.get("password")))
    elif kind == "DIGEST":
        call.auth = httpx.DigestAuth(to_text(auth.get("username")), to_text(auth.get("password")))
    elif kind == "BEARER":
        # Set last so that it wins over a user header, as Kestra's auth interceptor does.
        _set_header(call, "Authorization", f"Bearer {_header_value('Authorization', auth.get('token'))}")
    else:
        raise TaskFailure(f"`options.auth.type`: unknown type '{kind}' (BASIC, BEARER or DIGEST)")


def _proxy(options: Mapping[str, Any]) -> httpx.Proxy | None:
    proxy = dict(_mapping(options.get("proxy"), "options.proxy"))
    for old, new in (
        ("proxyType", "type"),
        ("proxyAddress", "address"),
        ("proxyPort", "port"),
        ("proxyUsername", "username"),
        ("proxyPassword", "password"),
    ):
        if options.get(old) is not None:
            proxy.setdefault(new, options[old])
    address = to_text(proxy.get("address") or "").strip()
    kind = to_text(proxy.get("type") or "HTTP").strip().upper()
    if not address or kind == "DIRECT":
        return None
    if kind != "HTTP":
        raise TaskFailure(f"`options.proxy.type`: {kind} proxies are not supported by this engine (use HTTP)")
    port = _positive_int(proxy.get("port"), "options.proxy.port") if proxy.get("port") is not None else 80
    username, password = proxy.get("username"), proxy.get("password")
    auth = (to_text(username), to_text(password)) if username is not None and password is not None else None
    try:
        return httpx.Proxy(f"http://{address}:{port}", auth=auth)
    except (ValueError, httpx.InvalidURL) as error:
        raise TaskFailure(f"`options.proxy`: invalid proxy '{address}:{port}' ({error})") from None


def _log_types(options: Mapping[str, Any]) -> frozenset[str]:
    logs = options.get("logs")
    if logs is None:
        # The older `logLevel` option stood for a set of logs.
        level = to_text(options.get("logLevel") or "").strip().upper()
        by_level = {
            "TRACE": _LOG_TYPES,
            "DEBUG": frozenset({"REQUEST_HEADERS", "RESPONSE_HEADERS"}),
            "INFO": frozenset({"RESPONSE_HEADERS"}),
        }
        return by_level.get(level, frozenset())
    chosen = {to_text(item).strip().upper() for item in (logs if isinstance(logs, list) else [logs])}
    unknown = chosen - _LOG_TYPES
    if unknown:
        raise TaskFailure(f"`options.logs`: unknown value(s) {sorted(unknown)} (use {sorted(_LOG_TYPES)})")
    return frozenset(chosen)


# ---------------------------------------------------------------------------------------------------
# Reading the response
# ---------------------------------------------------------------------------------------------------


async def _refusal(call: _Call, response: httpx.Response) -> tuple[TaskFailure, int] | None:
    """The failure for a response code that is not accepted (and the bytes read for it), or None."""
    code = response.status_code
    refused = (code >= 400 and not call.allow_failed) or (
        bool(call.allowed_codes) and code not in call.allowed_codes
    )
    if not refused:
        return None
    # Only the start of the body: an error page may be huge and the message only needs a hint.
    head = bytearray()
    async for chunk in response.aiter_bytes(_CHUNK_BYTES):
        head += chunk
        if len(head) >= _ERROR_BODY_BYTES:
            break
    message = f"Failed http request with response code '{code}' ({call.method} {call.shown_url})"
    if head:
        text = _decode(response, bytes(head[:_ERROR_BODY_BYTES]))
        cut = " [...]" if len(head) >= _ERROR_BODY_BYTES else ""
        message += f" and body:\n{text}{cut}"
    return TaskFailure(message), len(head)


async def _read_capped(call: _Call, response: httpx.Response) -> bytes:
    declared = _content_length(response)
    if declared is not None and declared > call.max_body:
        raise _too_large(call, declared, "announces", for_download=False)
    data = bytearray()
    async for chunk in response.aiter_bytes(_CHUNK_BYTES):
        data += chunk
        if len(data) > call.max_body:
            raise _too_large(call, call.max_body, "sent more than", for_download=False)
    return bytes(data)


async def _stream_to_file(call: _Call, response: httpx.Response, target: Path) -> int:
    declared = _content_length(response)
    if declared is not None and declared > MAX_DOWNLOAD_BYTES:
        raise _too_large(call, declared, "announces", for_download=True)
    size = 0
    with target.open("wb") as output:
        async for chunk in response.aiter_bytes(_CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_DOWNLOAD_BYTES:
                raise _too_large(call, MAX_DOWNLOAD_BYTES, "sent more than", for_download=True)
            output.write(chunk)
    # A decoded (gzip ...) body is longer than its Content-Length; only a plain one can be checked.
    plain = call.method != "HEAD" and "content-encoding" not in response.headers
    if declared is not None and plain and size != declared:
        raise TaskFailure(
            f"Invalid size for {call.method} {call.shown_url}: got {size} bytes, expected {declared}"
        )
    return size


def _too_large(call: _Call, size: int, verb: str, *, for_download: bool) -> TaskFailure:
    if for_download:
        return TaskFailure(
            f"The response of {call.method} {call.shown_url} {verb} {_size(size)}: "
            f"downloads are limited to {_size(MAX_DOWNLOAD_BYTES)}"
        )
    return TaskFailure(
        f"The response of {call.method} {call.shown_url} {verb} {_size(size)}, over the "
        f"{_size(call.max_body)} a Request keeps in its outputs: raise `options.maxContentLength` or use "
        f"{CORE_HTTP}.Download"
    )


def _content_length(response: httpx.Response) -> int | None:
    text = response.headers.get("content-length")
    if text is None or not text.strip().isdigit():
        return None
    return int(text)


def _decode(response: httpx.Response, data: bytes) -> str | None:
    if not data:
        # A response that cannot have a body has none; an empty one is an empty text.
        no_body = response.request.method == "HEAD" or response.status_code in (204, 304)
        return None if no_body else ""
    encoding = response.charset_encoding or "utf-8"
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def _headers_map(response: httpx.Response) -> dict[str, list[str]]:
    # Kestra exposes response headers by lower-case name, every value kept.
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def _file_name(response: httpx.Response) -> str:
    disposition = response.headers.get("content-disposition")
    if disposition:
        message = email.message.Message()
        message["content-disposition"] = disposition
        with contextlib.suppress(Exception):
            name = message.get_filename()
            if name:
                return _sanitise(name)
    segment = urllib.parse.unquote(response.url.path.rsplit("/", 1)[-1])
    return _sanitise(segment)


def _sanitise(name: str) -> str:
    """A file name safe on any file system: the last path part, plain characters, a bounded length."""
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = re.sub(r"[^\w.\-]+", "_", name).strip("._ ")
    if not name:
        return "download"
    if len(name) > _MAX_FILE_NAME:
        _, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) <= 16 else ""
        name = name[: _MAX_FILE_NAME - len(keep) - 1].rstrip("._") + ("." + keep if keep else "")
    return name


# ---------------------------------------------------------------------------------------------------
# Messages and logs
# ---------------------------------------------------------------------------------------------------


def _network_failure(call: _Call, error: httpx.HTTPError) -> TaskFailure:
    where = f"{call.method} {call.shown_url}"
    if isinstance(error, httpx.ConnectTimeout):
        reason = f"no connection within {call.connect_timeout:g} s (options.timeout.connectTimeout)"
    elif isinstance(error, httpx.ReadTimeout):
        reason = f"the server sent nothing for {call.read_timeout:g} s (options.timeout.readIdleTimeout)"
    elif isinstance(error, httpx.WriteTimeout):
        reason = f"the request could not be sent within {call.read_timeout:g} s"
    elif isinstance(error, httpx.TooManyRedirects):
        reason = "too many redirects"
    elif isinstance(error, httpx.ConnectError):
        reason = f"cannot connect ({_reason(error)})"
    elif isinstance(error, httpx.RemoteProtocolError):
        reason = f"the server broke the connection ({_reason(error)})"
    else:
        reason = f"{type(error).__name__}: {_reason(error)}"
    return TaskFailure(f"Failed http request {where}: {reason}")


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text or type(error).__name__


def _log_exchange(
    context: TaskContext, call: _Call, response: httpx.Response, size: int, seconds: float
) -> None:
    took = f"{seconds * 1000:.0f} ms"
    line = f"{call.method} {call.shown_url} -> {response.status_code} ({_size(size)} in {took}"
    if response.history:
        line += f", {len(response.history)} redirect(s) to {_redacted(str(response.url))}"
    context.log(LogLevel.INFO, line + ")")
    if "RESPONSE_HEADERS" in call.logs:
        shown = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
        context.log(LogLevel.INFO, f"Response headers:\n{shown}")


def _log_request(context: TaskContext, call: _Call) -> None:
    if "REQUEST_HEADERS" in call.logs:
        shown = "\n".join(f"{name}: {value}" for name, value in call.headers)
        context.log(LogLevel.INFO, f"Request headers:\n{shown}")
    if "REQUEST_BODY" in call.logs and call.content:
        text = call.content.decode("utf-8", errors="replace")
        context.log(LogLevel.INFO, f"Request body:\n{_shorten(text, _LOGGED_BODY_CHARS)}")


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


def _size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


# ---------------------------------------------------------------------------------------------------
# Property values
# ---------------------------------------------------------------------------------------------------


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TaskFailure(f"`{name}` must be a map, got '{to_text(value)}'")
    return value


def _flag(value: Any, name: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = to_text(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise TaskFailure(f"`{name}` must be true or false, got '{to_text(value)}'")


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        try:
            seconds = parse_duration(to_text(value)).total_seconds()
        except ValueError as error:
            raise TaskFailure(f"`{name}`: {error}") from None
    if seconds <= 0:
        raise TaskFailure(f"`{name}` must be a positive duration, got '{to_text(value)}'")
    return seconds


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(to_text(value).strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise TaskFailure(f"`{name}` must be a positive whole number, got '{to_text(value)}'")
    return number


def _codes(value: Any) -> list[int]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_positive_int(item, "options.allowedResponseCodes") for item in items]


def _charset(value: Any) -> str:
    if value is None:
        return "utf-8"
    name = to_text(value).strip()
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise TaskFailure(f"`options.defaultCharset`: unknown charset '{name}'") from None


def _with_charset(content_type: str, charset: str) -> str:
    if not content_type or "charset=" in content_type.lower():
        return content_type
    return f"{content_type}; charset={charset.upper()}"


__all__ = ["HANDLERS", "MAX_DOWNLOAD_BYTES", "download", "request"]
