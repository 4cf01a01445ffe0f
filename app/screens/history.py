"""The history of a flow or a namespace, in pictures.

For a flow: its last executions as bars (duration and state, oldest left) with a summary line, below
them, when the screen is tall enough, its executions per state over time, and a table of its tasks
over its last `TASK_SCAN` ended executions: durations, CPU time and peak memory (task_figures.py).
For a namespace (and the namespaces below it): executions per state over time, and a table of each
flow's last state, success rate and durations. Both show how the flows' tests went when `tiercel
test` last ran them (`tests_folder` holds its results).

The dashboard opens it with `HistoryScreen(engine, namespace, flow_id)` (flow_id None for a
namespace). It reads executions through `ExecutionSource` alone, at most `scan` of them, newest
first. `r` reads them again; the dashboard may also call `executions_changed()` on every batch of
ExecutionChanged events, which rereads at most once a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Protocol

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Label

from tiercel.engine import Execution, ExecutionSummary, FlowTestSummary, load_summaries, utcnow, visible

from ..widgets.flow_stats import COLUMNS, flow_stats, untested_cells
from ..widgets.history_chart import MAX_BARS, HistoryChart
from ..widgets.state_chart import StateChart
from ..widgets.task_figures import COLUMNS as TASK_COLUMNS, task_figures

#: How many executions a history reads at most (newest first): enough for weeks of an hourly flow.
SCAN = 5_000
PAGE = 500
#: Below this height a flow's history shows its bars only.
BOTH_CHARTS_HEIGHT = 30
#: How many of a flow's last ended executions its table of tasks covers.
TASK_SCAN = 50
#: The least time between two rereads caused by `executions_changed`.
REREAD_SECONDS = 1.0


class ExecutionSource(Protocol):
    """Where the history reads executions: `Engine.list_executions` (a page, newest first), and whole
    executions (`Engine.execution`) for a flow's table of tasks."""

    async def execution(self, execution_id: str) -> Execution | None: ...

    async def list_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[ExecutionSummary]: ...


async def read_executions(
    source: ExecutionSource, namespace: str, flow_id: str | None, scan: int = SCAN
) -> tuple[list[ExecutionSummary], bool]:
    """The newest executions of a flow (or of a namespace and those below it), and whether more exist.

    The store matches a namespace with the ones below it; a flow's history keeps its own namespace.
    """
    found: list[ExecutionSummary] = []
    before: str | None = None
    read = 0
    while True:
        # Past `scan`, one more row only tells whether older executions were left out.
        limit = min(PAGE, scan - read) if read < scan else 1
        page = await source.list_executions(
            namespace=namespace or None, flow_id=flow_id, limit=limit, before=before
        )
        if read >= scan:
            return found, bool(page)
        read += len(page)
        found.extend(row for row in page if flow_id is None or row.namespace == namespace)
        if len(page) < limit:
            return found, False
        before = page[-1].cursor


