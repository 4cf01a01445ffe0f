"""What the panes and screens ask of the dashboard and of its engine, as small protocols.

Widgets and screens act on their own selection and reach the rest through these protocols, so
none of them imports the app module (which imports them all): the dashboard app satisfies
`Dashboard`, and the local engine satisfies `DashboardEngine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol, cast

from textual.dom import DOMNode

from tiercel.engine import Commands, DbTarget, Flow, FlowUid, Permission, TriggerState


class EngineFlows(Protocol):
    """The engine's current flows, read-only (`Engine.flows`): a mapping by (namespace, flow id) that
    parses a flow on first access, and tells which flows have triggers and their files without parsing."""

    def __getitem__(self, uid: FlowUid, /) -> Flow: ...

    def __contains__(self, uid: object, /) -> bool: ...

    def __iter__(self) -> Iterator[FlowUid]: ...

    def __len__(self) -> int: ...

    def get(self, uid: FlowUid, /) -> Flow | None: ...

    def path(self, uid: FlowUid) -> str | None: ...

    def with_triggers(self, trigger_type: str | None = None) -> list[FlowUid]: ...


class DashboardEngine(Commands, Protocol):
    """The engine as the dashboard uses it: the commands and queries, plus the flows folder's state."""

    @property
    def flows(self) -> EngineFlows: ...

    @property
    def flow_errors(self) -> Mapping[str, Sequence[object]]: ...

    async def sync_flows(self, paths: Iterable[Path] | None = None) -> None: ...

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[tuple[int, str, datetime]]: ...

    async def flow_revision(self, namespace: str, flow_id: str, revision: int) -> Flow | None: ...

    async def execution_ids(self, prefix: str, *, limit: int) -> list[str]: ...

    @property
    def restricted(self) -> bool:
        """Whether the dashboard acts for someone less than the machine's owner with every
        permission (a user of a users file, or read-only)."""
        ...

    def readable(self, namespace: str) -> bool:
        """Whether the person at the dashboard may read `namespace`."""
        ...

    def refusal(self, namespace: str, needed: Permission) -> str | None:
        """Why the person at the dashboard may not do what needs `needed` in `namespace`; None when
        they may (the machine's owner may do anything, unless the dashboard is read-only)."""
        ...


class Dashboard(Protocol):
    """The app-wide state a pane or screen needs: the engine, trigger states, the terminal."""

    @property
    def engine(self) -> DashboardEngine | None: ...

    @property
    def db(self) -> DbTarget:
        """The store the dashboard works on (the last flow test results are kept beside a file)."""
        ...

    @property
    def can_edit(self) -> bool:
        """Whether an editor can take over the terminal (not headless, and the driver can suspend)."""
        ...

    def started(self, execution_id: str) -> None:
        """Select a new execution in the executions pane as soon as it shows, and say it started."""
        ...

    def trigger_list(self, namespace: str | None = None, flow_id: str | None = None) -> list[TriggerState]:
        """The triggers as last read from the engine, of one flow when named."""
        ...

    async def refresh_triggers(self) -> None:
        """Read the trigger states again and show them wherever they are on screen."""
        ...


def dashboard(node: DOMNode) -> Dashboard:
    """The dashboard that `node` runs in."""
    return cast(Dashboard, node.app)


def refusal(node: DOMNode, namespace: str, needed: Permission) -> str | None:
    """Why the person at `node`'s dashboard may not do what needs `needed` in `namespace`, or None."""
    engine = dashboard(node).engine
    return engine.refusal(namespace, needed) if engine is not None else None


def said_no(node: DOMNode, why: str | None, title: str) -> bool:
    """Whether there is a refusal (`why`); it is then shown, under `title`."""
    if why is not None:
        node.app.notify(why, title=title, severity="error")
    return why is not None
