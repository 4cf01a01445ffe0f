"""The edges between two layers of a Dag's layout, routed so that no two of them seem to join.

The edges leaving a layer form groups: one slot and the slots it leads to, or, where several slots
each lead to one same slot only (a fan-in), those edges together. Either way every source of a group
leads to every target of it, so one horizontal line per group says nothing false. Each group has
its own entry into a target box (boxes with several groups entering have several ┴), groups whose
lines would touch go on different tracks (rows), and a group entering at the column where another
group leaves goes on a lower track than that one, so that the two vertical lines never meet.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class Slot:
    """A task's box in its layer, or a stand-in (`task` None) for an edge passing through."""

    key: str
    task: str | None
    layer: int
    width: int
    x: int = 0

    @property
    def center(self) -> int:
        return self.x + self.width // 2

    @property
    def right(self) -> int:
        return self.x + self.width


@dataclass(eq=False)
class Group:
    """Edges drawn as one line: down from each source column, along a track, down to each target."""

    sources: tuple[int, ...]
    targets: tuple[int, ...]
    track: int = -1  # -1: one line straight down (a single source right above its single target)

    @property
    def left(self) -> int:
        return min(*self.sources, *self.targets)

    @property
    def right(self) -> int:
        return max(*self.sources, *self.targets)


@dataclass
class Channel:
    """The rows between two layers: `tracks` rows and the groups of edges drawn on them."""

    tracks: int = 1
    groups: list[Group] = field(default_factory=list)


def route(upper: list[Slot], edges: list[tuple[Slot, Slot]]) -> Channel:
    """The groups of the edges leaving the layer `upper`, their entry columns and their tracks."""
    members = _groups(upper, edges)
    entries = _entries(members)
    groups = [
        Group(
            tuple(sorted(source.center for source in sources)),
            tuple(sorted(entries[index, id(target)] for target in targets)),
        )
        for index, (sources, targets) in enumerate(members)
    ]
    return Channel(_tracks(groups), groups)


def _groups(upper: list[Slot], edges: list[tuple[Slot, Slot]]) -> list[tuple[list[Slot], list[Slot]]]:
    """Fan-ins first (several slots leading to one slot only), then each other slot with its targets."""
    layer = {id(slot) for slot in upper}
    outgoing: dict[int, list[Slot]] = {}
    incoming: dict[int, tuple[Slot, list[Slot]]] = {}
    for source, target in edges:
        if id(source) in layer:
            outgoing.setdefault(id(source), []).append(target)
            incoming.setdefault(id(target), (target, []))[1].append(source)
    members: list[tuple[list[Slot], list[Slot]]] = []
    fanned_in: set[int] = set()
    for target, feeders in incoming.values():
        if len(feeders) > 1 and all(len(outgoing[id(feeder)]) == 1 for feeder in feeders):
            members.append((feeders, [target]))
            fanned_in.update(id(feeder) for feeder in feeders)
    for slot in upper:
        if id(slot) in outgoing and id(slot) not in fanned_in:
            members.append(([slot], list({id(t): t for t in outgoing[id(slot)]}.values())))
    return members


def _entries(members: list[tuple[list[Slot], list[Slot]]]) -> dict[tuple[int, int], int]:
    """Where each group enters each of its targets: the one group of a box straight below a source
    when it can, else at its centre; several groups side by side, in the order of their sources."""
    entering: dict[int, tuple[Slot, list[int]]] = {}
    for index, (_, targets) in enumerate(members):
        for target in targets:
            entering.setdefault(id(target), (target, []))[1].append(index)
    columns: dict[tuple[int, int], int] = {}
    for target, indices in entering.values():
        inner = list(range(target.x + 1, target.right - 1)) or [target.center]
        if len(indices) == 1:
            above = [s.center for s in members[indices[0]][0] if s.center in inner]
            nearest = min(above, key=lambda column: abs(column - target.center), default=target.center)
            columns[indices[0], id(target)] = nearest
            continue
        indices.sort(key=lambda i: sum(s.center for s in members[i][0]) / len(members[i][0]))
        count = len(indices)
        spacing = 2 if len(inner) >= 2 * count - 1 else 1
        first = min(max(inner.index(target.center) - spacing * (count - 1) // 2, 0), len(inner) - 1)
        for rank, index in enumerate(indices):
            # More groups than columns share the last one: the box is narrower than its inputs.
            columns[index, id(target)] = inner[min(first + rank * spacing, len(inner) - 1)]
    return columns


def _tracks(groups: list[Group]) -> int:
    """Give each group that turns a track: left to right, a track where its line touches no other
    line; then, while a group enters at a column where another leaves, it goes below that one."""
    ends: list[int] = []
    for group in sorted(groups, key=lambda g: g.left):
        if group.left == group.right:
            continue
        group.track = next((t for t, end in enumerate(ends) if end < group.left - 1), len(ends))
        if group.track == len(ends):
            ends.append(group.right)
        else:
            ends[group.track] = group.right
    count = len(ends)
    for _ in range(len(groups)):  # a ring of such groups cannot be ordered: stop after one pass each
        leaving = {column: group for group in groups for column in group.sources}
        late = next(
            (
                group
                for group in groups
                for column in group.targets
                if group.track >= 0
                and (other := leaving.get(column)) is not None
                and other is not group
                and group.track <= other.track
            ),
            None,
        )
        if late is None:
            break
        late.track, count = count, count + 1
    used = sorted({group.track for group in groups if group.track >= 0})
    for group in groups:
        if group.track >= 0:
            group.track = used.index(group.track)
    return max(len(used), 1)
