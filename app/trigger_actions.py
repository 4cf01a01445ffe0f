"""What the dashboard's trigger keys and commands do: on/off, the triggers view, backfills.

Like the execution commands, each method names its target so that the triggers view (which acts on
its selection) and the command palette share them.
"""

from __future__ import annotations

from textual.app import App

from tiercel.engine.engine import Engine
from tiercel.engine.model import Flow
from tiercel.engine.triggers.schedule import SchedulerError, TriggerState

from .screens.backfill_form import BackfillFormScreen
from .screens.confirm import ConfirmScreen
from .screens.triggers import TriggersScreen
from .widgets.namespaces import NamespaceTree

BACKFILL_VERBS = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


class TriggerActions(App[None]):
    """Trigger commands through the engine's scheduler; refusals show as notifications."""

    engine: Engine | None

    @property
    def ns_tree(self) -> NamespaceTree:
        return self.query_one(NamespaceTree)

    def trigger_list(self, namespace: str | None = None, flow_id: str | None = None) -> list[TriggerState]:
        """The scheduler's triggers, of one flow when named."""
        if self.engine is None:
            return []
        return [
            state
            for state in self.engine.scheduler.triggers()
            if namespace is None or (state.namespace, state.flow_id) == (namespace, flow_id)
        ]

    def trigger_states(self) -> dict[tuple[str, str, str], bool]:
        """Whether each trigger of the current flows is enabled (by command), from the scheduler."""
        return {
            (state.namespace, state.flow_id, state.trigger_id): state.enabled for state in self.trigger_list()
        }

    def refresh_triggers(self) -> None:
        """Show trigger state where it is on screen: the flows' badges and any open triggers view."""
        states = self.trigger_states()
        self.ns_tree.set_disabled_triggers({key for key, enabled in states.items() if not enabled})
        for screen in self.screen_stack:
            if isinstance(screen, TriggersScreen):
                screen.refresh_rows()

    async def set_trigger_enabled(self, namespace: str, flow_id: str, trigger_id: str, enabled: bool) -> None:
        """Turn a trigger on or off through the engine's scheduler."""
        if self.engine is None:
            return
        try:
            await self.engine.scheduler.set_enabled(namespace, flow_id, trigger_id, enabled)
        except SchedulerError as error:
            self.notify(str(error), title="Cannot change the trigger", severity="error")
            return
        self.refresh_triggers()
        self.notify(f"Trigger {flow_id}.{trigger_id} {'enabled' if enabled else 'disabled'}")

    def show_triggers(self, flow: Flow) -> None:
        """The triggers view of a flow."""
        self.push_screen(TriggersScreen(flow.namespace, flow.id))

    def open_backfill_form(self, namespace: str, flow_id: str, trigger_id: str) -> None:
        """The backfill form of a Schedule trigger."""
        flow = self.engine.flows.get((namespace, flow_id)) if self.engine is not None else None
        if self.engine is None or flow is None:
            return

        def started(backfill_id: str | None) -> None:
            if backfill_id is not None:
                self.notify(f"Backfill {backfill_id[:8]} of {flow_id}.{trigger_id} started")

        self.push_screen(BackfillFormScreen(self.engine, flow, trigger_id), started)

    async def backfill_command(self, command: str, namespace: str, flow_id: str, trigger_id: str) -> None:
        """Pause, resume or cancel a trigger's backfill."""
        if self.engine is None:
            return
        scheduler = self.engine.scheduler
        send = {
            "pause": scheduler.pause_backfill,
            "resume": scheduler.resume_backfill,
            "cancel": scheduler.cancel_backfill,
        }[command]
        try:
            await send(namespace, flow_id, trigger_id)
        except SchedulerError as error:
            self.notify(str(error), title=f"Cannot {command} the backfill", severity="error")
            return
        self.notify(f"Backfill of {flow_id}.{trigger_id} {BACKFILL_VERBS[command]}")

    def confirm_cancel_backfill(self, namespace: str, flow_id: str, trigger_id: str) -> None:
        """Ask, then cancel the backfill for good; the dialog's default answer is No."""

        async def answered(yes: bool | None) -> None:
            if yes:
                await self.backfill_command("cancel", namespace, flow_id, trigger_id)

        question = f"Cancel the backfill of {flow_id}.{trigger_id}? Slots not fired yet are dropped."
        self.push_screen(ConfirmScreen(question), answered)
