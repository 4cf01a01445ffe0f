"""The executions pane: a keyed DataTable of execution summaries, diffed cell by cell."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from tiercel.engine.model import Execution

from .shown import shown
from .states import fmt_duration, fmt_start, state_text

COLUMNS = ("id", "flow", "state", "start", "duration", "trigger", "labels")
HEADERS = ("id", "flow", "state", "start", "took", "trigger", "labels")
ID_WIDTH = 6
# Every column but flow and labels at its widest (state, start on another day, trigger), with the
# one-space gap before each: what is left of the table's width goes to the flow id.
FIXED_WIDTH = (ID_WIDTH + 1) + 10 + 12 + 6 + 9 + 1
MIN_FLOW_WIDTH = 10


def clip(text: str, width: int) -> str:
    """`text` cut to `width` characters, an ellipsis marking the cut."""
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def gap(cell: object) -> Text:
    """A cell with the one-space gap that separates it from the column on its left."""
    return Text.assemble(" ", cell if isinstance(cell, Text) else str(cell))


def trigger_name(trigger_type: object) -> str:
    """The short name of what started an execution: the trigger type's last part, or "manual"."""
    if not trigger_type:
        return "manual"
    return str(trigger_type).rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class Summary:
    """What one row of the executions list shows."""

    id: str
    namespace: str
    flow_id: str
    state: str
    start: datetime | None
    end: datetime | None
    labels: Mapping[str, str]
    trigger: str = "manual"

    @staticmethod
    def of(execution: Execution, labels: Callable[[Mapping[str, str]], Mapping[str, str]] = dict) -> Summary:
        """The summary of an execution snapshot, its labels as `labels` shows them (masked)."""
        state = execution.state
        return Summary(
            execution.id,
            execution.namespace,
            execution.flow_id,
            state.current.value,
            state.start_date,
            state.end_date if state.current.is_terminated else None,
            labels(execution.labels_map()),
            trigger_name(execution.trigger.get("type") if execution.trigger else None),
        )

    @property
    def running(self) -> bool:
        return self.end is None and self.state not in ("PAUSED", "CREATED", "QUEUED")

    def cells(self, flow_width: int = 40) -> tuple[Text, ...]:
        """Cell values in column order, the flow id cut to `flow_width`; control characters shown."""
        end = self.end if self.end is not None else (datetime.now(UTC) if self.running else None)
        duration = fmt_duration(end - self.start) if (end and self.start) else ""
        labels = " ".join(f"{k}={v}" for k, v in self.labels.items())
        start = fmt_start(self.start)
        values = (
            shown(self.id[:ID_WIDTH]),
            clip(shown(self.flow_id), flow_width),
            state_text(self.state),
            start,
            duration,
            shown(self.trigger),
            shown(labels),
        )
        return tuple(gap(value) for value in values)


def matches_filter(summary: Summary, query: str) -> bool:
    """Whether a row passes every term: `state:S`, `label:key=value`, or text in its id or flow id."""
    for term in query.split():
        kind, _, rest = term.partition(":")
        if kind.lower() == "state" and rest:
            if summary.state != rest.upper():
                return False
        elif kind.lower() == "label" and rest:
            key, _, value = rest.partition("=")
            if key not in summary.labels or (value and summary.labels[key] != value):
                return False
        elif kind.lower() == "trigger" and rest:
            if summary.trigger.lower() != rest.lower():
                return False
        elif term.lower() not in f"{summary.id} {summary.flow_id}".lower():
            return False
    return True


class ExecutionsTable(DataTable[object]):
    """Executions newest first, keyed by execution id."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "app.filter_executions", "Filter"),
        Binding("y", "app.execution_source", "Source"),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        # Gaps come from the cells themselves (one space on the left) to fit 80 columns.
        self.cell_padding = 0
        self.rows_by_id: dict[str, Summary] = {}
        self.flow_width = MIN_FLOW_WIDTH

    def on_mount(self) -> None:
        for name, header in zip(COLUMNS, HEADERS, strict=True):
            self.add_column(gap(header), key=name)

    def on_resize(self) -> None:
        width = max(self.size.width - FIXED_WIDTH, MIN_FLOW_WIDTH)
        if width != self.flow_width:
            self.flow_width = width
            self.replace_all(list(self.rows_by_id.values()), keep=self.selected_id)

    def cells(self, summary: Summary) -> tuple[Text, ...]:
        return summary.cells(self.flow_width)

    @property
    def selected_id(self) -> str | None:
        """The id of the execution under the cursor."""
        if not self.rows_by_id or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return str(key.value) if key.value is not None else None

    def replace_all(self, summaries: Iterable[Summary], keep: str | None = None) -> None:
        """Show exactly these executions, newest first, keeping the cursor on `keep`."""
        ordered = sorted(summaries, key=_newest_first)
        self.clear()
        self.rows_by_id = {s.id: s for s in ordered}
        for summary in ordered:
            self.add_row(*self.cells(summary), key=summary.id)
        if keep is not None and keep in self.rows_by_id:
            self.move_cursor(row=self.get_row_index(keep))

    def append(self, summaries: Iterable[Summary]) -> None:
        """Add older executions below the rows shown (paging)."""
        for summary in summaries:
            if summary.id not in self.rows_by_id:
                self.rows_by_id[summary.id] = summary
                self.add_row(*self.cells(summary), key=summary.id)

    def upsert(self, summary: Summary) -> bool:
        """Update a row in place (True), or add a new one in its newest-first place (False)."""
        return self.upsert_many([summary]) == 0

    def upsert_many(self, summaries: Iterable[Summary]) -> int:
        """Update rows in place and add the new ones, rebuilding the table at most once; the count added.

        New executions go on top (newest first), so adding them re-lays every row: once per batch of
        events, not once per execution, keeps a burst of new executions cheap.
        """
        added = []
        for summary in summaries:
            if summary.id in self.rows_by_id:
                self._update_row(summary)
            else:
                added.append(summary)
        if added:
            self.replace_all([*self.rows_by_id.values(), *added], keep=self.selected_id)
        return len(added)

    def _update_row(self, summary: Summary) -> None:
        old = self.rows_by_id[summary.id]
        self.rows_by_id[summary.id] = summary
        for column, new, previous in zip(COLUMNS, self.cells(summary), self.cells(old), strict=True):
            if str(new) != str(previous) or column in ("state", "duration"):
                self.update_cell(summary.id, column, new)

    def tick(self) -> None:
        """Refresh the duration of running executions."""
        for summary in self.rows_by_id.values():
            if summary.running:
                self.update_cell(summary.id, "duration", self.cells(summary)[4])


def _newest_first(summary: Summary) -> tuple[float, str]:
    start = summary.start.timestamp() if summary.start else float("inf")
    return (-start, summary.id)
