"""The current flows by (namespace, id), each parsed on first use.

A flow file unchanged since its revision was stored is not parsed when the engine starts: the table
holds the stored source and parses it the first time the flow is asked for (a run, the dashboard,
a trigger). What the triggers need at start, which flows have triggers of which types, comes from the
outline kept with the revision, so that the scheduler and the Flow triggers parse only those flows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass

from ..model import Flow, TriggerSpec

FlowUid = tuple[str, str]


@dataclass(frozen=True, slots=True)
class StoredFlow:
    """A current revision known from the store and from an unchanged file, not parsed yet."""

    uid: FlowUid
    revision: int
    source: str
    path: str
    trigger_types: frozenset[str]


class FlowTable(MutableMapping[FlowUid, Flow]):
    """A mapping of the current flows whose values are parsed on first access.

    Membership, length, keys, `source` and `with_triggers` never parse. Reading a value parses it
    once (iterating `values()` or `items()` parses every flow not parsed yet).

    Args:
        parse: Turns a stored revision into its Flow; raises KeyError when it no longer parses
            (the caller records why), and the flow is then left out.
    """

    def __init__(self, parse: Callable[[StoredFlow], Flow]) -> None:
        self._parse = parse
        self._entries: dict[FlowUid, Flow | StoredFlow] = {}
        self._triggers: dict[FlowUid, frozenset[str]] = {}  # only flows that have triggers

    def __getitem__(self, uid: FlowUid) -> Flow:
        entry = self._entries[uid]
        if isinstance(entry, Flow):
            return entry
        try:
            flow = self._parse(entry)
        except KeyError:
            self.discard(uid)
            raise
        self._entries[uid] = flow
        self._index(uid, flow)
        return flow

    def __setitem__(self, uid: FlowUid, flow: Flow) -> None:
        self._entries[uid] = flow
        self._index(uid, flow)

    def __delitem__(self, uid: FlowUid) -> None:
        del self._entries[uid]
        self._triggers.pop(uid, None)

    def __contains__(self, uid: object) -> bool:
        return uid in self._entries

    def __iter__(self) -> Iterator[FlowUid]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"FlowTable({dict(self)!r})"

    def add_stored(self, entry: StoredFlow) -> None:
        """Make a stored revision the current one, to be parsed when first used."""
        self._entries[entry.uid] = entry
        if entry.trigger_types:
            self._triggers[entry.uid] = entry.trigger_types
        else:
            self._triggers.pop(entry.uid, None)

    def discard(self, uid: FlowUid) -> None:
        """Forget a flow if present, without parsing it."""
        self._entries.pop(uid, None)
        self._triggers.pop(uid, None)

    def source(self, uid: FlowUid) -> str | None:
        """The YAML source of a current flow, without parsing it."""
        entry = self._entries.get(uid)
        return None if entry is None else entry.source

    def path(self, uid: FlowUid) -> str | None:
        """The file a current flow comes from, without parsing it."""
        entry = self._entries.get(uid)
        return None if entry is None else entry.path

    def is_parsed(self, uid: FlowUid) -> bool:
        """Whether the flow has been parsed already (False for an unknown flow)."""
        return isinstance(self._entries.get(uid), Flow)

    def with_triggers(self, trigger_type: str | None = None) -> list[FlowUid]:
        """The flows that have a trigger (of the given type), in the table's order, without parsing."""
        if trigger_type is None:
            return list(self._triggers)
        return [uid for uid, types in self._triggers.items() if trigger_type in types]

    def _index(self, uid: FlowUid, flow: Flow) -> None:
        types = trigger_types(flow.triggers)
        if types:
            self._triggers[uid] = types
        else:
            self._triggers.pop(uid, None)


def trigger_types(triggers: Iterable[TriggerSpec]) -> frozenset[str]:
    """The types of a flow's triggers."""
    return frozenset(trigger.type for trigger in triggers)
