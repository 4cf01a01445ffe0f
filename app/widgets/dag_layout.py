"""A layered layout of a Dag's tasks: layers top down, an order within each, columns, edge tracks.

A small Sugiyama layout: each task sits one layer below the deepest task it depends on; an edge
that skips layers passes through a one-column stand-in in each layer between; a few barycentre
sweeps order the layers to uncross edges; columns come from a top-down pass that places tasks
under their dependencies, then a bottom-up pass that centres a task over its dependants; the edges
between two layers are routed on tracks (dag_channels.py). Pure data in and out, so the drawing
(dag_graph.py) and the tests read the same layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .dag_channels import Channel, Slot, route

#: Columns between two boxes of a layer.
GAP = 2
#: Barycentre sweeps (down then up) to uncross edges; a few settle small graphs.
SWEEPS = 4


@dataclass
class DagLayout:
    """Slots layer by layer (left to right), the edges between adjacent layers, and the channels."""

    layers: list[list[Slot]]
    edges: list[tuple[Slot, Slot]]
    channels: list[Channel]

    @property
    def width(self) -> int:
        return max((slot.right for layer in self.layers for slot in layer), default=0)

    def slot(self, task: str) -> Slot:
        return next(slot for layer in self.layers for slot in layer if slot.task == task)


def layer_numbers(depends: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each task's layer: 0 for a task without dependencies, else one below its deepest dependency.

    Dependencies on unknown tasks are ignored; should a cycle slip through (the parser refuses
    them), its tasks go below the others rather than failing the drawing.
    """
    known = {task: [dep for dep in deps if dep in depends and dep != task] for task, deps in depends.items()}
    waiting = {task: len(set(deps)) for task, deps in known.items()}
    dependants: dict[str, list[str]] = {task: [] for task in known}
    for task, deps in known.items():
        for dep in set(deps):
            dependants[dep].append(task)
    layer: dict[str, int] = {}
    ready = [task for task in known if waiting[task] == 0]
    while ready:
        task = ready.pop(0)
        layer[task] = max((layer[dep] + 1 for dep in known[task] if dep in layer), default=0)
        for child in dependants[task]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    below = max(layer.values(), default=-1) + 1
    for task in known:
        if task not in layer:  # on a cycle
            layer[task] = below
    return layer


def bounded_layers(
    depends: Mapping[str, Sequence[str]], widths: Mapping[str, int], max_width: int
) -> dict[str, int]:
    """Layers no wider than `max_width` where possible: a task that does not fit goes a layer down.

    Tasks are placed in the order of their unbounded layers (then as written), each in the first
    layer below its dependencies with room for its box; a box wider than `max_width` has a layer
    to itself.
    """
    unbounded = layer_numbers(depends)
    written = {task: index for index, task in enumerate(depends)}
    layer: dict[str, int] = {}
    used: list[int] = []
    for task in sorted(depends, key=lambda t: (unbounded[t], written[t])):
        width = max(widths.get(task, 1), 1)
        number = max((layer[dep] + 1 for dep in depends[task] if dep in layer), default=0)
        while number < len(used) and used[number] and used[number] + width > max_width:
            number += 1
        if number >= len(used):
            used.extend([0] * (number - len(used) + 1))
        used[number] += width + GAP
        layer[task] = number
    return layer


def layout_dag(
    depends: Mapping[str, Sequence[str]], widths: Mapping[str, int], max_width: int | None = None
) -> DagLayout:
    """Lay out tasks (in written order, each with the tasks it depends on) with boxes `widths` wide.

    With `max_width`, a layer too wide for it is spread over several (see `bounded_layers`).
    """
    numbers = layer_numbers(depends) if max_width is None else bounded_layers(depends, widths, max_width)
    count = max(numbers.values(), default=-1) + 1
    layers: list[list[Slot]] = [[] for _ in range(count)]
    slots: dict[str, Slot] = {}
    for task in depends:
        slot = Slot(task, task, numbers[task], max(widths.get(task, 1), 1))
        slots[task] = slot
        layers[slot.layer].append(slot)
    edges: list[tuple[Slot, Slot]] = []
    for task, deps in depends.items():
        for dep in dict.fromkeys(deps):
            if dep not in slots or dep == task or numbers[dep] >= numbers[task]:
                continue
            upper = slots[dep]
            for layer in range(numbers[dep] + 1, numbers[task]):
                stand_in = Slot(f"{dep}\0{task}\0{layer}", None, layer, 1)
                layers[layer].append(stand_in)
                edges.append((upper, stand_in))
                upper = stand_in
            edges.append((upper, slots[task]))
    _order(layers, edges)
    _place(layers, edges)
    return DagLayout(layers, edges, [route(layers[i], edges) for i in range(count - 1)])


def _order(layers: list[list[Slot]], edges: list[tuple[Slot, Slot]]) -> None:
    """Reorder each layer by the mean position of its neighbours above, then below, a few times."""
    ups: dict[int, list[Slot]] = {}
    downs: dict[int, list[Slot]] = {}
    for upper, lower in edges:
        ups.setdefault(id(lower), []).append(upper)
        downs.setdefault(id(upper), []).append(lower)

    def sweep(layer: list[Slot], neighbours: dict[int, list[Slot]], index: dict[int, int]) -> None:
        def key(item: tuple[int, Slot]) -> float:
            position, slot = item
            near = neighbours.get(id(slot))
            return sum(index[id(n)] for n in near) / len(near) if near else float(position)

        layer[:] = [slot for _, slot in sorted(enumerate(layer), key=key)]

    for _ in range(SWEEPS):
        for number in range(1, len(layers)):
            index = {id(slot): i for i, slot in enumerate(layers[number - 1])}
            sweep(layers[number], ups, index)
        for number in range(len(layers) - 2, -1, -1):
            index = {id(slot): i for i, slot in enumerate(layers[number + 1])}
            sweep(layers[number], downs, index)


def _place(layers: list[list[Slot]], edges: list[tuple[Slot, Slot]]) -> None:
    """Columns: under the tasks depended on (top down), then centred over the dependants (bottom up).

    No layer grows wider than the widest layer packed tight, so that wrapping wide layers
    (`bounded_layers`) keeps the graph within its width.
    """
    ups: dict[int, list[Slot]] = {}
    downs: dict[int, list[Slot]] = {}
    for upper, lower in edges:
        ups.setdefault(id(lower), []).append(upper)
        downs.setdefault(id(upper), []).append(lower)
    width = max((_packed_width(layer) for layer in layers), default=0)
    for layer in layers:
        _pack(layer, ups, width)
    for layer in reversed(layers[:-1]):
        _pack(layer, downs, width)


def _gap(slot: Slot) -> int:
    return 1 if slot.task is None else GAP


def _packed_width(layer: list[Slot]) -> int:
    return sum(slot.width + _gap(slot) for slot in layer) - (_gap(layer[0]) if layer else 0)


def _pack(layer: list[Slot], neighbours: dict[int, list[Slot]], width: int) -> None:
    """Place a layer left to right within `width`, each slot centred on its neighbours when it can."""
    edge = 0
    after = _packed_width(layer)  # what is left to place, the current slot included
    for index, slot in enumerate(layer):
        near = neighbours.get(id(slot))
        wanted = round(sum(n.center for n in near) / len(near)) - slot.width // 2 if near else slot.x
        slot.x = min(max(wanted, edge), max(width - after, edge))
        edge = slot.right + (_gap(layer[index + 1]) if index + 1 < len(layer) else 0)
        after -= slot.width + (_gap(layer[index + 1]) if index + 1 < len(layer) else 0)
