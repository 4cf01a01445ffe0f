"""The detail pane: the selected execution's task runs (tree or timeline) and its filtered log."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import ClassVar, TypeVar

from rich.highlighter import Highlighter
from rich.markup import escape
from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Input, Log, Tree

from tiercel.engine import Execution, LogEntry, LogLevel, Masker, TaskRun, iso, utcnow, visible

from ..actions import show_execution_source
from ..host import dashboard
from ..screens.viewer import ViewerScreen, as_json
from .shown import masker_of, shown, shown_value
from .states import GLYPHS, fmt_duration, glyph

#: Log lines the pane holds: the newest ones when an execution opens, older pages on demand.
LOG_KEEP = 20_000
#: Log lines read from the store by one `[` (older) or `]` (newer).
LOG_PAGE = 5_000
_T = TypeVar("_T")
LEVELS = list(LogLevel)


def format_entry(entry: LogEntry, *, stamps: bool = True) -> str:
    """One log line as the log pane shows it, control characters made visible (Log lets ESC through)."""
    task = entry.task_id or "-"
    text = visible(f"{entry.level.value:<5} {task} {entry.message}")
    if not stamps:
        return text
    return f"{entry.timestamp.astimezone().strftime('%H:%M:%S')} {text}"


def entry_key(entry: LogEntry) -> tuple[str | None, str | None, str, str]:
    """What identifies a line both live and as stored (where times keep milliseconds only)."""
    return (iso(entry.timestamp), entry.task_run_id, entry.level.value, entry.message)


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


def run_label(run: TaskRun, depth: int = 0, masker: Masker | None = None) -> Text:
    """Glyph, task id, loop value (masked) and attempts of a task run."""
    label = Text.assemble("  " * depth, glyph(run.state.current.value), " ", shown(run.task_id))
    if run.value is not None:
        label.append(f" [{shown(run.value, masker)}]", style="italic")
    if len(run.attempts) > 1:
        label.append(f" ×{len(run.attempts)}", style="yellow")
    return label


def timeline_text(
    execution: Execution | None, width: int, now: datetime | None = None, masker: Masker | None = None
) -> Text:
    """A Gantt chart of the task runs: one row each, bars scaled to the execution's duration."""
    if execution is None or not execution.task_runs:
        return Text("no task runs yet", style="dim")
    now = now or utcnow()
    start = execution.state.start_date
    end = execution.state.end_date or now
    total = max((end - start).total_seconds(), 0.001)
    label_width = min(30, max(10, width * 2 // 5))
    duration_width = 7
    bar_width = max(width - label_width - duration_width - 2, 4)
    axis = Text(" " * (label_width + 1) + "0", style="dim")
    axis.append(fmt_duration(end - start).rjust(bar_width - 1) + " " * (duration_width + 1))
    lines = [axis]
    for run, depth in nested_runs(execution):
        label = run_label(run, depth, masker)
        label.truncate(label_width, overflow="ellipsis", pad=True)
        run_start = run.state.start_date
        run_end = min(run.state.end_date or now, end)
        first = int((run_start - start).total_seconds() / total * bar_width)
        first = min(max(first, 0), bar_width - 1)
        last = math.ceil((run_end - start).total_seconds() / total * bar_width)
        last = min(max(last, first + 1), bar_width)
        style = GLYPHS.get(run.state.current.value, ("", ""))[1] or "white"
        line = Text.assemble(label, " ", " " * first, ("█" * (last - first), style), " " * (bar_width - last))
        line.append(" " + fmt_duration(run.state.duration(now)).rjust(duration_width), style="dim")
        lines.append(line)
    text = Text("\n").join(lines)
    text.no_wrap = True
    text.overflow = "crop"
    return text


class SearchHighlighter(Highlighter):
    """Marks every case-insensitive occurrence of the search term in a log line."""

    STYLE = "bold black on yellow"

    def __init__(self) -> None:
        self.term = ""

    def highlight(self, text: Text) -> None:
        if not self.term:
            return
        plain, term = text.plain.lower(), self.term.lower()
        start = plain.find(term)
        while start >= 0:
            text.stylize(self.STYLE, start, start + len(term))
            start = plain.find(term, start + len(term))


class Timeline(Widget):
    """The timeline of the shown execution, redrawn on every change and every second while running."""

    DEFAULT_CSS = "Timeline { height: auto; }"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.execution: Execution | None = None

    def show(self, execution: Execution | None) -> None:
        self.execution = execution
        self.refresh(layout=True)

    def render(self) -> Text:
        return timeline_text(self.execution, max(self.size.width, 30), masker=masker_of(self))


class TaskRunTree(Tree[str]):
    """Task runs nested by parent, with state glyphs and durations."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("task runs", **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = 2

    def show(self, execution: Execution | None) -> None:
        """Rebuild from an execution snapshot (or empty it), keeping the cursor on its task run."""
        keep = self.cursor_node.data if self.cursor_node is not None else None
        self.clear()
        if execution is None:
            return
        nodes: dict[str, object] = {}
        masker = masker_of(self)
        for run, _ in nested_runs(execution):
            label = run_label(run, masker=masker)
            if run.state.current.is_terminated:
                label.append(" " + fmt_duration(run.state.duration()), style="dim")
            parent = nodes.get(run.parent_task_run_id or "", self.root)
            nodes[run.id] = parent.add(label, data=run.id, expand=True)  # type: ignore[attr-defined]
        for node in nodes.values():
            if not node.children:  # type: ignore[attr-defined]
                node.allow_expand = False  # type: ignore[attr-defined]
        self.root.expand()
        if keep in nodes:
            _ = self.last_line  # lay the lines out so the node's line is known
            self.move_cursor(nodes[keep])  # type: ignore[arg-type]

    def on_focus(self) -> None:
        if self.cursor_line < 0 and self.root.children:
            self.cursor_line = 0


class DetailPane(Horizontal):
    """Task runs beside the log of the selected execution; live lines are flushed in batches."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "cycle_level", "Level", id="tiercel.log.level"),
        Binding("t", "toggle_stamps", "Times", id="tiercel.log.times"),
        Binding("a", "all_tasks", "All tasks", id="tiercel.log.all_tasks"),
        Binding("slash", "search", "Search", id="tiercel.log.search"),
        Binding("n", "next_match", "Next match", show=False, id="tiercel.log.next_match"),
        Binding("N", "previous_match", "Prev match", show=False, id="tiercel.log.previous_match"),
        Binding("f", "toggle_only_matches", "Only matches", show=False, id="tiercel.log.only_matches"),
        Binding("g", "toggle_timeline", "Timeline", id="tiercel.detail.timeline"),
        Binding("o", "outputs", "Outputs", id="tiercel.detail.outputs"),
        Binding("y", "execution_source", "Source", show=False, id="tiercel.detail.source"),
        Binding("left_square_bracket", "older_lines", "Older lines", show=False, id="tiercel.log.older"),
        Binding("right_square_bracket", "newer_lines", "Newer lines", show=False, id="tiercel.log.newer"),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.execution_id: str | None = None
        self.execution: Execution | None = None
        self.entries: deque[LogEntry] = deque(maxlen=LOG_KEEP)
        self.min_level = LogLevel.TRACE
        self.task_filter: str | None = None
        self.stamps = True
        self.search = ""
        self.only_matches = False
        self.match_line: int | None = None
        self._task_ids: set[str] | None = None
        self._text: list[str] | None = None
        self._pending: list[str] = []
        self._loading = False
        self._held: list[LogEntry] = []
        self._stored: set[tuple[str | None, str | None, str, str]] = set()
        self.unseen = 0
        # The held lines end at the log's newest line (live lines are added), or else `_window`
        # holds them with their row ids: a stretch of older lines read with `[` and `]`.
        self._window: list[tuple[int, LogEntry]] | None = None
        self.more_before = False

    def compose(self) -> ComposeResult:
        with Vertical(id="runs-side"):
            yield TaskRunTree(id="taskruns")
            with VerticalScroll(id="timeline-scroll"):
                yield Timeline(id="timeline")
        with Vertical(id="log-side"):
            yield Input(placeholder="search the log (enter: done, escape: clear)", id="log-search")
            log = Log(max_lines=LOG_KEEP, id="log", auto_scroll=True, highlight=True)
            log.highlighter = SearchHighlighter()
            yield log

    @property
    def log_widget(self) -> Log:
        return self.query_one("#log", Log)

    @property
    def timeline(self) -> Timeline:
        return self.query_one(Timeline)

    @property
    def showing_timeline(self) -> bool:
        return self.has_class("timeline")

    # -- execution ------------------------------------------------------------------------------
    def begin(self, execution_id: str | None) -> None:
        """Switch to another execution: clear everything and hold live lines until history is in."""
        self.execution_id = execution_id
        self.execution = None
        self.entries.clear()
        self._text = None
        self.task_filter = None
        self._task_ids = None
        self._pending.clear()
        self._held.clear()
        self._stored = set()
        self._loading = execution_id is not None
        self.unseen = 0
        self._window = None
        self.more_before = False
        self._update_subtitle()
        self.log_widget.auto_scroll = True
        self.log_widget.clear()
        self.query_one(TaskRunTree).show(None)
        self.timeline.show(None)

    def finish_loading(self, execution: Execution | None, history: Iterable[LogEntry]) -> None:
        """Show the stored execution and its log's newest lines, then the live lines held meanwhile.

        `history` is the tail of the log, at most LOG_KEEP lines (`Engine.logs(..., limit=LOG_KEEP,
        newest=True)`); older lines are read on demand with `[`.
        """
        self.update_execution(execution)
        stored = list(history)
        self.more_before = len(stored) >= LOG_KEEP
        self._show_tail(stored)

    def _show_tail(self, stored: list[LogEntry]) -> None:
        """Hold the log's newest stored lines and the live lines held meanwhile; follow the tail."""
        self._window = None
        self._stored = {entry_key(e) for e in stored}
        self.entries.clear()
        self.entries.extend(stored)
        self.entries.extend(e for e in self._held if entry_key(e) not in self._stored)
        self._held.clear()
        self._loading = False
        self.rerender()

    def update_execution(self, execution: Execution | None) -> None:
        """Show a newer snapshot of the selected execution."""
        if execution is not None and execution.id != self.execution_id:
            return
        self.execution = execution
        self.query_one(TaskRunTree).show(execution)
        self.timeline.show(execution)
        if self.task_filter is not None:
            self._task_ids = self._descendants(self.task_filter)

    def update_task_run(self, run: TaskRun) -> None:
        """Apply one changed task run to the shown snapshot."""
        execution = self.execution
        if execution is None or run.execution_id != execution.id:
            return
        runs = [r for r in execution.task_runs if r.id != run.id]
        index = next((i for i, r in enumerate(execution.task_runs) if r.id == run.id), len(runs))
        runs.insert(index, run)
        self.update_execution(replace(execution, task_runs=tuple(runs)))

    def tick(self) -> None:
        """Let the bars of a running execution grow."""
        if self.execution is not None and not self.execution.state.current.is_terminated:
            with contextlib.suppress(NoMatches):  # not while the app shuts down
                self.timeline.refresh()

    def show_text(self, lines: list[str]) -> None:
        """Show plain text (a flow file's errors) instead of an execution."""
        self.begin(None)
        self._text = [visible(line) for line in lines]
        self.log_widget.write_lines(self._text)

    # -- log ------------------------------------------------------------------------------------
    def _descendants(self, task_run_id: str) -> set[str]:
        ids = {task_run_id}
        if self.execution is not None:
            for run, _ in nested_runs(self.execution):
                if run.parent_task_run_id in ids:
                    ids.add(run.id)
        return ids

    def passes(self, entry: LogEntry) -> bool:
        """Whether a line passes the level, task and search filters."""
        if entry.level.rank < self.min_level.rank:
            return False
        if self._task_ids is not None and entry.task_run_id not in self._task_ids:
            return False
        if not self.search or not self.only_matches:
            return True
        return self.search.lower() in format_entry(entry, stamps=self.stamps).lower()

    @property
    def at_tail(self) -> bool:
        """Whether the held lines end at the log's newest line (live lines are then shown)."""
        return self._window is None

    def add_entries(self, entries: Iterable[LogEntry]) -> None:
        """Buffer live lines of the selected execution (others are ignored).

        While older lines are shown, live lines are left in the store: `]` reads them in order.
        """
        for entry in entries:
            if entry.execution_id != self.execution_id or (self._window is not None and not self._loading):
                continue
            if self._loading:
                self._held.append(entry)
                continue
            if self._stored and entry_key(entry) in self._stored:
                continue  # already read from the store before its event arrived
            self.entries.append(entry)
            if self.passes(entry):
                self._pending.append(format_entry(entry, stamps=self.stamps))

    def rerender(self) -> None:
        """Write the held lines again through the current filters, following the tail."""
        log = self.log_widget
        self._pending.clear()
        self.unseen = 0
        log.clear()
        log.auto_scroll = True
        if self._text is not None:
            log.write_lines(self._text)
        else:
            log.write_lines([format_entry(e, stamps=self.stamps) for e in self.entries if self.passes(e)])
        self._update_subtitle()

    def flush(self) -> None:
        """Write buffered lines in one batch; follow the tail unless the user scrolled up."""
        try:
            log = self.log_widget
        except NoMatches:
            return  # the app is shutting down: the pane's widgets are already gone
        following = log.scroll_y >= log.max_scroll_y
        if following and self.unseen:
            self.unseen = 0
            self._update_subtitle()
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        log.auto_scroll = following
        log.write_lines(lines)
        log.refresh()
        if not following:
            self.unseen += len(lines)
            self._update_subtitle()

    def filter_text(self) -> str:
        """The active filters, as the pane's subtitle shows them."""
        parts = []
        if self.min_level is not LogLevel.TRACE:
            parts.append(f"≥{self.min_level.value}")
        if self.task_filter is not None and self.execution is not None:
            run = next((r for r in self.execution.task_runs if r.id == self.task_filter), None)
            if run is not None:
                value = f" [{shown(run.value, masker_of(self))}]" if run.value is not None else ""
                parts.append(f"task {shown(run.task_id)}{value}")
        if self.search:
            parts.append(f"/{self.search}" + (" (only)" if self.only_matches else ""))
        return " ".join(parts)

    def _update_subtitle(self) -> None:
        parts = [self.filter_text()]
        if self.more_before:
            parts.append("[ older")
        if self._window is not None:
            parts.append("older lines shown, ] newer")
        if self.unseen:
            parts.append(f"{self.unseen} new lines ↓")
        self.border_subtitle = escape(" · ".join(part for part in parts if part))

    # -- paging through a long log ---------------------------------------------------------------
    def action_older_lines(self) -> None:
        """Read the LOG_PAGE lines before the first one held (the newest held go beyond LOG_KEEP)."""
        if self.execution_id is not None and not self._loading:
            self.run_worker(self._read_older(self.execution_id), group="log-page", exclusive=True)

    def action_newer_lines(self) -> None:
        """Read the LOG_PAGE lines after the last one held, back to following the tail at the end."""
        if self._window is None:
            self.app.notify("The log already shows its newest lines")
        elif self.execution_id is not None and not self._loading:
            self.run_worker(self._read_newer(self.execution_id), group="log-page", exclusive=True)

    async def _read_pages(self, execution_id: str, read: Callable[[], Awaitable[_T]]) -> _T | None:
        """Run `read` with live lines held; None when it failed (and said so) or the pane moved on."""
        self._loading = True
        try:
            found = await read()
        except Exception as error:
            self._page_failed(execution_id, error)
            return None
        finally:
            if self.execution_id == execution_id:
                self._loading = False
        return found if self.execution_id == execution_id else None

    async def _read_older(self, execution_id: str) -> None:
        engine = dashboard(self).engine
        if engine is None:
            return

        async def read() -> tuple[list[tuple[int, LogEntry]], list[tuple[int, LogEntry]]]:
            window = self._window
            if window is None:  # the newest lines again, now with their row ids
                window = await engine.logs(execution_id, limit=LOG_KEEP, newest=True)
            page: list[tuple[int, LogEntry]] = []
            if window:  # one line more than a page tells whether older lines remain
                page = await engine.logs(execution_id, before=window[0][0], limit=LOG_PAGE + 1, newest=True)
            return window, page

        found = await self._read_pages(execution_id, read)
        if found is None:
            return
        window, page = found
        if not page:
            self.more_before = False
            self.app.notify("This is the start of the log")
            if self._window is None:
                self._show_tail([entry for _, entry in window])
            else:
                self._held.clear()
                self._update_subtitle()
            return
        self.more_before = len(page) > LOG_PAGE
        page = page[-LOG_PAGE:]
        joined = page + window
        if self._window is None and len(joined) <= LOG_KEEP:  # a short log: still the whole tail
            self._show_tail([entry for _, entry in joined])
        else:
            self._held.clear()
            self._show_window(joined[:LOG_KEEP])
        self._scroll_to_entry(len(page))

    async def _read_newer(self, execution_id: str) -> None:
        engine = dashboard(self).engine
        window = self._window
        if engine is None or not window:
            return
        page = await self._read_pages(
            execution_id, lambda: engine.logs(execution_id, after=window[-1][0], limit=LOG_PAGE + 1)
        )
        if page is None:
            return
        newest = len(page) <= LOG_PAGE  # the log's newest line is in: follow the tail again
        page = page[:LOG_PAGE]
        joined = window + page
        kept = joined[-LOG_KEEP:]
        self.more_before = self.more_before or len(kept) < len(joined)
        if newest:
            self._show_tail([entry for _, entry in kept])
        else:
            self._held.clear()
            self._show_window(kept)
        self._scroll_to_entry(len(kept) - len(page))

    def _page_failed(self, execution_id: str, error: Exception) -> None:
        """Say why the log could not be read; keep the lines held, with the live ones met meanwhile."""
        if self.execution_id != execution_id:
            return
        self.app.notify(f"Could not read the log: {error}", severity="error")
        if self._window is None:
            self._show_tail(list(self.entries))
        else:
            self._held.clear()

    def _show_window(self, window: list[tuple[int, LogEntry]]) -> None:
        self._window = window
        self._stored = set()
        self.entries.clear()
        self.entries.extend(entry for _, entry in window)
        self.rerender()
        self.log_widget.auto_scroll = False

    def _scroll_to_entry(self, index: int) -> None:
        """Scroll so the held line at `index` (or the first shown after it) is near the top."""
        if self._text is not None:
            return
        shown_before = sum(1 for entry in itertools.islice(self.entries, index) if self.passes(entry))
        log = self.log_widget
        log.auto_scroll = self._window is None and shown_before >= log.line_count
        log.scroll_to(y=max(shown_before - 2, 0), animate=False)

    # -- actions --------------------------------------------------------------------------------
    def action_cycle_level(self) -> None:
        self.min_level = LEVELS[(LEVELS.index(self.min_level) + 1) % len(LEVELS)]
        self.rerender()

    def action_toggle_stamps(self) -> None:
        self.stamps = not self.stamps
        self.rerender()

    def action_all_tasks(self) -> None:
        self.task_filter = None
        self._task_ids = None
        self.rerender()

    def action_search(self) -> None:
        field = self.query_one("#log-search", Input)
        field.display = True
        field.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next_match", "previous_match", "toggle_only_matches"):
            return True if self.search else None
        return True

    def _set_search(self, term: str) -> None:
        self.search = term
        self.match_line = None
        highlighter = self.log_widget.highlighter
        if isinstance(highlighter, SearchHighlighter):
            highlighter.term = term
        self.rerender()
        self.refresh_bindings()

    def matching_lines(self) -> list[int]:
        """Indexes of the log lines that contain the search term."""
        term = self.search.lower()
        return [i for i, line in enumerate(self.log_widget.lines) if term and term in line.lower()]

    def _jump(self, step: int) -> None:
        found = self.matching_lines()
        if not found:
            self.app.notify(f"No line matches {self.search!r}", severity="warning")
            return
        log = self.log_widget
        if step > 0:
            here = self.match_line if self.match_line is not None else int(log.scroll_y) - 1
            self.match_line = next((i for i in found if i > here), found[0])
        else:
            here = self.match_line if self.match_line is not None else int(log.scroll_y) + log.size.height
            self.match_line = next((i for i in reversed(found) if i < here), found[-1])
        log.auto_scroll = False
        log.scroll_to(y=max(self.match_line - log.size.height // 2, 0), animate=False)
        position = found.index(self.match_line) + 1
        self.border_subtitle = escape(f"{self.filter_text()} · match {position}/{len(found)}")

    def action_next_match(self) -> None:
        self._jump(1)

    def action_previous_match(self) -> None:
        self._jump(-1)

    def action_toggle_only_matches(self) -> None:
        self.only_matches = not self.only_matches
        self.rerender()

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

    async def action_execution_source(self) -> None:
        """The source of the flow revision the execution shown ran."""
        if self.execution_id is not None:
            await show_execution_source(self, self.execution_id)

    def outputs_view(self) -> tuple[str, str] | None:
        """Title and JSON text of the selected task run's outputs, or else of the execution's.

        Outputs hold real values (later tasks read them); what is shown here has secrets masked and
        control characters made visible.
        """
        execution = self.execution
        if execution is None:
            return None
        masker = masker_of(self)
        run = self.selected_run()
        if run is not None:
            value = f" [{shown(run.value, masker)}]" if run.value is not None else ""
            outputs = shown_value(dict(run.outputs or {}), masker)
            return f"Outputs of task {shown(run.task_id)}{value}", visible(as_json(outputs))
        outputs = shown_value(dict(execution.outputs or {}), masker)
        title = f"Outputs of execution {shown(execution.id[:8])} ({shown(execution.flow_id)})"
        return title, visible(as_json(outputs))

    def action_outputs(self) -> None:
        view = self.outputs_view()
        if view is None:
            self.app.notify("Select an execution first", severity="warning")
            return
        self.app.push_screen(ViewerScreen(view[0], view[1], "json"))

    def follow_task(self, task_run_id: str | None) -> None:
        """Show only the lines of a task run and the task runs below it."""
        self.task_filter = task_run_id
        self._task_ids = self._descendants(task_run_id) if task_run_id else None
        self.rerender()

    @on(Tree.NodeSelected, "#taskruns")
    def _task_selected(self, event: Tree.NodeSelected[str]) -> None:
        event.stop()
        if event.node.data is not None:
            self.follow_task(event.node.data)

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
