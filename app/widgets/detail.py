"""The detail pane: the selected execution's task runs and its logs."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Log, Tree

from app.widgets.states import fmt_duration, glyph
from engine.model import Execution, LogEntry, TaskRun

LOG_MAX_LINES = 10_000


def format_entry(entry: LogEntry) -> str:
    """One log line as the log pane shows it."""
    stamp = entry.timestamp.astimezone().strftime("%H:%M:%S")
    task = entry.task_id or "-"
    return f"{stamp} {entry.level.value:<5} {task} {entry.message}"


class TaskRunTree(Tree[str]):
    """Task runs nested by parent, with state glyphs and durations."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("task runs", **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = 2

    def show(self, execution: Execution | None) -> None:
        """Rebuild from an execution snapshot (or empty it)."""
        self.clear()
        if execution is None:
            return
        children: dict[str | None, list[TaskRun]] = {}
        for run in execution.task_runs:
            children.setdefault(run.parent_task_run_id, []).append(run)

        def add(parent_id: str | None, node: object) -> None:
            for run in children.get(parent_id, []):
                label = Text.assemble(glyph(run.state.current.value), " ", run.task_id)
                if run.value is not None:
                    label.append(f" [{run.value}]", style="italic")
                if len(run.attempts) > 1:
                    label.append(f" ×{len(run.attempts)}", style="yellow")
                if run.state.current.is_terminated:
                    label.append(" " + fmt_duration(run.state.duration()), style="dim")
                if run.id in children:
                    child = node.add(label, data=run.id, expand=True)  # type: ignore[attr-defined]
                    add(run.id, child)
                else:
                    node.add_leaf(label, data=run.id)  # type: ignore[attr-defined]

        add(None, self.root)
        self.root.expand()


class DetailPane(Horizontal):
    """Task runs beside the log of the selected execution; live lines are flushed in batches."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.execution_id: str | None = None
        self.execution: Execution | None = None
        self._pending: list[str] = []
        self._loading = False
        self._held: list[LogEntry] = []
        self.unseen = 0

    def compose(self) -> ComposeResult:
        yield TaskRunTree(id="taskruns")
        yield Log(max_lines=LOG_MAX_LINES, id="log", auto_scroll=True)

    @property
    def log_widget(self) -> Log:
        return self.query_one("#log", Log)

    def begin(self, execution_id: str | None) -> None:
        """Switch to another execution: clear everything and hold live lines until history is in."""
        self.execution_id = execution_id
        self.execution = None
        self._pending.clear()
        self._held.clear()
        self._loading = execution_id is not None
        self.unseen = 0
        self.border_subtitle = ""
        self.log_widget.auto_scroll = True
        self.log_widget.clear()
        self.query_one(TaskRunTree).show(None)

    def finish_loading(self, execution: Execution | None, history: Iterable[LogEntry]) -> None:
        """Show the stored execution and log history, then the live lines held meanwhile."""
        self.update_execution(execution)
        lines = [format_entry(entry) for entry in history]
        seen = {(e.timestamp, e.task_run_id, e.message) for e in history}
        lines.extend(
            format_entry(e) for e in self._held if (e.timestamp, e.task_run_id, e.message) not in seen
        )
        self._held.clear()
        self._loading = False
        self._pending.extend(lines)
        self.flush()

    def update_execution(self, execution: Execution | None) -> None:
        """Show a newer snapshot of the selected execution."""
        if execution is not None and execution.id != self.execution_id:
            return
        self.execution = execution
        self.query_one(TaskRunTree).show(execution)

    def add_entries(self, entries: Iterable[LogEntry]) -> None:
        """Buffer live lines of the selected execution (others are ignored)."""
        for entry in entries:
            if entry.execution_id != self.execution_id:
                continue
            if self._loading:
                self._held.append(entry)
            else:
                self._pending.append(format_entry(entry))

    def show_text(self, lines: list[str]) -> None:
        """Show plain text (a flow file's errors) instead of an execution."""
        self.begin(None)
        self.log_widget.write_lines(lines)

    def flush(self) -> None:
        """Write buffered lines in one batch; follow the tail unless the user scrolled up."""
        log = self.log_widget
        following = log.scroll_y >= log.max_scroll_y
        if following and self.unseen:
            self.unseen = 0
            self.border_subtitle = ""
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        log.auto_scroll = following
        log.write_lines(lines)
        log.refresh()
        if not following:
            self.unseen += len(lines)
            self.border_subtitle = f"{self.unseen} new lines ↓"
