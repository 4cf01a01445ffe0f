"""Who may do what in a namespace: the `permissions` of `_namespace.yaml` declarations.

A grant names a user or a group and one of READ (see flows, executions, logs, files and keys),
EXECUTE (also start, kill, restart, replay and resume executions) or OWNER (also change flows,
namespace files and keys); each includes the ones before it. A grant holds in its namespace and every
namespace below it (`acme` covers `acme.finance`), and a person holds the highest of the grants that
name them or one of their groups along the way. The machine's owner (a local dashboard, the server's
single set of credentials, an owner in the users file) holds every permission everywhere. A person may
also be held to READ at most whatever they are granted (a dashboard opened read-only).

`Access` is the question as a component asks it: one person, the declarations in force.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from .errors import EngineCommandError
from .model import NamespaceSpec

__all__ = ["OWNER", "Access", "AccessDenied", "NamespaceChain", "Permission", "Principal"]


class Permission(IntEnum):
    READ = 1
    EXECUTE = 2
    OWNER = 3


@dataclass(frozen=True)
class Principal:
    """Someone reaching Tiercel: a user name, their groups, whether they are the owner, and the most
    they may do anywhere (READ for a read-only dashboard)."""

    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    owner: bool = False
    most: Permission = Permission.OWNER

    @property
    def unlimited(self) -> bool:
        """Whether they may do anything anywhere (nothing needs asking)."""
        return self.owner and self.most is Permission.OWNER


OWNER = Principal("owner", owner=True)


class AccessDenied(EngineCommandError):
    """A person lacks the permission an action needs; the message says which and where."""

    def __init__(
        self, principal: Principal, needed: Permission, namespace: str, has: Permission | None
    ) -> None:
        lacks = f"User `{principal.name}` lacks {needed.name} on namespace `{namespace}`"
        if principal.most < needed:
            why = f"{lacks}: read-only here, {principal.most.name} at most"
        else:
            holding = f"holds {has.name} there" if has is not None else "holds no permission there"
            why = (
                f"{lacks} ({holding}); "
                "a `permissions` entry of its `_namespace.yaml` (or of a parent's) grants it"
            )
        super().__init__(why)
        self.needed = needed
        self.namespace = namespace


# The declarations that apply to a namespace, outermost first (`Namespaces.chain`).
NamespaceChain = Callable[[str], Sequence[NamespaceSpec]]


@dataclass(frozen=True)
class Access:
    """What one person may do, given the namespace declarations in force."""

    chain: NamespaceChain
    principal: Principal

    def held(self, namespace: str) -> Permission | None:
        """The highest permission they hold on `namespace`; None for none."""
        principal = self.principal
        if principal.owner:
            return principal.most
        best: Permission | None = None
        for spec in self.chain(namespace):
            for grant in spec.permissions:
                named = (
                    grant.name == principal.name
                    if grant.principal == "user"
                    else grant.name in principal.groups
                )
                if named:
                    level = Permission[grant.permission]
                    best = level if best is None or level > best else best
        return min(best, principal.most) if best is not None else None

    def may(self, namespace: str, needed: Permission) -> bool:
        has = self.held(namespace)
        return has is not None and has >= needed

    def refusal(self, namespace: str, needed: Permission) -> AccessDenied | None:
        """Why they may not do what needs `needed` on `namespace`; None when they may."""
        has = self.held(namespace)
        return AccessDenied(self.principal, needed, namespace, has) if has is None or has < needed else None

    def require(self, namespace: str, needed: Permission) -> None:
        """Return if they hold `needed` on `namespace`.

        Raises:
            AccessDenied: They do not.
        """
        refused = self.refusal(namespace, needed)
        if refused is not None:
            raise refused
