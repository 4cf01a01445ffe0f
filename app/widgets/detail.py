"""The detail pane: the selected execution's task runs (tree or timeline) beside its filtered log.

The pane holds the keys; the task runs (task_runs.py), the timeline (timeline.py), the log with its
filters and pages (execution_log.py) and the outputs shown (outputs.py) live in their own modules.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import ClassVar, Unpack

from rich.markup import escape
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Input, Tree

from tiercel.engine import Execution, Flow, LogEntry, LogLevel, Permission, TaskRun

from ..actions import show_execution_source
from ..host import dashboard, refusal, said_no
from ..screens.console import ConsoleScreen
from ..screens.viewer import ViewerScreen
from . import WidgetArgs
from .execution_log import LOG_KEEP, LOG_PAGE, ExecutionLog
from .outputs import metrics_view, outputs_view
from .shown import masker_of, shown
from .task_runs import TaskRunTree, descendants
from .timeline import Timeline, timeline_text

# Names that lived here before the log, task runs and timeline had modules of their own.
__all__ = ["LOG_KEEP", "LOG_PAGE", "DetailPane", "TaskRunTree", "timeline_text"]


def last_change(execution: Execution) -> datetime:
    """When the execution or one of its task runs last changed state."""
    dates = [execution.state.histories[-1].date]
    dates.extend(run.state.histories[-1].date for run in execution.task_runs)
    return max(dates)


class DetailPane(Horizontal):
    """Task runs beside the log of the selected execution; live lines are flushed in batches."""

    ALLOW_MAXIMIZE = True  # `z` zooms it

    class OpenExecution(Message):
        """Enter on a task run that started a child execution (a Subflow): the app may show it."""

        def __init__(self, execution_id: str) -> None:
            super().__init__()
            self.execution_id = execution_id

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "cycle_level", "Level", id="tiercel.log.level"),
        Binding("t", "toggle_stamps", "Times", show=False, id="tiercel.log.times"),
        Binding("a", "all_tasks", "All tasks", id="tiercel.log.all_tasks"),
        Binding("slash", "search", "Search", id="tiercel.log.search"),
        Binding("n", "next_match", "Next match", show=False, id="tiercel.log.next_match"),
        Binding("N", "previous_match", "Prev match", show=False, id="tiercel.log.previous_match"),
        Binding("f", "toggle_only_matches", "Only matches", show=False, id="tiercel.log.only_matches"),
        Binding("v", "toggle_timeline", "Timeline", id="tiercel.detail.timeline"),
        Binding(
            "w",
            "toggle_wrap",
            "Wrap",
            show=False,
            id="tiercel.log.wrap",
            tooltip="Wrap long log lines at the pane's width instead of scrolling sideways",
        ),
        Binding("o", "outputs", "Outputs", id="tiercel.detail.outputs"),
        Binding("m", "metrics", "Metrics", show=False, id="tiercel.detail.metrics"),
        Binding("x", "console", "Expressions", show=False, id="tiercel.detail.console"),
        Binding("y", "execution_source", "Source", show=False, id="tiercel.detail.source"),
        Binding("left_square_bracket", "older_lines", "Older lines", show=False, id="tiercel.log.older"),
        Binding("right_square_bracket", "newer_lines", "Newer lines", show=False, id="tiercel.log.newer"),
    ]

    def __init__(self, **kwargs: Unpack[WidgetArgs]) -> None:
        super().__init__(**kwargs)
        self.execution_id: str | None = None
        self.execution: Execution | None = None
        self.task_filter: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-side"):
            yield TaskRunTree(id="taskruns")
            with VerticalScroll(id="timeline-scroll"):
                yield Timeline(id="timeline")
        with Vertical(id="log-side"):
            yield Input(placeholder="search the log (enter: done, escape: clear)", id="log-search")
            yield ExecutionLog(id="log")

    def on_mount(self) -> None:
        # The log knows its filters, pages and unseen lines; the pane's border is where they show.
        self.watch(self.log_widget, "status", self._show_status)

    def _show_status(self, status: str) -> None:
        self.border_subtitle = escape(status)

    @property
    def log_widget(self) -> ExecutionLog:
        return self.query_one("#log", ExecutionLog)

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    @property
    def showing_timeline(self) -> bool:
        return self.has_class("timeline")

    # -- the log's state, as the pane is asked about it ----------------------------------------
    @property
    def entries(self) -> deque[LogEntry]:
        return self.log_widget.entries

    @property
    def min_level(self) -> LogLevel:
        return self.log_widget.min_level

    @property
    def stamps(self) -> bool:
        return self.log_widget.stamps

    @property
    def search(self) -> str:
        return self.log_widget.search

    @property
    def only_matches(self) -> bool:
        return self.log_widget.only_matches

    @property
    def match_line(self) -> int | None:
        return self.log_widget.match_line

    @property
    def more_before(self) -> bool:
        return self.log_widget.more_before

    @property
    def at_tail(self) -> bool:
        """Whether the log's held lines end at its newest line (live lines are then shown)."""
        return self.log_widget.at_tail

    def matching_lines(self) -> list[int]:
        """Indexes of the log lines that contain the search term."""
        return self.log_widget.matching_lines()

    # -- execution ------------------------------------------------------------------------------
    def begin(self, execution_id: str | None) -> None:
        """Switch to another execution: clear everything and hold live lines until history is in."""
        self.execution_id = execution_id
        self.execution = None
        self.task_filter = None
        self.log_widget.begin(execution_id)
        self.query_one(TaskRunTree).show(None)
        self.timeline.show(None)

    def finish_loading(self, execution: Execution | None, history: Iterable[LogEntry]) -> None:
        """Show the stored execution and its log's newest lines, then the live lines held meanwhile.

        `history` is the tail of the log, at most LOG_KEEP lines (`Engine.logs(..., limit=LOG_KEEP,
        newest=True)`); older lines are read on demand with `[`.
        """
        live = self.execution
        # A live snapshot that came while the store was read may be newer than what was read.
        if execution is None or live is None or last_change(execution) >= last_change(live):
            self.update_execution(execution)
        self.log_widget.show_history(history)

    def update_execution(self, execution: Execution | None) -> None:
        """Show a newer snapshot of the selected execution."""
        if execution is not None and execution.id != self.execution_id:
            return
        self.execution = execution
        self.query_one(TaskRunTree).show(execution)
        self.timeline.show(execution)
        if self.task_filter is not None:
            self._filter_log(self.task_filter)

    def update_task_run(self, run: TaskRun) -> None:
        """Apply one changed task run to the shown snapshot."""
        execution = self.execution
        if execution is None or run.execution_id != execution.id:
            return
        runs = [r for r in execution.task_runs if r.id != run.id]
        index = next((i for i, r in enumerate(execution.task_runs) if r.id == run.id), len(runs))
        runs.insert(index, run)
        self.update_execution(replace(execution, task_runs=tuple(runs)))

    def tick(self, now: datetime | None = None) -> None:
        """Let the bars of a running execution grow, and its running task runs' times."""
        if self.execution is not None and not self.execution.state.current.is_terminated:
            with contextlib.suppress(NoMatches):  # not while the app shuts down
                self.query_one(TaskRunTree).tick(now)
                self.timeline.refresh()

    def show_text(self, lines: list[str]) -> None:
        """Show plain text (a flow file's errors) instead of an execution."""
        self.begin(None)
        self.log_widget.show_text(lines)

    # -- log ------------------------------------------------------------------------------------
    def add_entries(self, entries: Iterable[LogEntry]) -> None:
        """Buffer live lines of the selected execution (others are ignored)."""
        self.log_widget.add_entries(entries)

    def flush(self) -> None:
        """Write buffered lines in one batch; follow the tail unless the user scrolled up."""
        try:
            log = self.log_widget
        except NoMatches:
            return  # the app is shutting down: the pane's widgets are already gone
        log.flush()

    def follow_task(self, task_run_id: str | None) -> None:
        """Show only the lines of a task run and the task runs below it."""
        self.task_filter = task_run_id
        self._filter_log(task_run_id)
        self.log_widget.rerender()
        self.refresh_bindings()

    def _filter_log(self, task_run_id: str | None) -> None:
        """Give the log the ids of the task run followed and those below it, and its name."""
        if not task_run_id:
            self.log_widget.filter_tasks(None)
            return
        runs = self.execution.task_runs if self.execution is not None else ()
        run = next((r for r in runs if r.id == task_run_id), None)
        label = ""
        if run is not None:
            value = f" [{shown(run.value, masker_of(self))}]" if run.value is not None else ""
            label = f"task {shown(run.task_id)}{value}"
            if run.usage is not None:  # what its programs used, all attempts together
                label += f" ({run.usage.described()})"
        self.log_widget.filter_tasks(descendants(self.execution, task_run_id), label)

    # -- actions --------------------------------------------------------------------------------
    def action_cycle_level(self) -> None:
        self.log_widget.cycle_level()

    def action_toggle_stamps(self) -> None:
        self.log_widget.toggle_stamps()

    def action_all_tasks(self) -> None:
        self.follow_task(None)

    def action_search(self) -> None:
        field = self.query_one("#log-search", Input)
        field.display = True
        field.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next_match", "previous_match", "toggle_only_matches"):
            return True if self.search else None
        if action == "all_tasks":  # shown only while one task run's log is followed
            return self.task_filter is not None
        if action == "copy_id":
            return True if self.execution_id is not None else None
        return True

    def _set_search(self, term: str) -> None:
        self.log_widget.set_search(term)
        self.refresh_bindings()

    def action_next_match(self) -> None:
        self.log_widget.jump(1)

    def action_previous_match(self) -> None:
        self.log_widget.jump(-1)

    def action_toggle_only_matches(self) -> None:
        self.log_widget.toggle_only_matches()

    def action_older_lines(self) -> None:
        self.log_widget.read_older()

    def action_newer_lines(self) -> None:
        self.log_widget.read_newer()

    def action_toggle_wrap(self) -> None:
        self.log_widget.toggle_wrap()

    def action_toggle_timeline(self) -> None:
        self.toggle_class("timeline")
        if self.app.focused is None or not self.app.focused.display:
            self.log_widget.focus()

    def selected_run(self) -> TaskRun | None:
        """The task run under the tree's cursor when the tree has focus, else the one followed."""
        if self.execution is None:
            return None
        tree = self.query_one(TaskRunTree)
        run_id = self.task_filter
        if self.app.focused is tree and tree.cursor_node is not None:
            run_id = tree.cursor_node.data or run_id
        return next((r for r in self.execution.task_runs if r.id == run_id), None)

    def replay_start(self) -> tuple[str, str] | None:
        """The execution and the task run to replay it from, when the task run tree has the focus."""
        if isinstance(self.app.focused, TaskRunTree) and self.execution is not None:
            run = self.selected_run()
            if run is not None:
                return self.execution.id, run.id
        return None

    def flow(self) -> Flow | None:
        """The flow (its current revision) of the execution shown."""
        engine = dashboard(self).engine
        if self.execution is None or engine is None:
            return None
        return engine.flows.get((self.execution.namespace, self.execution.flow_id))

    def action_copy_id(self) -> None:
        """The execution's full id to the clipboard (the terminal's, through OSC 52)."""
        if self.execution_id is not None:
            self.app.copy_to_clipboard(self.execution_id)
            self.app.notify(self.execution_id, title="Copied the execution id")  # shown as plain text

    async def action_execution_source(self) -> None:
        """The source of the flow revision the execution shown ran."""
        if self.execution_id is not None:
            await show_execution_source(self, self.execution_id)

    def outputs_view(self) -> tuple[str, str] | None:
        """Title and JSON text of the selected task run's outputs, or else of the execution's."""
        if self.execution is None:
            return None
        return outputs_view(self.execution, self.selected_run(), masker_of(self))

    def action_outputs(self) -> None:
        view = self.outputs_view()
        if view is None:
            self.app.notify("Select an execution first", severity="warning")
            return
        self.app.push_screen(ViewerScreen(view[0], view[1], "json"))

    async def action_metrics(self) -> None:
        """The counters and timers the selected task run reported, or else every task run's."""
        engine = dashboard(self).engine
        execution = self.execution
        if execution is None or engine is None:
            self.app.notify("Select an execution first", severity="warning")
            return
        run = self.selected_run()
        entries = await engine.metrics(execution.id, task_run_id=run.id if run is not None else None)
        title, text = metrics_view(execution, run, entries, masker_of(self))
        self.app.push_screen(ViewerScreen(title, text, "text"))

    def refused(self, action: str) -> str | None:
        """Why the person may not use the expression console on the execution shown: it needs
        EXECUTE (an expression can read the namespace's secrets and keys), as on the API."""
        if action != "console" or self.execution is None:
            return None
        return refusal(self, self.execution.namespace, Permission.EXECUTE)

    def action_console(self) -> None:
        """The expression console on the execution shown, for the selected task run."""
        engine = dashboard(self).engine
        if self.execution is None or engine is None:
            self.app.notify("Select an execution first", severity="warning")
            return
        if said_no(self, self.refused("console"), "Cannot open the console"):
            return
        run = self.selected_run()
        self.app.push_screen(ConsoleScreen(self.execution, run.id if run else None, engine.evaluate))

    @on(Tree.NodeSelected, "#taskruns")
    def _task_selected(self, event: Tree.NodeSelected[str]) -> None:
        event.stop()
        if event.node.data is not None:
            self.follow_task(event.node.data)

    @on(TaskRunTree.OpenChild)
    def _open_child(self, event: TaskRunTree.OpenChild) -> None:
        event.stop()
        self.post_message(self.OpenExecution(event.execution_id))

    @on(Input.Changed, "#log-search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._set_search(event.value.strip())

    @on(Input.Submitted, "#log-search")
    def _search_done(self, event: Input.Submitted) -> None:
        event.stop()
        self._close_search(keep=True)

    def _close_search(self, *, keep: bool) -> None:
        field = self.query_one("#log-search", Input)
        if not keep:
            field.value = ""
            self._set_search("")
        field.display = bool(self.search)
        self.log_widget.focus()

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape" and self.app.focused is self.query_one("#log-search", Input):
            event.stop()
            self._close_search(keep=False)
