"""The triggers of one flow: on/off, last and next dates, backfills with their progress, live.

The trigger commands are functions of the dashboard node they start from, so that this view (which
acts on its selection) and the command palette (which names its target) share them. Refusals show
as notifications. Each needs EXECUTE in the flow's namespace (a backfill starts executions, and
turning a trigger off stops them), asked before a form or a question opens.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label, ProgressBar, Static

from tiercel.engine import BackfillAction, EngineCommandError, Permission, SchedulerError, TriggerState

from ..host import dashboard, refusal, said_no
from ..widgets.trigger_rows import backfill_summary, is_schedule, row_cells, under_way
from .backfill_form import BackfillFormScreen
from .confirm import ConfirmScreen

COLUMNS = ("id", "type", "on", "last", "next", "backfill")
BACKFILL_VERBS: dict[BackfillAction, str] = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


def refused(node: DOMNode, namespace: str, title: str) -> bool:
    """Whether the person may not command the namespace's triggers (then said, under `title`)."""
    return said_no(node, refusal(node, namespace, Permission.EXECUTE), title)


async def set_trigger_enabled(
    node: DOMNode, namespace: str, flow_id: str, trigger_id: str, enabled: bool
) -> None:
    """Turn a trigger on or off."""
    host = dashboard(node)
    if host.engine is None or refused(node, namespace, "Cannot change the trigger"):
        return
    try:
        await host.engine.set_trigger_enabled(namespace, flow_id, trigger_id, enabled)
    except (SchedulerError, EngineCommandError) as error:
        node.app.notify(str(error), title="Cannot change the trigger", severity="error")
        return
    await host.refresh_triggers()
    node.app.notify(f"Trigger {flow_id}.{trigger_id} {'enabled' if enabled else 'disabled'}")


def open_backfill_form(node: DOMNode, namespace: str, flow_id: str, trigger_id: str) -> None:
    """The backfill form of a Schedule trigger."""
    engine = dashboard(node).engine
    flow = engine.flows.get((namespace, flow_id)) if engine is not None else None
    if engine is None or flow is None or refused(node, namespace, "Cannot backfill"):
        return

    def started(backfill_id: str | None) -> None:
        if backfill_id is not None:
            node.app.notify(f"Backfill {backfill_id[:8]} of {flow_id}.{trigger_id} started")

    node.app.push_screen(BackfillFormScreen(engine, flow, trigger_id), started)


async def change_backfill(
    node: DOMNode, action: BackfillAction, namespace: str, flow_id: str, trigger_id: str
) -> None:
    """Pause, resume or cancel a trigger's backfill."""
    engine = dashboard(node).engine
    if engine is None or refused(node, namespace, f"Cannot {action} the backfill"):
        return
    try:
        await engine.change_backfill(namespace, flow_id, trigger_id, action)
    except (SchedulerError, EngineCommandError) as error:
        node.app.notify(str(error), title=f"Cannot {action} the backfill", severity="error")
        return
    node.app.notify(f"Backfill of {flow_id}.{trigger_id} {BACKFILL_VERBS[action]}")


def confirm_cancel_backfill(node: DOMNode, namespace: str, flow_id: str, trigger_id: str) -> None:
    """Ask, then cancel the backfill for good; the dialog's default answer is No."""
    if refused(node, namespace, "Cannot cancel the backfill"):
        return

    async def answered(yes: bool | None) -> None:
        if yes:
            await change_backfill(node, "cancel", namespace, flow_id, trigger_id)

    question = f"Cancel the backfill of {flow_id}.{trigger_id}? Slots not fired yet are dropped."
    node.app.push_screen(ConfirmScreen(question), answered)


