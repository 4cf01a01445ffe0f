"""Who may do what in a namespace: the `permissions` of `_namespace.yaml` declarations.

A grant names a user or a group and one of READ (see flows, executions, logs, files and keys),
EXECUTE (also start, kill, restart, replay and resume executions) or OWNER (also change flows,
namespace files and keys); each includes the ones before it. A grant holds in its namespace and every
namespace below it (`acme` covers `acme.finance`), and a person holds the highest of the grants that
name them or one of their groups along the way. The machine's owner (a local dashboard, the server's
single set of credentials, an owner in the users file) holds every permission everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from .model import NamespaceSpec

__all__ = ["OWNER", "AccessDenied", "Permission", "Principal", "held", "require"]


class Permission(IntEnum):
    READ = 1
    EXECUTE = 2
    OWNER = 3


@dataclass(frozen=True)
class Principal:
    """Someone reaching Tiercel: a user name, their groups, and whether they are the owner."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    owner: bool = False


OWNER = Principal("owner", owner=True)


class AccessDenied(Exception):
    """A person lacks the permission an action needs; the message says which and where."""

    def __init__(
        self, principal: Principal, needed: Permission, namespace: str, has: Permission | None
    ) -> None:
        holding = f"holds {has.name} there" if has is not None else "holds no permission there"
        super().__init__(
            f"User `{principal.name}` lacks {needed.name} on namespace `{namespace}` ({holding}); "
            "a `permissions` entry of its `_namespace.yaml` (or of a parent's) grants it"
        )
        self.needed = needed
        self.namespace = namespace


# The declarations that apply to a namespace, outermost first (`Namespaces.chain`).
Chain = Callable[[str], Sequence[NamespaceSpec]]


def held(chain: Chain, principal: Principal, namespace: str) -> Permission | None:
    """The highest permission `principal` holds on `namespace`; None for none."""
    if principal.owner:
        return Permission.OWNER
    best: Permission | None = None
    for spec in chain(namespace):
        for grant in spec.permissions:
            named = (
                grant.name == principal.name if grant.principal == "user" else grant.name in principal.groups
            )
            if named:
                level = Permission[grant.permission]
                best = level if best is None or level > best else best
    return best


def require(chain: Chain, principal: Principal, namespace: str, needed: Permission) -> None:
    """Return if `principal` holds `needed` on `namespace`.

    Raises:
        AccessDenied: They do not.
    """
    has = held(chain, principal, namespace)
    if has is None or has < needed:
        raise AccessDenied(principal, needed, namespace, has)
