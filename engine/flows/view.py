"""A read-only view of the current flows, as the engine hands them out (`Engine.flows`).

The catalog alone changes its table (syncing the flows folder); everyone else reads through this
view, which parses a flow on first access like the table does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..model import Flow
from .table import FlowTable, FlowUid


class FlowsView(Mapping[FlowUid, Flow]):
    """The current revision of every flow, by (namespace, flow id); read-only."""

    def __init__(self, table: FlowTable) -> None:
        self._table = table

    def __getitem__(self, uid: FlowUid) -> Flow:
        return self._table[uid]

    def __contains__(self, uid: object) -> bool:
        return uid in self._table

    def __iter__(self) -> Iterator[FlowUid]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"FlowsView({self._table!r})"

    def source(self, uid: FlowUid) -> str | None:
        """The YAML source of a current flow, without parsing it."""
        return self._table.source(uid)

    def path(self, uid: FlowUid) -> str | None:
        """The file a current flow comes from, without parsing it."""
        return self._table.path(uid)

    def is_parsed(self, uid: FlowUid) -> bool:
        """Whether the flow has been parsed already (False for an unknown flow)."""
        return self._table.is_parsed(uid)

    def with_triggers(self, trigger_type: str | None = None) -> list[FlowUid]:
        """The flows that have a trigger (of the given type), without parsing them."""
        return self._table.with_triggers(trigger_type)