class TriggersScreen(ModalScreen[None]):
    """A flow's triggers; the app refreshes it on every TriggerChanged event."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "on_off", "On/off", id="tiercel.triggers.on_off"),
        Binding("b", "backfill", "Backfill", id="tiercel.triggers.backfill"),
        Binding("p", "pause", "Pause", id="tiercel.triggers.pause"),
        Binding("u", "resume", "Resume", id="tiercel.triggers.resume"),
        Binding("c", "cancel", "Cancel backfill", id="tiercel.triggers.cancel"),
        Binding("escape,q", "close", "Close", id="tiercel.triggers.close"),
    ]

    def __init__(self, namespace: str, flow_id: str) -> None:
        super().__init__()
        self.namespace = namespace
        self.flow_id = flow_id
        self.states: dict[str, TriggerState] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="triggers-view", classes="dialog"):
            yield Label(f"Triggers of [b]{self.namespace}.{self.flow_id}[/b]", id="triggers-title")
            yield DataTable(id="triggers", cursor_type="row", zebra_stripes=False)
            yield Static("", id="trigger-about")
            yield ProgressBar(total=1.0, show_eta=False, id="backfill-bar")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.refresh_rows()
        table.focus()

    @property
    def selected(self) -> TriggerState | None:
        """The trigger under the cursor."""
        tables = self.query(DataTable)
        if not tables or not self.states:
            return None
        table = tables.first()
        if table.cursor_row < 0 or table.cursor_row >= table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key
        return self.states.get(str(key.value))

    def refresh_rows(self) -> None:
        """Show the flow's triggers as the dashboard last read them, in place."""
        table = self.query_one(DataTable)
        states = {s.trigger_id: s for s in dashboard(self).trigger_list(self.namespace, self.flow_id)}
        if list(states) != list(self.states):
            keep = self.selected
            table.clear()
            for trigger_id, state in states.items():
                table.add_row(*row_cells(state), key=trigger_id)
            if keep is not None and keep.trigger_id in states:
                table.move_cursor(row=table.get_row_index(keep.trigger_id))
        else:
            for trigger_id, state in states.items():
                if state != self.states[trigger_id]:
                    for column, cell in zip(COLUMNS, row_cells(state), strict=True):
                        table.update_cell(trigger_id, column, cell, update_width=True)
        self.states = states
        self.show_selected()

    def show_selected(self) -> None:
        """The backfill of the selected trigger under the table, and which keys apply."""
        state = self.selected
        about = self.query_one("#trigger-about", Static)
        progress = self.query_one("#backfill-bar", ProgressBar)
        if state is None:
            about.update("This flow has no triggers.")
            progress.display = False
        else:
            lines = [backfill_summary(state.backfill) if is_schedule(state) else "Only schedules backfill."]
            if state.disabled:
                lines.append("Disabled in the flow (disabled: true): on/off takes effect once that goes.")
            about.update("\n".join(lines))
            progress.display = state.backfill is not None
            if state.backfill is not None:
                progress.update(progress=state.backfill.fraction)
        self.refresh_bindings()

    @on(DataTable.RowHighlighted, "#triggers")
    def _moved(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.show_selected()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out what does not apply to the selected trigger."""
        state = self.selected
        status = state.backfill.status if state is not None and state.backfill is not None else None
        if action == "on_off":
            return True if state is not None else None
        if action == "backfill":
            return True if state is not None and is_schedule(state) and not under_way(state) else None
        if action == "pause":
            return True if status == "RUNNING" else None
        if action == "resume":
            return True if status == "PAUSED" else None
        if action == "cancel":
            return True if status in ("RUNNING", "PAUSED") else None
        return True

    async def action_on_off(self) -> None:
        state = self.selected
        if state is not None:
            await set_trigger_enabled(
                self, state.namespace, state.flow_id, state.trigger_id, not state.enabled
            )

    def action_backfill(self) -> None:
        state = self.selected
        if state is not None:
            open_backfill_form(self, state.namespace, state.flow_id, state.trigger_id)

    async def action_pause(self) -> None:
        await self._change_backfill("pause")

    async def action_resume(self) -> None:
        await self._change_backfill("resume")

    def action_cancel(self) -> None:
        state = self.selected
        if state is not None:
            confirm_cancel_backfill(self, state.namespace, state.flow_id, state.trigger_id)

    async def _change_backfill(self, action: BackfillAction) -> None:
        state = self.selected
        if state is not None:
            await change_backfill(self, action, state.namespace, state.flow_id, state.trigger_id)

    def action_close(self) -> None:
        self.dismiss(None)
