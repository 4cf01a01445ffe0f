"""Kestra's http() function: fetch a payload from an expression.

``http(uri, method='GET', query={}, body=null, contentType='application/json', headers={}, options={},
accept='application/json')`` returns the response's body, parsed when it is JSON; an error status fails
the render unless ``options.allowFailed`` is true. The request runs in a worker process under the
render's time limit (see :mod:`.offload`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from .core import RenderFailure, current_state, fail_if_undefined, to_text
from .costly import Job
from .offload import run
from .yamltext import to_yaml

__all__ = ["fn_http"]


def _headers(headers: Any, accept: str) -> list[tuple[str, str]]:
    if headers is None:
        headers = {}
    if not isinstance(headers, Mapping):
        raise RenderFailure("The 'http' function expects 'headers' to be a map")
    pairs: list[tuple[str, str]] = []
    for name, value in headers.items():
        if str(name).lower() in ("content-type", "accept"):
            continue  # given by 'contentType' and 'accept'
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(str(name), to_text(item)) for item in values]
    return [*pairs, ("Accept", accept)]


def _body(body: Any, content_type: str) -> bytes:
    kind = content_type.split(";")[0].strip().lower()
    if isinstance(body, bytes):
        return body
    if kind.endswith("json"):
        return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    if kind in ("application/yaml", "application/x-yaml", "text/yaml"):
        return to_yaml(body).encode("utf-8")
    if kind == "application/x-www-form-urlencoded" and isinstance(body, Mapping):
        return urlencode({str(k): to_text(v) for k, v in body.items()}).encode("utf-8")
    if isinstance(body, str):
        return body.encode("utf-8")
    raise RenderFailure(f"The 'http' function cannot write a request body as '{content_type}'")


def _with_query(uri: str, query: Any) -> str:
    if not query:
        return uri
    if not isinstance(query, Mapping):
        raise RenderFailure("The 'http' function expects 'query' to be a map")
    parts = urlsplit(uri)
    extra = urlencode([(str(k), to_text(v)) for k, v in query.items()])
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def fn_http(
    uri: Any = None,
    method: Any = "GET",
    query: Any = None,
    body: Any = None,
    contentType: Any = "application/json",
    headers: Any = None,
    options: Any = None,
    accept: Any = "application/json",
) -> Any:
    """``http(uri, ...)``: the body of an HTTP response (see the module's description)."""
    fail_if_undefined(uri, method, query, body, contentType, headers, options, accept)
    if uri is None:
        raise RenderFailure("The 'http' function expects an argument 'uri'.")
    url = _with_query(to_text(uri), query)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise RenderFailure(f"The 'http' function supports http and https URIs only, not '{url}'")
    settings = options if isinstance(options, Mapping) else {}
    pairs = _headers(headers, to_text(accept))
    content: bytes | None = None
    if body is not None:
        content = _body(body, to_text(contentType))
        pairs.append(("Content-Type", to_text(contentType)))
    auth = settings.get("auth")
    if isinstance(auth, Mapping):
        pairs.append(_authorization(auth))
    job = Job(
        "http",
        (
            to_text(method).upper(),
            url,
            tuple(pairs),
            content,
            bool(settings.get("followRedirects", True)),
            bool(settings.get("allowFailed", False)),
        ),
    )
    return run(job, current_state())


def _authorization(auth: Mapping[str, Any]) -> tuple[str, str]:
    """``options.auth``: ``{type: BASIC, username, password}`` or ``{type: BEARER, token}``."""
    kind = str(auth.get("type", "")).upper()
    if kind == "BASIC":
        pair = f"{to_text(auth.get('username') or '')}:{to_text(auth.get('password') or '')}"
        return ("Authorization", "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii"))
    if kind == "BEARER":
        return ("Authorization", f"Bearer {to_text(auth.get('token') or '')}")
    raise RenderFailure(f"The 'http' function supports the BASIC and BEARER auth types, not '{kind}'")
