"""An execution's task runs nested under their parents: the order, the labels and the tree that shows them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar, Unpack

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tiercel.engine import Execution, Masker, TaskRun, utcnow

from . import WidgetArgs, retitle
from .shown import masker_of, shown
from .states import fmt_duration, glyph

#: The hint after a task run whose child execution enter opens.
OPEN_HINT = "↵ open"


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


def progress(execution: Execution | None) -> tuple[int, int]:
    """Task runs in a terminal state and task runs known, each task run counted once."""
    if execution is None:
        return 0, 0
    states = {run.id: run.state.current for run in execution.task_runs}
    return sum(1 for state in states.values() if state.is_terminated), len(states)


def child_execution(run: TaskRun) -> str | None:
    """The id of the execution a Subflow (or the older Flow) task run started, if any."""
    found = (run.outputs or {}).get("executionId") or run.child_execution_id
    return str(found) if found else None


def fmt_elapsed(delta: timedelta) -> str:
    """A running time in whole seconds (12s, 3m04s): tenths would flicker on every tick."""
    seconds = max(int(delta.total_seconds()), 0)
    return f"{seconds}s" if seconds < 60 else fmt_duration(timedelta(seconds=seconds))


def run_label(run: TaskRun, depth: int = 0, masker: Masker | None = None) -> Text:
    """Glyph, task id, loop value (masked) and attempts of a task run."""
    label = Text.assemble("  " * depth, glyph(run.state.current.value), " ", shown(run.task_id))
    if run.value is not None:
        label.append(f" [{shown(run.value, masker)}]", style="italic")
    if len(run.attempts) > 1:
        label.append(f" ×{len(run.attempts)}", style="yellow")
    if run.cached_from:
        label.append(" cached", style="magenta")
    return label


def tree_label(run: TaskRun, now: datetime, masker: Masker | None = None) -> Text:
    """A task run in the tree: its label, its duration (running: so far) and the open hint."""
    label = run_label(run, masker=masker)
    if run.state.current.is_terminated:
        label.append(" " + fmt_duration(run.state.duration()), style="dim")
        if run.usage is not None:  # CPU time and peak memory of its programs, in few columns
            label.append(f" {run.usage.cpu_text} {run.usage.memory_text}", style="cyan")
    elif run.state.current.is_running:
        label.append(" " + fmt_elapsed(run.state.duration(now)), style="cyan")
    if child_execution(run) is not None:
        label.append(f" {OPEN_HINT}", style="dim italic")
    return label


class TaskRunTree(Tree[str]):
    """Task runs nested by parent, with state glyphs, durations and the execution's progress."""

    DEFAULT_CSS = """
    TaskRunTree {
        border-top: solid $panel-lighten-2;
        border-title-color: $text-muted;
    }
    """
    # Enter opens a Subflow's child execution; a click still selects (shows that task run's log).
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "open_or_select", "Select", show=False)]

    class OpenChild(Message):
        """Enter on a task run that started a child execution."""

        def __init__(self, execution_id: str) -> None:
            super().__init__()
            self.execution_id = execution_id

    def __init__(self, **kwargs: Unpack[WidgetArgs]) -> None:
        super().__init__("task runs", **kwargs)
        self.show_root = False
        self.guide_depth = 2
        # The running task runs' nodes, whose elapsed time `tick` redraws.
        self._ticking: dict[str, tuple[TreeNode[str], TaskRun]] = {}
        self._child_executions: dict[str, str] = {}

    def show(self, execution: Execution | None, now: datetime | None = None) -> None:
        """Rebuild from an execution snapshot (or empty it), keeping the cursor on its task run."""
        keep = self.cursor_node.data if self.cursor_node is not None else None
        self.clear()
        self._ticking.clear()
        self._child_executions.clear()
        done, total = progress(execution)
        retitle(self, f"{done}/{total} done" if total else "")
        if execution is None:
            return
        now = now or utcnow()
        nodes: dict[str, TreeNode[str]] = {}
        masker = masker_of(self)
        for run, _ in nested_runs(execution):
            parent = nodes.get(run.parent_task_run_id or "", self.root)
            node = parent.add(tree_label(run, now, masker), data=run.id, expand=True)
            nodes[run.id] = node
            if run.state.current.is_running:
                self._ticking[run.id] = (node, run)
            child = child_execution(run)
            if child is not None:
                self._child_executions[run.id] = child
        for node in nodes.values():
            if not node.children:
                node.allow_expand = False
        self.root.expand()
        if keep in nodes:
            _ = self.last_line  # lay the lines out so the node's line is known
            self.move_cursor(nodes[keep])

    def tick(self, now: datetime | None = None) -> None:
        """Redraw the elapsed time of the running task runs."""
        now = now or utcnow()
        masker = masker_of(self)
        for node, run in self._ticking.values():
            node.set_label(tree_label(run, now, masker))

    def child_of_cursor(self) -> str | None:
        """The child execution of the task run under the cursor, if it started one."""
        node = self.cursor_node
        return self._child_executions.get(node.data) if node is not None and node.data is not None else None

    def action_open_or_select(self) -> None:
        child = self.child_of_cursor()
        if child is None:
            self.action_select_cursor()
        else:
            self.post_message(self.OpenChild(child))

    def on_focus(self) -> None:
        if self.cursor_line < 0 and self.root.children:
            self.cursor_line = 0
