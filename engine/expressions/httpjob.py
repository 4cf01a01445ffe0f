"""The request of Kestra's http() function, as a costly job (see :mod:`.costly`): it runs in a worker
process that the render's time limit kills, never on the engine's event loop."""

from __future__ import annotations

import json
from typing import Any, Final

from .core import LimitExceeded, RenderFailure

__all__ = ["MAX_RESPONSE_BYTES", "http_request"]

MAX_RESPONSE_BYTES: Final = 10 * 1024 * 1024


def http_request(
    method: str,
    url: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes | None,
    follow_redirects: bool,
    allow_failed: bool,
) -> Any:
    """Send one request and return its body: parsed when the response is JSON, else its text.

    Raises:
        RenderFailure: The request failed, or the server answered with an error status.
        LimitExceeded: The response is larger than :data:`MAX_RESPONSE_BYTES`.
    """
    import httpx  # only worker processes send requests

    try:
        with (
            httpx.Client(follow_redirects=follow_redirects, timeout=None) as client,
            client.stream(method, url, headers=list(headers), content=body) as response,
        ):
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    raise LimitExceeded(
                        f"the HTTP response of {url} exceeds the limit of {MAX_RESPONSE_BYTES} bytes"
                    )
    except httpx.HTTPError as exc:
        raise RenderFailure(f"Failed to execute HTTP request: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 400 and not allow_failed:
        raise RenderFailure(
            "Failed to execute HTTP Request, server respond with status "
            f"{response.status_code} : {response.reason_phrase}"
        )
    text = bytes(data).decode(response.encoding or "utf-8", errors="replace")
    if not text:
        return None
    if "json" in response.headers.get("content-type", "").lower():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
