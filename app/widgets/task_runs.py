"""An execution's task runs nested under their parents: the order, the labels and the tree that shows them."""

from __future__ import annotations

from typing import Unpack

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tiercel.engine import Execution, Masker, TaskRun

from . import WidgetArgs
from .shown import masker_of, shown
from .states import fmt_duration, glyph


def nested_runs(execution: Execution) -> list[tuple[TaskRun, int]]:
    """Task runs depth first under their parents, with their depth."""
    children: dict[str | None, list[TaskRun]] = {}
    known = {run.id for run in execution.task_runs}
    for run in execution.task_runs:
        parent = run.parent_task_run_id if run.parent_task_run_id in known else None
        children.setdefault(parent, []).append(run)
    ordered: list[tuple[TaskRun, int]] = []

    def walk(parent_id: str | None, depth: int) -> None:
        for run in children.get(parent_id, []):
            ordered.append((run, depth))
            walk(run.id, depth + 1)

    walk(None, 0)
    return ordered


def descendants(execution: Execution | None, task_run_id: str) -> set[str]:
    """The ids of a task run and of every task run below it."""
    ids = {task_run_id}
    if execution is not None:
        for run, _ in nested_runs(execution):
            if run.parent_task_run_id in ids:
                ids.add(run.id)
    return ids


def run_label(run: TaskRun, depth: int = 0, masker: Masker | None = None) -> Text:
    """Glyph, task id, loop value (masked) and attempts of a task run."""
    label = Text.assemble("  " * depth, glyph(run.state.current.value), " ", shown(run.task_id))
    if run.value is not None:
        label.append(f" [{shown(run.value, masker)}]", style="italic")
    if len(run.attempts) > 1:
        label.append(f" ×{len(run.attempts)}", style="yellow")
    return label


class TaskRunTree(Tree[str]):
    """Task runs nested by parent, with state glyphs and durations."""

    def __init__(self, **kwargs: Unpack[WidgetArgs]) -> None:
        super().__init__("task runs", **kwargs)
        self.show_root = False
        self.guide_depth = 2

    def show(self, execution: Execution | None) -> None:
        """Rebuild from an execution snapshot (or empty it), keeping the cursor on its task run."""
        keep = self.cursor_node.data if self.cursor_node is not None else None
        self.clear()
        if execution is None:
            return
        nodes: dict[str, TreeNode[str]] = {}
        masker = masker_of(self)
        for run, _ in nested_runs(execution):
            label = run_label(run, masker=masker)
            if run.state.current.is_terminated:
                label.append(" " + fmt_duration(run.state.duration()), style="dim")
            parent = nodes.get(run.parent_task_run_id or "", self.root)
            nodes[run.id] = parent.add(label, data=run.id, expand=True)
        for node in nodes.values():
            if not node.children:
                node.allow_expand = False
        self.root.expand()
        if keep in nodes:
            _ = self.last_line  # lay the lines out so the node's line is known
            self.move_cursor(nodes[keep])

    def on_focus(self) -> None:
        if self.cursor_line < 0 and self.root.children:
            self.cursor_line = 0
