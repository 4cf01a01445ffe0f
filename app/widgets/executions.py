"""The executions pane: a keyed DataTable of execution summaries, diffed cell by cell."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from app.widgets.states import fmt_duration, fmt_start, state_text
from engine.model import Execution

COLUMNS = ("id", "flow", "state", "start", "duration", "trigger", "labels")


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
    def of(execution: Execution) -> Summary:
        """The summary of an execution snapshot."""
        state = execution.state
        return Summary(
            execution.id,
            execution.namespace,
            execution.flow_id,
            state.current.value,
            state.start_date,
            state.end_date if state.current.is_terminated else None,
            execution.labels_map(),
            trigger_name(execution.trigger.get("type") if execution.trigger else None),
        )

    @property
    def running(self) -> bool:
        return self.end is None and self.state not in ("PAUSED", "CREATED", "QUEUED")

    def cells(self) -> tuple[object, ...]:
        """Cell values in column order."""
        end = self.end if self.end is not None else (datetime.now(UTC) if self.running else None)
        duration = fmt_duration(end - self.start) if (end and self.start) else ""
        labels = " ".join(f"{k}={v}" for k, v in self.labels.items())
        start = fmt_start(self.start)
        return (self.id[:8], self.flow_id, state_text(self.state), start, duration, self.trigger, labels)


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
        self.rows_by_id: dict[str, Summary] = {}

    def on_mount(self) -> None:
        for name in COLUMNS:
            self.add_column(name, key=name)

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
            self.add_row(*summary.cells(), key=summary.id)
        if keep is not None and keep in self.rows_by_id:
            self.move_cursor(row=self.get_row_index(keep))

    def append(self, summaries: Iterable[Summary]) -> None:
        """Add older executions below the rows shown (paging)."""
        for summary in summaries:
            if summary.id not in self.rows_by_id:
                self.rows_by_id[summary.id] = summary
                self.add_row(*summary.cells(), key=summary.id)

    def upsert(self, summary: Summary) -> bool:
        """Update a row in place (True), or add a new one in its newest-first place (False)."""
        old = self.rows_by_id.get(summary.id)
        if old is None:
            keep = self.selected_id
            self.replace_all([*self.rows_by_id.values(), summary], keep=keep)
            return False
        self.rows_by_id[summary.id] = summary
        for column, new, previous in zip(COLUMNS, summary.cells(), old.cells(), strict=True):
            if str(new) != str(previous) or column in ("state", "duration"):
                self.update_cell(summary.id, column, new)
        return True

    def tick(self) -> None:
        """Refresh the duration of running executions."""
        for summary in self.rows_by_id.values():
            if summary.running:
                self.update_cell(summary.id, "duration", summary.cells()[4])


def _newest_first(summary: Summary) -> tuple[float, str]:
    start = summary.start.timestamp() if summary.start else float("inf")
    return (-start, summary.id)
