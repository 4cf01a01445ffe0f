"""Answers in Kestra's shapes: JSON with secrets masked, Kestra's error body, paged results."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from tiercel.engine import Engine

# What Kestra's error answers start their message with, by status.
_REASONS = {
    400: "Bad Request",
    404: "Not Found",
    409: "Illegal state",
    410: "Resource has expired",
    422: "Invalid entity",
}


class ApiError(Exception):
    """A request the API refuses: its status, its message and, for an invalid entity, each error
    with the path it concerns."""

    def __init__(self, status: int, message: str, errors: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors)

    @classmethod
    def invalid(cls, problems: Sequence[tuple[str, str]]) -> ApiError:
        """422, an invalid entity: each problem as (path, message)."""
        return cls(422, ", ".join(f"{path}: {message}" for path, message in problems), problems)

    @classmethod
    def bad_inputs(cls, messages: Sequence[str]) -> ApiError:
        return cls(422, ", ".join(messages), [("inputs", message) for message in messages])


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def json_response(request: Request, value: Any, status: int = 200) -> Response:
    """`value` as JSON, with every secret value the engine knows masked."""
    masked = engine_of(request).masker.mask_value(value)
    body = json.dumps(masked, default=str, ensure_ascii=False).encode()
    return Response(body, status, media_type="application/json")


def error_response(request: Request, error: ApiError) -> Response:
    """Kestra's error body: `message` (the reason, then what), a link to the request, and the
    invalid entity's errors under `_embedded`."""
    reason = _REASONS.get(error.status) or HTTPStatus(error.status).phrase
    body: dict[str, Any] = {
        "message": f"{reason}: {error.message}" if error.message else reason,
        "_links": {"self": {"href": request.url.path, "templated": False}},
    }
    if error.errors:
        body["_embedded"] = {"errors": [{"message": message, "path": path} for path, message in error.errors]}
    return json_response(request, body, error.status)


def paged(results: Sequence[Any], total: int) -> dict[str, Any]:
    """Kestra's PagedResults."""
    return {"results": list(results), "total": total}


def page_params(request: Request) -> tuple[int, int]:
    """The `page` (from 1) and `size` query values.

    Raises:
        ApiError: Either is not a whole number of at least 1.
    """
    found = []
    for name, default in (("page", 1), ("size", 10)):
        text = request.query_params.get(name, str(default))
        if not whole_number(text) or int(text) < 1:
            raise ApiError(422, f"`{name}` must be a whole number of at least 1, not `{text}`")
        found.append(int(text))
    return found[0], found[1]


def whole_number(text: str) -> bool:
    """Whether `text` is a whole number of at most nine ASCII digits (a page, a size, a revision)."""
    return re.fullmatch(r"[0-9]{1,9}", text) is not None


def labels_param(request: Request) -> dict[str, str]:
    """The repeatable `labels` query values, each `key:value`.

    Raises:
        ApiError: One is not `key:value`.
    """
    labels: dict[str, str] = {}
    for text in request.query_params.getlist("labels"):
        key, colon, value = text.partition(":")
        if not colon or not key:
            raise ApiError(422, f"Invalid queryString parameter: label `{text}` is not key:value")
        labels[key] = value
    return labels


def flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    text = query.get(name)
    return default if text is None else text.strip().lower() in ("true", "1", "yes")