class HistoryScreen(ModalScreen[None]):
    """Charts of a flow's or a namespace's executions; escape or q closes it."""

    DEFAULT_CSS = """
    HistoryScreen { align: center top; }
    #history-view {
        width: 100%; height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    #history-title { height: 1; width: 100%; }
    #history-bars { height: 1fr; min-height: 6; }
    #history-states { height: 1fr; min-height: 6; margin-top: 1; }
    #history-flows { height: 1fr; margin-top: 1; }
    #history-tasks { height: 1fr; min-height: 4; margin-top: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reread", "Refresh", id="tiercel.history.refresh"),
        Binding("escape,q", "close", "Close", id="tiercel.history.close"),
    ]

    def __init__(
        self,
        source: ExecutionSource,
        namespace: str,
        flow_id: str | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        scan: int = SCAN,
        tests_folder: Path | None = None,
        readable: Callable[[str], bool] = lambda namespace: True,
    ) -> None:
        super().__init__()
        self.tests_folder = tests_folder
        self.readable = readable  # the namespaces whose flows' tests may be shown
        self.tests: dict[tuple[str, str], FlowTestSummary] = {}
        self.source = source
        self.namespace = namespace
        self.flow_id = flow_id
        self.clock = clock
        self.scan = scan
        self.executions: list[ExecutionSummary] = []
        self.more = False
        self.loaded = 0  # how many times the executions were read: tests wait on it
        # Whole ended executions read for the table of tasks (None: gone); `tasks_loaded` counts fills.
        self._ended: dict[str, Execution | None] = {}
        self.tasks_loaded = 0
        self._reread: Timer | None = None

    @property
    def target(self) -> str:
        """What the history is of: the flow's full name, or the namespace ("all namespaces" at the root)."""
        if self.flow_id is not None:
            return f"{self.namespace}.{self.flow_id}" if self.namespace else self.flow_id
        return self.namespace or "all namespaces"

    def compose(self) -> ComposeResult:
        with Vertical(id="history-view"):
            yield Label(visible(f"History of {self.target}"), id="history-title", markup=False)
            if self.flow_id is not None:
                yield HistoryChart(self.clock, id="history-bars")
            yield StateChart(self.clock, id="history-states")
            if self.flow_id is None:
                yield DataTable(id="history-flows", cursor_type="row", zebra_stripes=False)
            else:
                yield DataTable(id="history-tasks", cursor_type="row", zebra_stripes=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#history-view").border_title = "History"
        table = self.query_one("#history-flows" if self.flow_id is None else "#history-tasks", DataTable)
        for name in COLUMNS if self.flow_id is None else TASK_COLUMNS:
            table.add_column(name, key=name)
        table.focus()
        self._fit(self.size.height)
        self.reread()
        # Bars of running executions grow: redraw while one runs (no store read).
        self.set_interval(1.0, self._tick)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, height: int) -> None:
        """A flow's state chart only when there is room for both charts."""
        if self.flow_id is not None:
            self.query_one(StateChart).display = height >= BOTH_CHARTS_HEIGHT

    def _tick(self) -> None:
        if any(row.end_date is None for row in self.executions):
            for chart in self.query(HistoryChart):
                chart.refresh()
            for states in self.query(StateChart):
                states.refresh()

    def executions_changed(self) -> None:
        """Executions changed somewhere: read them again soon (at most once per REREAD_SECONDS)."""
        if self._reread is None:
            self._reread = self.set_timer(REREAD_SECONDS, self._reread_now)

    def _reread_now(self) -> None:
        self._reread = None
        self.reread()

    def action_reread(self) -> None:
        self.reread()

    def action_close(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="history")
    async def reread(self) -> None:
        """Read the executions and redraw the charts (and the table of flows)."""
        rows, more = await read_executions(self.source, self.namespace, self.flow_id, self.scan)
        if self.tests_folder is not None:
            found = load_summaries(self.tests_folder)
            self.tests = {uid: summary for uid, summary in found.items() if self.readable(uid[0])}
        self.show(rows, more)
        if self.flow_id is not None:  # then the table of tasks, from the whole executions
            await self._read_ended(rows)
            self._fill_tasks()

    async def _read_ended(self, rows: Sequence[ExecutionSummary]) -> None:
        """Read the whole of the last ended executions (an ended one does not change: read once)."""
        wanted = [row.id for row in rows if row.end_date is not None][:TASK_SCAN]
        for execution_id in wanted:
            if execution_id not in self._ended:
                # None for one purged meanwhile: not asked for again.
                self._ended[execution_id] = await self.source.execution(execution_id)
        self._ended = {key: self._ended[key] for key in wanted if key in self._ended}

    def show(self, rows: Sequence[ExecutionSummary], more: bool) -> None:
        """Draw these executions (newest first, as read)."""
        self.executions, self.more = list(rows), more
        title = f"History of {self.target}: {len(rows):,} execution{'s' * (len(rows) != 1)}"
        if more:
            title += f" (the newest {len(rows):,}; older ones are not counted)"
        tests = self.tests.get((self.namespace, self.flow_id)) if self.flow_id is not None else None
        if tests is not None:
            title += f"; tests: {tests.described()}"
        self.query_one("#history-title", Label).update(visible(title))
        if self.flow_id is not None:
            self.query_one(HistoryChart).show(rows[:MAX_BARS])
        self.query_one(StateChart).show(rows)
        if self.flow_id is None:
            self._fill_table(rows)
        self.loaded += 1

    def _fill_tasks(self) -> None:
        table = self.query_one("#history-tasks", DataTable)
        with self.app.batch_update():
            table.clear()
            ended = [execution for execution in self._ended.values() if execution is not None]
            for figures in task_figures(ended):
                table.add_row(*figures.cells(), key=figures.task_id)
        self.tasks_loaded += 1

    def _fill_table(self, rows: Sequence[ExecutionSummary]) -> None:
        table = self.query_one("#history-flows", DataTable)
        now = self.clock()
        with self.app.batch_update():
            table.clear()
            shown = set()
            for stats in flow_stats(rows, now):
                tests = self.tests.get((stats.namespace, stats.flow_id))
                cells = stats.cells(self.namespace, now, tests)
                table.add_row(*cells, key=f"{stats.namespace}\0{stats.flow_id}")
                shown.add((stats.namespace, stats.flow_id))
            # Flows tested but never run here still show how their tests went.
            for (namespace, flow_id), tests in sorted(self.tests.items()):
                inside = not self.namespace or f"{namespace}.".startswith(f"{self.namespace}.")
                if inside and (namespace, flow_id) not in shown:
                    cells = untested_cells(self.namespace, namespace, flow_id, tests)
                    table.add_row(*cells, key=f"{namespace}\0{flow_id}")
