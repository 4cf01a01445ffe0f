"""Each API route's permission on the namespace it touches (tiercel.engine.access).

The authentication middleware (auth.py) puts the person behind the request in its scope; the routes
ask `need` for what they do: READ to see, EXECUTE to start, kill, restart, replay or resume, OWNER to
change flows, namespace files and keys. Lists leave out what the person may not read.
"""

from __future__ import annotations

from starlette.requests import Request

from tiercel.engine import OWNER, Access, AccessDenied, Permission, Principal

from .responses import ApiError, engine_of

__all__ = ["Permission", "need", "principal_of", "readable"]


def principal_of(request: Request) -> Principal:
    """Who sent the request (the owner when the API has no users file)."""
    found = request.scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else OWNER


def access_of(request: Request) -> Access:
    """What the request's sender may do, given the engine's namespace declarations."""
    return Access(engine_of(request).catalog.namespaces.chain, principal_of(request))


def need(request: Request, namespace: str, permission: Permission) -> None:
    """Return if the request's sender holds `permission` on `namespace`; else a 403 saying what lacks."""
    try:
        access_of(request).require(namespace, permission)
    except AccessDenied as refused:
        raise ApiError(403, str(refused)) from None


def readable(request: Request, namespace: str) -> bool:
    return access_of(request).may(namespace, Permission.READ)
