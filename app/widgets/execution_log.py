"""The log of the shown execution: its lines through the filters, the live tail and older pages.

The lines held end at the log's newest line, where live lines are added in batches (the tail), or
else they are a stretch of older lines read from the store with `[` and `]` (a window).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import ClassVar, TypeVar, Unpack

from rich.cells import cell_len, chop_cells
from rich.highlighter import Highlighter
from rich.text import Text
from textual import events
from textual.actions import SkipAction
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.widgets import Log

from tiercel.engine import LogEntry, LogLevel, iso, visible

from ..host import dashboard
from . import WidgetArgs

#: Log lines the pane holds: the newest ones when an execution opens, older pages on demand.
LOG_KEEP = 20_000
#: Log lines read from the store by one `[` (older) or `]` (newer).
LOG_PAGE = 5_000
#: Rows the log holds while lines wrap: a long line takes several, and the lines held stay LOG_KEEP.
WRAP_KEEP = 8 * LOG_KEEP
_T = TypeVar("_T")
LEVELS = list(LogLevel)


def format_entry(entry: LogEntry, *, stamps: bool = True) -> str:
    """One log line as the log pane shows it, control characters made visible (Log lets ESC through)."""
    task = entry.task_id or "-"
    text = visible(f"{entry.level.value:<5} {task} {entry.message}")
    if not stamps:
        return text
    return f"{entry.timestamp.astimezone().strftime('%H:%M:%S')} {text}"


def wrap_line(line: str, width: int) -> list[str]:
    """The rows a line takes when wrapped at `width` cells (one row when it fits, or no width)."""
    line = line.expandtabs()  # as Log shows tabs, so the rows measure what is drawn
    if width <= 0 or (len(line) <= width and line.isascii()) or cell_len(line) <= width:
        return [line]
    return chop_cells(line, width)


def new_lines_text(count: int) -> str:
    """What the status says of lines written below the view while the log does not follow."""
    return f"{count} new line{'' if count == 1 else 's'} ↓ (End follows)"


def entry_key(entry: LogEntry) -> tuple[str | None, str | None, str, str]:
    """What identifies a line both live and as stored (where times keep milliseconds only)."""
    return (iso(entry.timestamp), entry.task_run_id, entry.level.value, entry.message)


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


class ExecutionLog(Log):
    """One execution's log lines, filtered by level, task run and search; live lines flushed in batches.

    `auto_scroll` is whether the log follows its tail: scrolling up by any means stops it, reaching
    the bottom by any means (End, G, the wheel, the scrollbar) starts it again.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("end,G", "follow", "Follow", show=False, id="tiercel.log.follow"),
        Binding("home,g", "top", "Top", show=False, id="tiercel.log.top"),
        Binding("j", "scroll_down", "Line down", show=False, id="tiercel.vim.log_down"),
        Binding("k", "scroll_up", "Line up", show=False, id="tiercel.vim.log_up"),
    ]

    #: What the pane's subtitle says of the log: its filters, older lines, unseen lines, the match shown.
    status: var[str] = var("", always_update=True)

    def __init__(self, **kwargs: Unpack[WidgetArgs]) -> None:
        # Before Log's own __init__, which sets auto_scroll and so runs its watcher.
        self.unseen = 0
        # Set while the lines are written again, when scroll moves say nothing of the user's wish.
        self._rewriting = False
        super().__init__(max_lines=LOG_KEEP, auto_scroll=True, highlight=True, **kwargs)
        self._marks = SearchHighlighter()
        self.highlighter = self._marks
        self.execution_id: str | None = None
        self.entries: deque[LogEntry] = deque(maxlen=LOG_KEEP)
        self.min_level = LogLevel.TRACE
        self.stamps = True
        self.search = ""
        self.only_matches = False
        self.match_line: int | None = None
        self.task_ids: set[str] | None = None
        self.task_label = ""
        self._text: list[str] | None = None
        self._pending: list[str] = []
        self._loading = False
        self._held: list[LogEntry] = []
        self._stored: set[tuple[str | None, str | None, str, str]] = set()
        # None at the tail; else the window's lines with their row ids, to read the next page from.
        self._window: list[tuple[int, LogEntry]] | None = None
        self.more_before = False
        self.wrap = False
        # The width the rows held were wrapped at (0: not wrapped); a resize to another rewraps.
        self._wrap_width = 0

    @property
    def at_tail(self) -> bool:
        """Whether the held lines end at the log's newest line (live lines are then shown)."""
        return self._window is None

    # -- the execution's lines -------------------------------------------------------------------
    def begin(self, execution_id: str | None) -> None:
        """Switch to another execution: clear everything and hold live lines until history is in."""
        self.execution_id = execution_id
        self.entries.clear()
        self._text = None
        self.task_ids = None
        self.task_label = ""
        self._pending.clear()
        self._held.clear()
        self._stored = set()
        self._loading = execution_id is not None
        self.unseen = 0
        self._window = None
        self.more_before = False
        self._update_status()
        self.auto_scroll = True
        self.clear()

    def show_history(self, history: Iterable[LogEntry]) -> None:
        """Show the log's newest stored lines, then the live lines held meanwhile.

        `history` is the tail of the log, at most LOG_KEEP lines (`Engine.logs(..., limit=LOG_KEEP,
        newest=True)`); older lines are read on demand with `[`.
        """
        stored = list(history)
        self.more_before = len(stored) >= LOG_KEEP
        self._show_tail(stored)

    def show_text(self, lines: list[str]) -> None:
        """Show plain text (a flow file's errors) instead of an execution's lines."""
        self._text = [visible(line) for line in lines]
        self._write(self._text)

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

    def add_entries(self, entries: Iterable[LogEntry]) -> None:
        """Buffer live lines of the shown execution (others are ignored).

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

    def flush(self) -> None:
        """Write buffered lines in one batch; follow the tail unless the user scrolled up."""
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        self._write(lines)
        self.refresh()
        if not self.auto_scroll:
            self.unseen += len(lines)
            self._update_status()

    def _write(self, lines: list[str]) -> None:
        """Write lines (wrapped when asked) and stay at the tail when following it."""
        if self.wrap:
            lines = [row for line in lines for row in wrap_line(line, self._wrap_width)]
        self.write_lines(lines, scroll_end=False)
        if self.auto_scroll:
            # Not Log's own check (was the view at the end before the write): a resize or a scroll
            # under way can leave the view short of the end, and following must still catch up.
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    # -- following the tail ----------------------------------------------------------------------
    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._rewriting:
            return
        if new_value >= self.max_scroll_y:
            self.auto_scroll = True
        elif new_value < old_value:
            self.auto_scroll = False

    def watch_auto_scroll(self, following: bool) -> None:
        if following and self.unseen:
            self.unseen = 0
            self._update_status()

    def action_follow(self) -> None:
        """Jump to the newest line and follow the lines that come."""
        self.auto_scroll = True
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def action_top(self) -> None:
        self.scroll_home(animate=False, x_axis=False)

    # The inherited keys scroll at once: an animation would end short of a tail that keeps growing.
    def action_scroll_end(self) -> None:
        self.action_follow()

    def action_scroll_home(self) -> None:
        self.action_top()

    def action_scroll_down(self) -> None:
        self._vertical(lambda: self.scroll_down(animate=False))

    def action_scroll_up(self) -> None:
        self._vertical(lambda: self.scroll_up(animate=False))

    def action_page_down(self) -> None:
        self._vertical(lambda: self.scroll_page_down(animate=False))

    def action_page_up(self) -> None:
        self._vertical(lambda: self.scroll_page_up(animate=False))

    def _vertical(self, scroll: Callable[[], object]) -> None:
        if not self.allow_vertical_scroll:
            raise SkipAction()
        scroll()

    def on_resize(self, event: events.Resize) -> None:
        if self.wrap and self._content_width() != self._wrap_width:
            self._rewrap()
        elif self.auto_scroll:  # a shorter pane (the timeline shown) must not drop the tail
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    # -- wrapping long lines ---------------------------------------------------------------------
    def toggle_wrap(self) -> None:
        """Wrap long lines at the pane's width, or scroll sideways to read them again."""
        self.wrap = not self.wrap
        self.styles.overflow_x = "hidden" if self.wrap else "scroll"
        self.max_lines = WRAP_KEEP if self.wrap else LOG_KEEP
        self._rewrap()
        self._update_status()

    def _content_width(self) -> int:
        return self.scrollable_content_region.width

    def _shown_lines(self) -> list[str]:
        """The lines through the filters, before any wrapping."""
        if self._text is not None:
            return self._text
        return [format_entry(e, stamps=self.stamps) for e in self.entries if self.passes(e)]

    def _rows(self, lines: list[str], width: int) -> list[int]:
        """How many rows each line takes, wrapped at `width` (0: not wrapped)."""
        return [len(wrap_line(line, width)) if width else 1 for line in lines]

    def _rewrap(self) -> None:
        """Write the lines again at the current wrapping, keeping the follow state and the place."""
        lines = self._shown_lines()
        before = self._rows(lines, self._wrap_width)
        top, row = 0, int(self.scroll_y)
        while top < len(before) - 1 and row >= before[top]:
            row -= before[top]
            top += 1
        if not self.auto_scroll:
            self.unseen += len(self._pending)
        self._pending.clear()
        self._rewriting = True
        try:
            self.clear()
            self._wrap_width = self._content_width() if self.wrap else 0
            self._write(lines)
        finally:
            self._rewriting = False
        if not self.auto_scroll:
            self.scroll_to(y=sum(self._rows(lines[:top], self._wrap_width)), animate=False)
            self.auto_scroll = False  # staying on the lines read, even when they are the last

    # -- filters ---------------------------------------------------------------------------------
    def passes(self, entry: LogEntry) -> bool:
        """Whether a line passes the level, task and search filters."""
        if entry.level.rank < self.min_level.rank:
            return False
        if self.task_ids is not None and entry.task_run_id not in self.task_ids:
            return False
        if not self.search or not self.only_matches:
            return True
        return self.search.lower() in format_entry(entry, stamps=self.stamps).lower()

    def rerender(self) -> None:
        """Write the held lines again through the current filters, following the tail."""
        self._pending.clear()
        self.unseen = 0
        self._rewriting = True
        try:
            self.clear()
            self.auto_scroll = True
            self._wrap_width = self._content_width() if self.wrap else 0
            self._write(self._shown_lines())
        finally:
            self._rewriting = False
        self._update_status()

    def filter_tasks(self, task_ids: set[str] | None, label: str = "") -> None:
        """Keep only the lines of these task runs (None: of all); `label` names them in the status."""
        self.task_ids = task_ids
        self.task_label = label

    def cycle_level(self) -> None:
        self.min_level = LEVELS[(LEVELS.index(self.min_level) + 1) % len(LEVELS)]
        self.rerender()

    def toggle_stamps(self) -> None:
        self.stamps = not self.stamps
        self.rerender()

    def toggle_only_matches(self) -> None:
        self.only_matches = not self.only_matches
        self.rerender()

    def filter_text(self) -> str:
        """The active filters, as the pane's subtitle shows them."""
        parts = []
        if self.min_level is not LogLevel.TRACE:
            parts.append(f"≥{self.min_level.value}")
        if self.task_ids is not None and self.task_label:
            parts.append(self.task_label)
        if self.search:
            parts.append(f"/{self.search}" + (" (only)" if self.only_matches else ""))
        return " ".join(parts)

    def _update_status(self) -> None:
        parts = [self.filter_text()]
        if self.more_before:
            parts.append("[ older")
        if self._window is not None:
            parts.append("older lines shown, ] newer")
        if self.wrap:
            parts.append("wrap")
        if self.unseen:
            parts.append(new_lines_text(self.unseen))
        self.status = " · ".join(part for part in parts if part)

    # -- search ----------------------------------------------------------------------------------
    def set_search(self, term: str) -> None:
        """Mark the lines holding `term` (and keep only them while only matches are asked)."""
        self.search = term
        self.match_line = None
        self._marks.term = term
        self.rerender()

    def matching_lines(self) -> list[int]:
        """Indexes of the log lines that contain the search term."""
        term = self.search.lower()
        return [i for i, line in enumerate(self.lines) if term and term in line.lower()]

    def jump(self, step: int) -> None:
        """Scroll to the next match (step 1) or the previous one (step -1), wrapping around."""
        found = self.matching_lines()
        if not found:
            self.app.notify(f"No line matches {self.search!r}", severity="warning")
            return
        if step > 0:
            here = self.match_line if self.match_line is not None else int(self.scroll_y) - 1
            self.match_line = next((i for i in found if i > here), found[0])
        else:
            here = self.match_line if self.match_line is not None else int(self.scroll_y) + self.size.height
            self.match_line = next((i for i in reversed(found) if i < here), found[-1])
        self.scroll_to(y=max(self.match_line - self.size.height // 2, 0), animate=False)
        self.auto_scroll = False  # stay on the match, even one among the last lines
        position = found.index(self.match_line) + 1
        self.status = f"{self.filter_text()} · match {position}/{len(found)}"

    # -- paging through a long log ---------------------------------------------------------------
    def read_older(self) -> None:
        """Read the LOG_PAGE lines before the first one held (the newest held go beyond LOG_KEEP)."""
        if self.execution_id is not None and not self._loading:
            self.run_worker(self._read_older(self.execution_id), group="log-page", exclusive=True)

    def read_newer(self) -> None:
        """Read the LOG_PAGE lines after the last one held, back to following the tail at the end."""
        if self._window is None:
            self.app.notify("The log already shows its newest lines")
        elif self.execution_id is not None and not self._loading:
            self.run_worker(self._read_newer(self.execution_id), group="log-page", exclusive=True)

    async def _read_pages(self, execution_id: str, read: Callable[[], Awaitable[_T]]) -> _T | None:
        """Run `read` with live lines held; None when it failed (and said so) or the log moved on."""
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
                self._update_status()
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
        self.auto_scroll = False

    def _scroll_to_entry(self, index: int) -> None:
        """Scroll so the held line at `index` (or the first shown after it) is near the top."""
        if self._text is not None:
            return
        before = [entry for entry in itertools.islice(self.entries, index) if self.passes(entry)]
        rows = len(before)
        if self._wrap_width:
            rows = sum(self._rows([format_entry(e, stamps=self.stamps) for e in before], self._wrap_width))
        self.scroll_to(y=max(rows - 2, 0), animate=False)
        self.auto_scroll = self._window is None and rows >= self.line_count
