"""Reading the response of an HTTP call.

Refusing a response code that is not accepted, reading a capped body or streaming one to a file,
decoding text, naming the downloaded file, failure messages and the log line of the exchange.
"""

from __future__ import annotations

import contextlib
import email.message
import re
import unicodedata
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from ...model import LogLevel
from ..base import TaskFailure
from ..failures import CONNECTION_ERROR, TIMEOUT
from .call import CORE_HTTP, Call, RequestSource, redacted

if TYPE_CHECKING:
    import httpx

MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024

_CHUNK_BYTES = 64 * 1024
# How much of a failed response's body goes into the failure message.
_ERROR_BODY_BYTES = 8 * 1024
_MAX_FILE_NAME = 128


async def refusal(call: Call, response: httpx.Response) -> tuple[TaskFailure, int] | None:
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
        text = decode(response, bytes(head[:_ERROR_BODY_BYTES]))
        cut = " [...]" if len(head) >= _ERROR_BODY_BYTES else ""
        message += f" and body:\n{text}{cut}"
    return TaskFailure(message), len(head)


async def read_capped(call: Call, response: httpx.Response) -> bytes:
    declared = _content_length(response)
    if declared is not None and declared > call.max_body:
        raise _too_large(call, declared, "announces", for_download=False)
    data = bytearray()
    async for chunk in response.aiter_bytes(_CHUNK_BYTES):
        data += chunk
        if len(data) > call.max_body:
            raise _too_large(call, call.max_body, "sent more than", for_download=False)
    return bytes(data)


async def stream_to_file(call: Call, response: httpx.Response, target: Path) -> int:
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


def _too_large(call: Call, size: int, verb: str, *, for_download: bool) -> TaskFailure:
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


def decode(response: httpx.Response, data: bytes) -> str | None:
    if not data:
        # A response that cannot have a body has none; an empty one is an empty text.
        no_body = response.request.method == "HEAD" or response.status_code in (204, 304)
        return None if no_body else ""
    encoding = response.charset_encoding or "utf-8"
    try:
        return data.decode(encoding, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def headers_map(response: httpx.Response) -> dict[str, list[str]]:
    # Kestra exposes response headers by lower-case name, every value kept.
    headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        headers.setdefault(name.lower(), []).append(value)
    return headers


def file_name(response: httpx.Response) -> str:
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


def network_failure(call: Call, error: httpx.HTTPError) -> TaskFailure:
    import httpx

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
    unreachable = httpx.NetworkError | httpx.ConnectTimeout | httpx.RemoteProtocolError
    code = CONNECTION_ERROR if isinstance(error, unreachable) else ""
    code = code or (TIMEOUT if isinstance(error, httpx.TimeoutException) else "")
    return TaskFailure(f"Failed http request {where}: {reason}", code=code)


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text or type(error).__name__


def log_exchange(
    context: RequestSource, call: Call, response: httpx.Response, size: int, seconds: float
) -> None:
    took = f"{seconds * 1000:.0f} ms"
    line = f"{call.method} {call.shown_url} -> {response.status_code} ({_size(size)} in {took}"
    if response.history:
        line += f", {len(response.history)} redirect(s) to {redacted(str(response.url))}"
    context.log(LogLevel.INFO, line + ")")
    if "RESPONSE_HEADERS" in call.logs:
        shown = "\n".join(f"{name}: {value}" for name, value in response.headers.multi_items())
        context.log(LogLevel.INFO, f"Response headers:\n{shown}")


def _size(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
