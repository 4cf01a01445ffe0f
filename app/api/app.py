"""The API's Starlette application: every resource's routes, under `/api/v1` and `/api/v1/main`."""

from __future__ import annotations

import logging
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from tiercel.engine import EngineError

from . import executions, flows, namespaces
from .auth import BasicAuth, Credentials
from .responses import ApiError, error_response, json_response
from .users import Users

if TYPE_CHECKING:
    from tiercel.engine import Engine

_log = logging.getLogger(__name__)

# Kestra OSS 1.x serves every resource under its one tenant, `main`; earlier versions without one.
TENANT = "main"


def _version() -> str:
    try:
        return version("tiercel")
    except PackageNotFoundError:
        return "unknown"


async def configs(request: Request) -> Response:
    """What Kestra's tools read first: the version, and whether basic authentication is on."""
    settings: dict[str, Any] = request.app.state.settings
    return json_response(
        request,
        {
            "version": _version(),
            "edition": "OSS",
            "isBasicAuthEnabled": settings["basic_auth"],
            "systemNamespace": "system",
            "hiddenLabelsPrefixes": [],
            "preview": {"initial": 100, "max": 5000},
        },
    )


async def _refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(request, error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    detail = "" if error.detail == HTTPStatus(error.status_code).phrase else str(error.detail)
    answer = error_response(request, ApiError(error.status_code, detail))
    if error.headers:
        answer.headers.update(error.headers)
    return answer


async def _unexpected(request: Request, error: Exception) -> Response:
    """A failure no answer foresaw: reported on the engine's bus (the server logs it), its type only
    in the answer (its text may name the server's files)."""
    _log.warning("API request %s %s failed", request.method, request.url.path, exc_info=error)
    engine = request.app.state.engine
    engine.events.publish(EngineError(engine.masker.mask(f"API: {type(error).__name__}: {error}")))
    return error_response(request, ApiError(500, f"Internal server error: {type(error).__name__}"))


def api_app(
    engine: Engine,
    *,
    credentials: Credentials | None = None,
    open_api: bool = True,
    users: Users | None = None,
) -> Starlette:
    """The API of `engine`.

    Args:
        credentials: The user and password every request must carry; None for none.
        users: The users of a users file: each request must carry one's credentials (or
            `credentials`), and acts with that user's namespace permissions (tiercel.engine.access).
        open_api: Whether the API is open without credentials (the server listens on loopback only);
            when it is not and no credentials are given, every API request is refused with 403.
    """
    resources: list[BaseRoute] = [
        Route("/configs", configs, methods=["GET"]),
        *flows.ROUTES,
        *executions.ROUTES,
        *namespaces.ROUTES,
    ]
    app = Starlette(
        routes=[
            # Without the tenant in every version (a mount takes every path under its prefix).
            *[
                Route(f"/api/v1{route.path}", route.endpoint, methods=route.methods)
                for route in flows.UNTENANTED
            ],
            Mount(f"/api/v1/{TENANT}", routes=resources),
            Mount("/api/v1", routes=resources),
        ],
        middleware=[Middleware(BasicAuth, credentials=credentials, open_api=open_api, users=users)],
        exception_handlers={ApiError: _refused, HTTPException: _http_error, Exception: _unexpected},
    )
    app.state.engine = engine
    app.state.settings = {"basic_auth": credentials is not None or users is not None}
    return app
