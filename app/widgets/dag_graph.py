"""A Dag task's graph in box-drawing characters: tasks as boxes in layers, edges from `dependsOn`.

The tasks a Dag runs first are at the top; an edge leaves a box at the bottom (┬) and enters the
box that depends on it at the top (┴). Given the states of an execution's task runs, each box
takes its state's glyph and colour. The graph is as wide as its widest layer: the screen that
shows it scrolls sideways rather than squeezing it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rich.text import Text

from tiercel.engine import Execution, visible

from .dag_channels import Slot
from .dag_layout import DagLayout, layout_dag
from .states import GLYPHS

DAG_TYPES = frozenset({"io.kestra.plugin.core.flow.Dag", "io.kestra.core.tasks.flows.Dag"})
#: Longer task ids are cut with an ellipsis, so that one long id does not widen a whole layer.
MAX_LABEL = 24
EDGE_STYLE = "dim"
UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8
_LINES = {
    UP: "│",
    DOWN: "│",
    UP | DOWN: "│",
    LEFT: "─",
    RIGHT: "─",
    LEFT | RIGHT: "─",
    DOWN | RIGHT: "┌",
    DOWN | LEFT: "┐",
    UP | RIGHT: "└",
    UP | LEFT: "┘",
    UP | DOWN | RIGHT: "├",
    UP | DOWN | LEFT: "┤",
    DOWN | LEFT | RIGHT: "┬",
    UP | LEFT | RIGHT: "┴",
    UP | DOWN | LEFT | RIGHT: "┼",
}


class TaskLike(Protocol):
    """A task of a flow as the graph reads it (the engine's TaskSpec)."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def props(self) -> Mapping[str, Any]: ...

    def children(self) -> Iterator[TaskLike]: ...


@dataclass(frozen=True, slots=True)
class DagTask:
    """A graph to draw: a Dag task, or a task list with `dependsOn` (`id` then names the list, as
    `tasks` or `errors of load`), with the ids of the flowable tasks it sits in and its tasks'
    dependencies."""

    id: str
    parents: tuple[str, ...]
    depends: Mapping[str, tuple[str, ...]]
    is_list: bool = False


def dag_tasks(lists: Mapping[str, Sequence[TaskLike]]) -> list[DagTask]:
    """Every Dag task and every task list with `dependsOn` in `lists` (a flow's `tasks`, `errors`
    ... by name) and below them, in any flowable (a Dag's own tasks included)."""
    found: list[DagTask] = []

    def visit(name: str, listed: Sequence[Any], parents: tuple[str, ...]) -> None:
        tasks = [task for task in listed if hasattr(task, "type")]  # a Dag's nodes are not a list
        if any(getattr(task, "depends_on", ()) for task in tasks):
            depends = {str(task.id): tuple(map(str, getattr(task, "depends_on", ()))) for task in tasks}
            found.append(DagTask(name, parents, depends, is_list=True))
        for task in tasks:
            walk(task, parents)

    def walk(task: TaskLike, parents: tuple[str, ...]) -> None:
        inside = (*parents, task.id)
        if task.type in DAG_TYPES:
            found.append(DagTask(task.id, parents, dag_depends(task)))
            for child in task.children():
                walk(child, inside)
            return
        for key, value in task.props.items():
            if isinstance(value, tuple):
                visit(f"{key} of {task.id}", value, inside)
            elif isinstance(value, Mapping):  # Switch's cases
                for case, listed in value.items():
                    if isinstance(listed, tuple):
                        visit(f"case {case} of {task.id}", listed, inside)

    for name, listed in lists.items():
        visit(name, listed, ())
    return found


def dag_depends(task: TaskLike) -> dict[str, tuple[str, ...]]:
    """A Dag task's tasks in written order, each with the ids of the tasks it depends on."""
    depends: dict[str, tuple[str, ...]] = {}
    for node in task.props.get("tasks") or ():
        inner = getattr(node, "task", None)
        if inner is not None:
            depends[str(inner.id)] = tuple(str(dep) for dep in getattr(node, "depends_on", ()))
    return depends


def task_states(execution: Execution | None) -> dict[str, str]:
    """The state of each task of an execution: its latest task run's (a loop runs a task many times)."""
    if execution is None:
        return {}
    return {run.task_id: run.state.current.value for run in execution.task_runs}


def dag_text(
    depends: Mapping[str, Sequence[str]],
    states: Mapping[str, str] | None = None,
    max_width: int | None = None,
) -> Text:
    """The graph of a Dag's tasks; with `states`, each box shows its task's state (· not run yet).

    With `max_width`, a layer too wide for it is spread over several layers; the graph may still be
    a little wider (edges passing by), or much wider when one task id alone is.
    """
    if not depends:
        return Text("this Dag has no tasks", style="dim")
    labels = {task: _label(task, states) for task in depends}
    widths = {task: len(label) + 4 for task, label in labels.items()}
    layout = layout_dag(depends, widths, max_width)
    return _Canvas(layout, labels, states).draw()


def _label(task: str, states: Mapping[str, str] | None) -> str:
    name = visible(task)
    if len(name) > MAX_LABEL:
        name = name[: MAX_LABEL - 1] + "…"
    if states is None:
        return name
    return f"{GLYPHS.get(states.get(task, 'CREATED'), ('?', ''))[0]} {name}"


def _merge(marks: Sequence[tuple[int, int]]) -> str:
    """The character of a cell from the lines through it: joined within a group, crossed between.

    A line passing straight down across another group's horizontal line stays a plain `│`: a `┼`
    there would read as the two joining.
    """
    bits = 0
    for _, mark in marks:
        bits |= mark
    groups = {group for group, _ in marks}
    if len(groups) > 1 and bits == UP | DOWN | LEFT | RIGHT:
        straight = all(mark in (UP | DOWN, LEFT | RIGHT) for _, mark in marks)
        if straight:
            return "│"
    return _LINES[bits]


class _Canvas:
    """Rows of characters and styles: boxes written over, edge lines merged by direction."""

    def __init__(self, layout: DagLayout, labels: Mapping[str, str], states: Mapping[str, str] | None):
        self.layout = layout
        self.labels = labels
        self.states = states
        self.tops: list[int] = []
        row = 0
        for number in range(len(layout.layers)):
            self.tops.append(row)
            row += 3 + (layout.channels[number].tracks if number < len(layout.channels) else 0)
        self.height = row
        self.width = layout.width
        self.cells: list[list[tuple[str, str]]] = [[(" ", "")] * self.width for _ in range(row)]
        # Per cell, the direction bits of each group of edges through it.
        self.lines: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.groups = 0

    def _group(self) -> int:
        """A new group: the edges leaving one slot, or one slot's line through its layer."""
        self.groups += 1
        return self.groups

    def draw(self) -> Text:
        for number, layer in enumerate(self.layout.layers):
            for slot in layer:
                self._slot(slot, self.tops[number])
        for number, channel in enumerate(self.layout.channels):
            first = self.tops[number] + 3
            last = first + channel.tracks - 1
            for group in channel.groups:
                key = self._group()
                if group.track < 0:
                    self._vertical(key, group.sources[0], first, last)
                    self._enter(last + 1, group.sources[0])
                    continue
                row = first + group.track
                for source in group.sources:
                    self._vertical(key, source, first, row - 1)
                for column in range(group.left, group.right + 1):
                    bits = (LEFT if column > group.left else 0) | (RIGHT if column < group.right else 0)
                    bits |= UP if column in group.sources else 0
                    bits |= DOWN if column in group.targets else 0
                    self._mark(key, row, column, bits)
                for target in group.targets:
                    self._vertical(key, target, row + 1, last)
                    self._enter(last + 1, target)
        for (row, column), marks in self.lines.items():
            self.cells[row][column] = (_merge(marks), EDGE_STYLE)
        lines = []
        for cells in self.cells:
            line = Text()
            for style, run in itertools.groupby(cells, key=lambda cell: cell[1]):
                line.append("".join(char for char, _ in run), style=style or None)
            line.rstrip()
            lines.append(line)
        text = Text("\n").join(lines)
        text.no_wrap = True
        return text

    def _slot(self, slot: Slot, top: int) -> None:
        if slot.task is None:  # an edge passing through this layer
            self._vertical(self._group(), slot.x, top, top + 2)
            return
        state = (self.states or {}).get(slot.task, "CREATED" if self.states is not None else "")
        style = GLYPHS.get(state, ("", ""))[1]
        inner = slot.width - 2
        has_down = any(upper is slot for upper, _ in self.layout.edges)
        middle = slot.center - slot.x - 1
        top_line = "─" * inner
        bottom_line = "─" * middle + ("┬" if has_down else "─") + "─" * (inner - middle - 1)
        self._write(top, slot.x, f"┌{top_line}┐", style)
        self._write(top + 1, slot.x, f"│ {self.labels[slot.task]:<{inner - 2}} │", style)
        self._write(top + 2, slot.x, f"└{bottom_line}┘", style)

    def _enter(self, row: int, column: int) -> None:
        """An edge enters the box whose top border is at `row` (a stand-in's line goes on through)."""
        char, style = self.cells[row][column]
        if char == "─":
            self.cells[row][column] = ("┴", style)

    def _write(self, row: int, column: int, text: str, style: str) -> None:
        for offset, char in enumerate(text):
            self.cells[row][column + offset] = (char, style)

    def _vertical(self, group: int, column: int, first: int, last: int) -> None:
        for row in range(first, last + 1):
            self._mark(group, row, column, UP | DOWN)

    def _mark(self, group: int, row: int, column: int, bits: int) -> None:
        self.lines.setdefault((row, column), []).append((group, bits))
