"""The executions pane: a filter line over the executions of the selected namespace or flow.

Rows come a page at a time from the store (the next page when the cursor reaches the last row) and
live from the engine's events; executions seen live are kept, so a run started a moment ago shows
even before the store's page has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, Unpack, cast

from rich.markup import escape
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input

from ..host import Dashboard
from . import WidgetArgs, retitle
from .executions import ExecutionsTable, Summary, matches_filter, trigger_name
from .namespaces import NodeRef

PAGE_SIZE = 200
SEEN_LIMIT = 5_000
FILTER_HINT = "filter: state:FAILED label:k=v trigger:Schedule text (escape clears)"


class PaneHost(Dashboard, Protocol):
    """What the pane asks of the dashboard: which labels it may show."""

    def masked_labels(self, labels: Mapping[str, str]) -> dict[str, str]: ...


class ExecutionsPane(Vertical):
    """The executions under one namespace or flow (its `scope`), filtered, newest first."""

    ALLOW_MAXIMIZE = True  # `z` zooms it

    class Loaded(Message):
        """The rows were replaced: the selected execution may have changed."""

    def __init__(self, page_size: int = PAGE_SIZE, **kwargs: Unpack[WidgetArgs]) -> None:
        super().__init__(**kwargs)
        self.scope: NodeRef | None = None
        self.row_filter = ""
        self.page_size = page_size
        self.seen: dict[str, Summary] = {}
        # Where the next (older) page starts; None when the last page has been read.
        self.more: str | None = None
        self.loads = 0  # pages of rows replaced so far: tests wait on it

    def compose(self) -> ComposeResult:
        yield Input(placeholder=FILTER_HINT, id="executions-filter")
        yield ExecutionsTable(id="executions")

    def on_mount(self) -> None:
        self.update_title()

    @property
    def closing(self) -> bool:
        """The app is shutting down: the table may already be gone while a page was being read."""
        return not self.query(ExecutionsTable)

    @property
    def table(self) -> ExecutionsTable:
        return self.query_one(ExecutionsTable)

    @property
    def _host(self) -> PaneHost:
        return cast(PaneHost, self.app)

    def update_title(self) -> None:
        more = "+" if self.more else ""
        retitle(self, f"2 Executions {self.table.row_count}{more}")

    # -- scope and live rows ----------------------------------------------------------------------
    def show_scope(self, scope: NodeRef | None) -> None:
        """Show the executions under a namespace or flow (none for anything else)."""
        self.scope = scope
        if scope is None or scope.kind not in ("namespace", "flow"):
            self.more = None
            self.table.replace_all([])
            self.loaded()
            return
        self.load()

    def matches(self, summary: Summary) -> bool:
        """Whether a row belongs in the pane: under the scope and through the filter."""
        if self.row_filter and not matches_filter(summary, self.row_filter):
            return False
        ref = self.scope
        if ref is None:
            return False
        if ref.kind == "flow":
            return (summary.namespace, summary.flow_id) == (ref.namespace, ref.flow_id)
        if ref.kind == "namespace":
            ns = ref.namespace
            return not ns or summary.namespace == ns or summary.namespace.startswith(ns + ".")
        return False

    def record(self, summaries: Iterable[Summary]) -> None:
        """Executions changed live: remember them, and show those in scope."""
        shown: list[Summary] = []
        for summary in summaries:
            self.seen[summary.id] = summary
            if len(self.seen) > SEEN_LIMIT:
                del self.seen[next(iter(self.seen))]
            if self.matches(summary):
                shown.append(summary)
        self.table.upsert_many(shown)
        self.table.select_followed()
        self.update_title()

    def recent(self) -> list[Summary]:
        """The executions shown plus the ones seen live, newest first."""
        rows = {**self.seen, **self.table.rows_by_id}
        return sorted(rows.values(), key=lambda s: s.start.timestamp() if s.start else 0.0, reverse=True)

    # -- pages --------------------------------------------------------------------------------------
    @work(exclusive=True, group="executions")
    async def load(self) -> None:
        """The first page under the scope, with the executions seen live that belong there."""
        scope = self.scope
        if scope is None:
            return
        rows = await self._page(scope, None)
        if rows is None or scope != self.scope or self.closing:
            return
        summaries = {summary.id: summary for summary in rows}
        summaries.update({key: value for key, value in self.seen.items() if self.matches(value)})
        keep = self.table.following or self.table.selected_id
        self.table.replace_all([s for s in summaries.values() if self.matches(s)], keep=keep)
        self.table.select_followed()
        self.loaded()

    def loaded(self) -> None:
        self.loads += 1
        self.update_title()
        self.post_message(self.Loaded())

    @work(exclusive=True, group="more")
    async def load_more(self) -> None:
        """The next (older) page, appended below the rows shown."""
        scope = self.scope
        if scope is None or self.more is None:
            return
        rows = await self._page(scope, self.more)
        if rows is None or scope != self.scope or self.closing:
            return
        self.table.append([s for s in rows if self.matches(s)])
        self.update_title()

    async def _page(self, scope: NodeRef, before: str | None) -> list[Summary] | None:
        """A page of executions under `scope`, remembering where the next page starts."""
        engine = self._host.engine
        if engine is None:
            return None
        rows = await engine.list_executions(
            namespace=scope.namespace or None,
            flow_id=scope.flow_id if scope.kind == "flow" else None,
            limit=self.page_size,
            before=before,
        )
        self.more = rows[-1].cursor if len(rows) == self.page_size else None
        labels = self._host.masked_labels
        return [
            Summary(
                row.id,
                row.namespace,
                row.flow_id,
                row.state,
                row.start_date,
                row.end_date,
                labels(row.labels),
                trigger_name(row.trigger_type),
            )
            for row in rows
        ]

    @on(DataTable.RowHighlighted, "#executions")
    def _near_end(self, event: DataTable.RowHighlighted) -> None:
        """The cursor reached the last row: read the next page, if there is one (the event goes on
        to the app, whose detail pane follows the cursor)."""
        if self.more is not None and event.cursor_row >= event.data_table.row_count - 1:
            self.load_more()

    # -- the filter line ----------------------------------------------------------------------------
    def open_filter(self) -> None:
        field = self.query_one("#executions-filter", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#executions-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.row_filter = event.value.strip()
        self.border_subtitle = escape(f"/{self.row_filter}") if self.row_filter else ""
        self.load()

    @on(Input.Submitted, "#executions-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.stop()
        self._close_filter(keep=True)

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape" and self.focused_filter:
            event.stop()
            self._close_filter(keep=False)

    @property
    def focused_filter(self) -> bool:
        return self.app.focused is self.query_one("#executions-filter", Input)

    def _close_filter(self, *, keep: bool) -> None:
        field = self.query_one("#executions-filter", Input)
        if not keep and field.value:
            field.value = ""  # Input.Changed reloads the rows
        field.display = keep and bool(field.value)
        self.table.focus()
