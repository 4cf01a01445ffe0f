"""The executions pane: a keyed DataTable of execution summaries, diffed cell by cell.

Its actions act on the selected execution: kill (asks first), restart, resume (through a form when
a Pause task declares onResume inputs) and replay (asks first; from the task run selected in the
detail pane's task tree when that has the focus). The command palette calls the same methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Unpack

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from tiercel.engine import (
    CORRELATION_ID,
    EngineCommandError,
    Execution,
    InputError,
    InputSpec,
    Permission,
    StateType,
)

from ..actions import show_execution_source
from ..host import dashboard, refusal, said_no
from ..screens.confirm import ConfirmScreen
from ..screens.run_form import ResumeFormScreen
from . import VIM_LIST_KEYS, WidgetArgs
from .detail import DetailPane
from .shown import shown
from .states import fmt_duration, fmt_start, state_text

COLUMNS = ("id", "flow", "state", "start", "duration", "trigger", "labels")
#: The commands an execution takes, each needing EXECUTE in its namespace.
EXECUTION_COMMANDS = frozenset({"kill", "restart", "resume", "replay"})
HEADERS = ("id", "flow", "state", "start", "took", "trigger", "labels")
HEADER_WIDTHS = tuple(len(header) + 1 for header in HEADERS)
ID_WIDTH = 6
# The narrowest each column is laid out (its one-space gap included), so that the usual cells fit
# without the table being laid out again: a RUNNING state, a start today, a duration up to 99h59m.
MIN_WIDTHS = (ID_WIDTH + 1, 5, 10, 9, 6, 8, 0)
FLOW, LABELS = COLUMNS.index("flow"), COLUMNS.index("labels")
# A flow id is cut no shorter than this (its start and an ellipsis: the other columns all fit at 80
# columns, when the table is 54 wide); labels narrower than this give their room to the flow id.
MIN_FLOW_WIDTH = 9
MIN_LABELS_WIDTH = 8


def gap(cell: object) -> Text:
    """A cell with the one-space gap that separates it from the column on its left.

    A cell wider than its column ends with an ellipsis (the columns are laid out to the table's width).
    """
    return Text.assemble(" ", cell if isinstance(cell, Text) else str(cell), overflow="ellipsis")


def fit_columns(width: int, widest: Sequence[int]) -> tuple[int, ...]:
    """Column widths for a table `width` cells wide, from each column's widest cell (gap included).

    Every column but flow and labels gets its widest cell. The flow id gets its own from what is
    left, cut (down to MIN_FLOW_WIDTH) only to leave labels some room; labels take the rest, which
    may be nothing in a narrow table. A table narrower than all that scrolls sideways.
    """
    widths = [max(found, least) for found, least in zip(widest, MIN_WIDTHS, strict=True)]
    rest = width - sum(w for i, w in enumerate(widths) if i not in (FLOW, LABELS))
    flow = min(widths[FLOW], max(rest - MIN_LABELS_WIDTH, MIN_FLOW_WIDTH))
    if rest - flow < MIN_LABELS_WIDTH:  # a sliver of labels says less than the flow id would
        flow = min(widths[FLOW], max(rest, MIN_FLOW_WIDTH))
    widths[FLOW] = flow
    widths[LABELS] = max(rest - flow, 0)
    return tuple(widths)


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

    def cells(self) -> tuple[Text, ...]:
        """Cell values in column order, whole (the table cuts them to fit); control characters shown."""
        end = self.end if self.end is not None else (datetime.now(UTC) if self.running else None)
        duration = fmt_duration(end - self.start) if (end and self.start) else ""
        # The correlation id every execution carries stays out of the list (the filter still sees it).
        labels = " ".join(f"{k}={v}" for k, v in self.labels.items() if k != CORRELATION_ID)
        start = fmt_start(self.start)
        values = (
            shown(self.id[:ID_WIDTH]),
            shown(self.flow_id),
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
        Binding("slash", "app.filter_executions", "Filter", id="tiercel.executions.filter"),
        Binding("y", "execution_source", "Source", id="tiercel.executions.source"),
        # In a row table DataTable's own home and end scroll sideways: here they go to the first and last row.
        Binding("home", "scroll_top", "First", show=False, id="tiercel.executions.first"),
        Binding("end", "scroll_bottom", "Last", show=False, id="tiercel.executions.last"),
        *VIM_LIST_KEYS,
    ]

    def __init__(self, **kwargs: Unpack[WidgetArgs]) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        # Gaps come from the cells themselves (one space on the left) to fit 80 columns.
        self.cell_padding = 0
        self.rows_by_id: dict[str, Summary] = {}
        # Each column's widest cell (header included) among the rows shown, and the widths laid out.
        self.widest = HEADER_WIDTHS
        self.widths: tuple[int, ...] = ()
        # An execution just started or replayed: selected as soon as its row shows.
        self.following: str | None = None

    def on_mount(self) -> None:
        self._add_columns()

    def on_resize(self) -> None:
        if self._fitted() != self.widths:
            self.replace_all(list(self.rows_by_id.values()), keep=self.selected_id)

    def cells(self, summary: Summary) -> tuple[Text, ...]:
        return summary.cells()

    # -- column widths --------------------------------------------------------------------------------
    def _fitted(self) -> tuple[int, ...]:
        """The widths for the table's width now, the vertical scrollbar's room always kept.

        Keeping it even when the rows fit means the widths do not change when a scrollbar comes and
        goes (which would make a horizontal one appear for a column's worth).
        """
        width = self.size.width - self.styles.scrollbar_size_vertical
        return fit_columns(width, self.widest)

    def _add_columns(self) -> None:
        self.widths = self._fitted()
        for name, header, width in zip(COLUMNS, HEADERS, self.widths, strict=True):
            self.add_column(gap(header), key=name, width=width)

    def _grows(self, rows: Iterable[tuple[Text, ...]]) -> bool:
        """Take these rows' cells into each column's widest; True when a column needs more room."""
        widest = list(self.widest)
        for cells in rows:
            widest = [max(w, cell.cell_len) for w, cell in zip(widest, cells, strict=True)]
        grown = tuple(widest) != self.widest
        self.widest = tuple(widest)
        return grown and self._fitted() != self.widths

    @property
    def selected_id(self) -> str | None:
        """The id of the execution under the cursor."""
        if not self.rows_by_id or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return str(key.value) if key.value is not None else None

    @property
    def selected(self) -> Summary | None:
        """The execution under the cursor."""
        execution_id = self.selected_id
        return self.rows_by_id.get(execution_id) if execution_id else None

    def follow(self, execution_id: str) -> None:
        """Select an execution now when its row is shown, else as soon as it shows."""
        self.following = execution_id
        self.select_followed()

    def select_followed(self) -> None:
        """Move the cursor to the execution being followed once its row is there."""
        if self.following is not None and self.following in self.rows_by_id:
            self.move_cursor(row=self.get_row_index(self.following))
            self.following = None

    def replace_all(self, summaries: Iterable[Summary], keep: str | None = None) -> None:
        """Show exactly these executions, newest first, keeping the cursor on `keep`.

        The columns are laid out again for these rows: DataTable has no call to resize a column.
        """
        ordered = sorted(summaries, key=_newest_first)
        rows = [(summary, self.cells(summary)) for summary in ordered]
        self.widest = HEADER_WIDTHS
        self._grows(cells for _, cells in rows)  # the widths are laid out below in any case
        self.clear(columns=True)
        self._add_columns()
        self.rows_by_id = {s.id: s for s in ordered}
        for summary, cells in rows:
            self.add_row(*cells, key=summary.id)
        if keep is not None and keep in self.rows_by_id:
            self.move_cursor(row=self.get_row_index(keep))

    def append(self, summaries: Iterable[Summary]) -> None:
        """Add older executions below the rows shown (paging)."""
        rows = [(s, self.cells(s)) for s in summaries if s.id not in self.rows_by_id]
        if self._grows(cells for _, cells in rows):
            self.replace_all([*self.rows_by_id.values(), *(s for s, _ in rows)], keep=self.selected_id)
            return
        for summary, cells in rows:
            self.rows_by_id[summary.id] = summary
            self.add_row(*cells, key=summary.id)

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
        cells = self.cells(summary)
        if self._grows([cells]):
            self.replace_all(list(self.rows_by_id.values()), keep=self.selected_id)
            return
        for column, new, previous in zip(COLUMNS, cells, self.cells(old), strict=True):
            if str(new) != str(previous) or column in ("state", "duration"):
                self.update_cell(summary.id, column, new)

    def tick(self) -> None:
        """Refresh the duration of running executions."""
        for summary in self.rows_by_id.values():
            if summary.running:
                self.update_cell(summary.id, "duration", self.cells(summary)[4])

    # -- availability -------------------------------------------------------------------------------
    def refused(self, action: str) -> str | None:
        """Why the person may not give the command to its execution (the selected one, the one to
        replay); None when they may, or for another action."""
        if action not in EXECUTION_COMMANDS:
            return None
        target = self.replay_target() if action == "replay" else None
        execution_id = target[0] if target is not None else self.selected_id
        namespace = self._namespace_of(execution_id) if execution_id is not None else None
        return refusal(self, namespace, Permission.EXECUTE) if namespace is not None else None

    def _namespace_of(self, execution_id: str) -> str | None:
        summary = self.rows_by_id.get(execution_id)
        if summary is not None:
            return summary.namespace
        execution = self._detail().execution
        return execution.namespace if execution is not None and execution.id == execution_id else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out the execution commands that do not apply to the selected execution (or that the
        person may not give: the key then says why when pressed)."""
        if self.refused(action) is not None:
            return None
        if action == "replay":
            target = self.replay_target()
            return True if target is not None and self._terminated(target[0]) else None
        selected = self.selected
        state = selected.state if selected else None
        if action == "kill":
            return True if state and not StateType(state).is_terminated else None
        if action == "restart":
            return True if state in ("FAILED", "KILLED") else None
        if action == "resume":
            return True if state == "PAUSED" else None
        return super().check_action(action, parameters)

    def _detail(self) -> DetailPane:
        return self.screen.query_one(DetailPane)

    def replay_target(self) -> tuple[str, str | None] | None:
        """The execution to replay and the task run to replay from (when the task tree has it)."""
        start = self._detail().replay_start()
        if start is not None:
            return start
        selected = self.selected
        return (selected.id, None) if selected is not None else None

    def _terminated(self, execution_id: str) -> bool:
        summary = self.rows_by_id.get(execution_id)
        if summary is not None:
            return StateType(summary.state).is_terminated
        execution = self._detail().execution
        return (
            execution is not None and execution.id == execution_id and execution.state.current.is_terminated
        )

    # -- execution commands ---------------------------------------------------------------------------
    def action_kill(self) -> None:
        selected = self.selected
        if selected is not None:
            self.confirm_kill(selected.id, selected.flow_id)

    def confirm_kill(self, execution_id: str, flow_id: str) -> None:
        """Ask, then kill; the dialog's default answer is No."""

        async def answered(yes: bool | None) -> None:
            engine = dashboard(self).engine
            if yes and engine is not None:
                await self._send("kill", execution_id, engine.kill)

        self.app.push_screen(ConfirmScreen(f"Kill execution {execution_id[:8]} of {flow_id}?"), answered)

    async def action_restart(self) -> None:
        selected = self.selected
        if selected is not None:
            await self.restart(selected.id)

    async def restart(self, execution_id: str) -> None:
        """Restart a FAILED or KILLED execution from its failed task runs."""
        engine = dashboard(self).engine
        if engine is not None:
            await self._send("restart", execution_id, engine.restart)

    async def action_resume(self) -> None:
        selected = self.selected
        if selected is not None:
            await self.resume(selected.id)

    async def resume(self, execution_id: str) -> None:
        """Resume a paused execution, through a form when its Pause task declares onResume inputs."""
        engine = dashboard(self).engine
        if engine is None:
            return
        form = await self._resume_form(execution_id)
        refused = refusal(self, form.flow.namespace, Permission.EXECUTE) if form else None
        if said_no(self, refused, "Cannot resume"):  # before the form is filled in
            return
        if form is not None:
            self.app.push_screen(form, self._resumed)
            return
        await self._send("resume", execution_id, engine.resume)

    async def _resume_form(self, execution_id: str) -> ResumeFormScreen | None:
        engine = dashboard(self).engine
        if engine is None:
            return None
        execution = await engine.execution(execution_id)
        if execution is None:
            return None
        flow = engine.flows.get((execution.namespace, execution.flow_id))
        if flow is None:
            return None
        tasks = flow.tasks_by_id
        for run in execution.task_runs:
            task = tasks.get(run.task_id)
            if run.state.current is not StateType.PAUSED or task is None:
                continue
            specs = task.props.get("onResume")
            if isinstance(specs, tuple) and specs and all(isinstance(s, InputSpec) for s in specs):
                return ResumeFormScreen(engine, flow, execution_id, specs)
        return None

    def _resumed(self, execution_id: str | None) -> None:
        if execution_id is not None:
            self.app.notify(f"Resume sent to {execution_id[:8]}")

    def action_replay(self) -> None:
        target = self.replay_target()
        if target is not None:
            self.confirm_replay(*target)

    def confirm_replay(self, execution_id: str, task_run_id: str | None) -> None:
        """Ask, then replay (from a task run, or from the start) and select the new execution."""
        where = "from its start"
        execution = self._detail().execution
        if task_run_id is not None and execution is not None and execution.id == execution_id:
            run = execution.task_runs_by_id.get(task_run_id)
            if run is not None:
                where = f"from task {run.task_id}" + (f" [{run.value}]" if run.value is not None else "")

        async def answered(yes: bool | None) -> None:
            host = dashboard(self)
            if not yes or host.engine is None:
                return
            try:
                new_id = await host.engine.replay(execution_id, task_run_id)
            except (EngineCommandError, InputError) as error:
                self.app.notify(str(error), title="Cannot replay", severity="error")
                return
            self.focus()
            host.started(new_id)

        self.app.push_screen(ConfirmScreen(f"Replay execution {execution_id[:8]} {where}?"), answered)

    async def _send(self, verb: str, execution_id: str, send: Callable[[str], Awaitable[None]]) -> None:
        """Send a command to the engine; its refusal shows as a notification."""
        try:
            await send(execution_id)
        except (EngineCommandError, InputError) as error:
            self.app.notify(str(error), title=f"Cannot {verb}", severity="error")
            return
        self.app.notify(f"{verb.capitalize()} sent to {execution_id[:8]}")

    async def action_execution_source(self) -> None:
        """The source of the flow revision the selected execution ran."""
        selected = self.selected
        if selected is not None:
            await show_execution_source(self, selected.id)


def _newest_first(summary: Summary) -> tuple[float, str]:
    start = summary.start.timestamp() if summary.start else float("inf")
    return (-start, summary.id)
