"""The HTTP call of a Request or Download task, built and checked from the task's properties.

Everything a flow writes is checked here, before any connection is made: the URL, the method, the
body or form (URL-encoded or multipart), headers, timeouts, auth, proxy, TLS and which exchanges to log.
"""

from __future__ import annotations

import codecs
import re
import urllib.parse
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from ...durations import parse_duration
from ...expressions import to_text
from ...model import LogLevel
from ..base import TaskFailure

if TYPE_CHECKING:
    import httpx

    from ...internal_storage import Storage

CORE_HTTP = "io.kestra.plugin.core.http"

DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_READ_TIMEOUT = 300.0
DEFAULT_CONTENT_TYPE = "application/json"
REQUEST_MAX_BODY_BYTES = 10 * 1024 * 1024
USER_AGENT = "Tiercel"

LOGGED_BODY_CHARS = 4000
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


class RequestSource(Protocol):
    """Where a call's properties come from: a task run (`TaskContext`), or a trigger that rendered them."""

    def prop(self, name: str, default: Any = None) -> Any:
        """A property, rendered (None when absent)."""
        ...

    def log(self, level: LogLevel, message: str) -> None:
        """Log a line about the call."""
        ...

    def require_storage(self) -> Storage:
        """The internal storage (multipart files name kestra:// URIs); raises TaskFailure without one."""
        ...


@dataclass
class Call:
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
        return redacted(self.url)

    def client(self) -> httpx.AsyncClient:
        """A client for this call only; the caller closes it."""
        import httpx  # loaded by the first HTTP call (see `_exchange`)

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


def prepare(context: RequestSource, *, for_download: bool) -> Call:
    """The call the properties describe, checked (raises TaskFailure on a bad property)."""
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
    call = Call(method=method, url=url, headers=[("User-Agent", USER_AGENT)])

    form = _mapping(context.prop("formData"), "formData")
    body = context.prop("body")
    if form:
        if content_type.split(";")[0].strip().lower() == "multipart/form-data":
            call.parts = _multipart(context, form, charset)
        else:
            pairs = [(str(key), to_text(value)) for key, value in form.items()]
            call.content = urllib.parse.urlencode(pairs, encoding=charset).encode("ascii")
            _set_header(call, "Content-Type", f"application/x-www-form-urlencoded; charset={charset.upper()}")
    elif body is not None:
        call.content = to_text(body).encode(charset)
        _set_header(call, "Content-Type", _with_charset(content_type, charset))
    elif content_type:
        _set_header(call, "Content-Type", content_type)

    for name, value in _mapping(context.prop("headers"), "headers").items():
        values = [_header_value(name, item) for item in (value if isinstance(value, list) else [value])]
        _set_header(call, str(name), *values)

    _apply_timeouts(call, options)
    call.follow_redirects = flag(options.get("followRedirects"), "options.followRedirects", True)
    top_allow = context.prop("allowFailed")
    call.allow_failed = flag(
        top_allow if top_allow is not None else options.get("allowFailed"), "allowFailed", False
    )
    call.allowed_codes = frozenset(_codes(options.get("allowedResponseCodes")))
    _apply_auth(call, options)
    call.proxy = _proxy(options)
    ssl = context.prop("sslOptions")
    ssl = _mapping(ssl if ssl is not None else options.get("ssl"), "sslOptions")
    call.verify = not flag(
        ssl.get("insecureTrustAllCertificates"), "sslOptions.insecureTrustAllCertificates", False
    )
    call.logs = _log_types(options)
    if not for_download and options.get("maxContentLength") is not None:
        call.max_body = min(_positive_int(options["maxContentLength"], "options.maxContentLength"), 2**31 - 1)
    if call.logs & {"REQUEST_HEADERS", "REQUEST_BODY"}:
        _log_request(context, call)
    return call


def _set_header(call: Call, name: str, *values: str) -> None:
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
    import httpx

    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as error:
        raise TaskFailure(f"`uri`: '{redacted(text)}' is not a valid URL ({error})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TaskFailure(f"`uri`: '{redacted(text)}' is not an http:// or https:// URL")
    return text


def _multipart(
    context: RequestSource, form: Mapping[str, Any], charset: str
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


def _stored_file(context: RequestSource, uri: str, field_name: str) -> Path:
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


def _apply_timeouts(call: Call, options: Mapping[str, Any]) -> None:
    nested = _mapping(options.get("timeout"), "options.timeout")
    connect = nested.get("connectTimeout", options.get("connectTimeout"))
    read = nested.get("readIdleTimeout", options.get("readTimeout"))
    if connect is not None:
        call.connect_timeout = _seconds(connect, "options.timeout.connectTimeout")
    if read is not None:
        call.read_timeout = _seconds(read, "options.timeout.readIdleTimeout")


def _apply_auth(call: Call, options: Mapping[str, Any]) -> None:
    auth = _mapping(options.get("auth"), "options.auth")
    user = options.get("basicAuthUser")
    if not auth and user is not None:
        auth = {"type": "BASIC", "username": user, "password": options.get("basicAuthPassword")}
    if not auth:
        return
    kind = to_text(auth.get("type") or "BASIC").strip().upper()
    import httpx

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
    import httpx

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


def _log_request(context: RequestSource, call: Call) -> None:
    if "REQUEST_HEADERS" in call.logs:
        shown = "\n".join(f"{name}: {value}" for name, value in call.headers)
        context.log(LogLevel.INFO, f"Request headers:\n{shown}")
    if "REQUEST_BODY" in call.logs and call.content:
        text = call.content.decode("utf-8", errors="replace")
        context.log(LogLevel.INFO, f"Request body:\n{shorten(text, LOGGED_BODY_CHARS)}")


def redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


# ---------------------------------------------------------------------------------------------------
# Property values
# ---------------------------------------------------------------------------------------------------


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TaskFailure(f"`{name}` must be a map, got '{to_text(value)}'")
    return value


def flag(value: Any, name: str, default: bool) -> bool:
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
