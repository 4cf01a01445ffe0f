"""What the dashboard's keys and commands do: engine commands, editors, viewers, confirmations.

The methods that take explicit arguments (run_flow, confirm_kill, ...) are shared by the key
bindings, which act on the selection, and by the command palette, which names its target.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path

from textual.screen import ModalScreen

from tiercel.engine.engine import Engine, EngineCommandError
from tiercel.engine.inputs import InputError
from tiercel.engine.model import Flow, InputSpec, StateType

from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.revisions import RevisionsScreen
from .screens.run_form import ResumeFormScreen, RunFormScreen
from .screens.viewer import ViewerScreen
from .trigger_actions import TriggerActions
from .widgets.detail import DetailPane, TaskRunTree
from .widgets.executions import ExecutionsTable, Summary
from .widgets.namespaces import NamespaceTree, NodeRef

PANES = {"namespaces": "#namespaces", "executions": "#executions", "detail": "#log"}
MODAL_GATED = (
    "run_flow",
    "kill",
    "restart",
    "resume",
    "replay",
    "edit_flow",
    "revisions",
    "triggers",
    "focus_pane",
    "help",
    "command_palette",
)


def editor_command() -> list[str]:
    """$EDITOR, else $VISUAL, else vi, split as a shell would."""
    return shlex.split(os.environ.get("EDITOR") or os.environ.get("VISUAL") or "vi")


class DashboardActions(TriggerActions):
    """The actions of the dashboard; TiercelApp adds the layout and the live updates."""

    engine: Engine | None
    _follow: str | None
    _seen: dict[str, Summary]

    @property
    def ns_tree(self) -> NamespaceTree:
        return self.query_one(NamespaceTree)

    @property
    def table(self) -> ExecutionsTable:
        return self.query_one(ExecutionsTable)

    @property
    def detail(self) -> DetailPane:
        return self.query_one(DetailPane)

    @property
    def selected_ref(self) -> NodeRef | None:
        node = self.ns_tree.cursor_node
        return node.data if node is not None else None

    @property
    def selected_flow(self) -> Flow | None:
        ref = self.selected_ref
        if self.engine is None or ref is None or ref.kind != "flow":
            return None
        return self.engine.flows.get((ref.namespace, ref.flow_id))

    @property
    def selected_execution(self) -> Summary | None:
        execution_id = self.table.selected_id
        return self.table.rows_by_id.get(execution_id) if execution_id else None

    @property
    def focused_pane(self) -> str | None:
        """Which pane holds the focus: namespaces, executions or detail."""
        node = self.focused
        while node is not None:
            if isinstance(node, NamespaceTree):
                return "namespaces"
            if isinstance(node, ExecutionsTable) or node.id == "executions-pane":
                return "executions"
            if isinstance(node, DetailPane):
                return "detail"
            node = node.parent  # type: ignore[assignment]
        return None

    @property
    def can_edit(self) -> bool:
        """Whether an editor can take over the terminal (not headless, and the driver can suspend)."""
        driver = self._driver
        return not self.is_headless and driver is not None and driver.can_suspend

    def replay_target(self) -> tuple[str, str | None] | None:
        """The execution to replay and the task run to replay from (when the task tree has it)."""
        detail = self.detail
        if isinstance(self.focused, TaskRunTree) and detail.execution is not None:
            run = detail.selected_run()
            if run is not None:
                return detail.execution.id, run.id
        selected = self.selected_execution
        return (selected.id, None) if selected is not None else None

    # -- availability -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out commands that do not apply to the current selection."""
        if action in MODAL_GATED and isinstance(self.screen, ModalScreen):
            return False
        if action == "run_flow":
            return True if self.selected_flow is not None else None
        if action == "edit_flow":
            flow = self.selected_flow
            return True if flow is not None and flow.path and self.can_edit else None
        if action == "revisions":
            return True if self.selected_flow is not None else None
        if action == "triggers":
            flow = self.selected_flow
            return True if flow is not None and flow.triggers else None
        if action == "replay":
            target = self.replay_target()
            return True if target is not None and self._terminated(target[0]) else None
        selected = self.selected_execution
        state = selected.state if selected else None
        if action == "kill":
            return True if state and not StateType(state).is_terminated else None
        if action == "restart":
            return True if state in ("FAILED", "KILLED") else None
        if action == "resume":
            return True if state == "PAUSED" else None
        return True

    def _terminated(self, execution_id: str) -> bool:
        summary = self.table.rows_by_id.get(execution_id) or self._seen.get(execution_id)
        return summary is not None and StateType(summary.state).is_terminated

    # -- navigation -----------------------------------------------------------------------------
    def action_focus_pane(self, pane: str) -> None:
        self.query_one(PANES[pane]).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.focused_pane))

    def go_to(self, ref: NodeRef) -> None:
        """Select a namespace or flow in the tree and focus it."""
        if self.ns_tree.select_ref(ref):
            self.ns_tree.focus()
        else:
            self.notify(f"{ref.namespace or ref.path} is not in the tree", severity="warning")

    # -- running --------------------------------------------------------------------------------
    async def action_run_flow(self) -> None:
        flow = self.selected_flow
        if flow is None:
            self.notify("Select a flow to run", severity="warning")
            return
        await self.run_flow(flow)

    async def run_flow(self, flow: Flow) -> None:
        """Run a flow: through the inputs form when it declares inputs."""
        if self.engine is None:
            return
        if flow.inputs:
            self.push_screen(RunFormScreen(self.engine, flow), self._started)
            return
        try:
            execution_id = await self.engine.trigger(flow.namespace, flow.id)
        except (InputError, EngineCommandError) as error:
            self.notify(str(error), title="Cannot run", severity="error")
            return
        self._started(execution_id)

    def _started(self, execution_id: str | None) -> None:
        if execution_id is None:
            return
        self._follow = execution_id
        if execution_id in self.table.rows_by_id:
            self._follow = None
            self.table.move_cursor(row=self.table.get_row_index(execution_id))
        self.notify(f"Execution {execution_id[:8]} started")

    # -- execution commands ---------------------------------------------------------------------
    def action_kill(self) -> None:
        selected = self.selected_execution
        if selected is not None:
            self.confirm_kill(selected.id, selected.flow_id)

    def confirm_kill(self, execution_id: str, flow_id: str) -> None:
        """Ask, then kill; the dialog's default answer is No."""

        async def answered(yes: bool | None) -> None:
            if yes:
                await self.command("kill", execution_id)

        self.push_screen(ConfirmScreen(f"Kill execution {execution_id[:8]} of {flow_id}?"), answered)

    async def action_restart(self) -> None:
        selected = self.selected_execution
        if selected is not None:
            await self.command("restart", selected.id)

    async def action_resume(self) -> None:
        selected = self.selected_execution
        if selected is not None:
            await self.resume_execution(selected.id)

    async def resume_execution(self, execution_id: str) -> None:
        """Resume a paused execution, through a form when its Pause task declares onResume inputs."""
        form = await self._resume_form(execution_id)
        if form is not None:
            self.push_screen(form, self._resumed)
            return
        await self.command("resume", execution_id)

    async def _resume_form(self, execution_id: str) -> ResumeFormScreen | None:
        if self.engine is None:
            return None
        execution = await self.engine.execution(execution_id)
        if execution is None:
            return None
        flow = self.engine.flows.get((execution.namespace, execution.flow_id))
        if flow is None:
            return None
        tasks = flow.tasks_by_id
        for run in execution.task_runs:
            task = tasks.get(run.task_id)
            if run.state.current is not StateType.PAUSED or task is None:
                continue
            specs = task.props.get("onResume")
            if isinstance(specs, tuple) and specs and all(isinstance(s, InputSpec) for s in specs):
                return ResumeFormScreen(self.engine, flow, execution_id, specs)
        return None

    def _resumed(self, execution_id: str | None) -> None:
        if execution_id is not None:
            self.notify(f"Resume sent to {execution_id[:8]}")

    def action_replay(self) -> None:
        target = self.replay_target()
        if target is not None:
            self.confirm_replay(*target)

    def confirm_replay(self, execution_id: str, task_run_id: str | None) -> None:
        """Ask, then replay (from a task run, or from the start) and select the new execution."""
        where = "from its start"
        execution = self.detail.execution
        if task_run_id is not None and execution is not None and execution.id == execution_id:
            run = execution.task_runs_by_id.get(task_run_id)
            if run is not None:
                where = f"from task {run.task_id}" + (f" [{run.value}]" if run.value is not None else "")

        async def answered(yes: bool | None) -> None:
            if not yes or self.engine is None:
                return
            try:
                new_id = await self.engine.replay(execution_id, task_run_id)
            except (EngineCommandError, InputError) as error:
                self.notify(str(error), title="Cannot replay", severity="error")
                return
            self.table.focus()
            self._started(new_id)

        self.push_screen(ConfirmScreen(f"Replay execution {execution_id[:8]} {where}?"), answered)

    async def command(self, command: str, execution_id: str) -> None:
        """Send kill, restart or resume to the engine; its refusal shows as a notification."""
        if self.engine is None:
            return
        try:
            if command == "kill":
                await self.engine.kill(execution_id)
            elif command == "restart":
                await self.engine.restart(execution_id)
            else:
                await self.engine.resume(execution_id)
        except (EngineCommandError, InputError) as error:
            self.notify(str(error), title=f"Cannot {command}", severity="error")
            return
        self.notify(f"{command.capitalize()} sent to {execution_id[:8]}")

    # -- flow files and sources -----------------------------------------------------------------
    async def action_edit_flow(self) -> None:
        flow = self.selected_flow
        if flow is not None and self.can_edit:
            await self.edit_flow(flow)

    async def edit_flow(self, flow: Flow) -> None:
        """Open the flow's file in the user's editor, then load the saved file at once."""
        if flow.path is None or self.engine is None:
            return
        command = [*editor_command(), flow.path]
        # Awaited, not run blocking: the engine shares this event loop and must keep running (tasks,
        # schedules, webhooks, the control channel) while the editor is open. The batch holds every
        # screen update until the dashboard has the terminal back, so nothing is drawn over the editor.
        with self.batch_update(), self.suspend():
            try:
                editor = await asyncio.create_subprocess_exec(*command)
                await editor.wait()
            except OSError as error:
                failure: OSError | None = error
            else:
                failure = None
        if failure is not None:
            self.notify(f"{command[0]}: {failure}", title="Cannot start the editor", severity="error")
            return
        await self.reload_flows([Path(flow.path)])

    async def reload_flows(self, paths: list[Path]) -> None:
        """Load changed flow files now rather than waiting for the watcher."""
        if self.engine is not None:
            await self.engine.sync_flows(paths)

    def action_show_source(self) -> None:
        """The selected flow's YAML, or a file in error with its errors above it."""
        ref = self.selected_ref
        if self.engine is None or ref is None:
            return
        if ref.kind == "flow":
            flow = self.engine.flows.get((ref.namespace, ref.flow_id))
            if flow is not None:
                self.show_flow_source(flow)
                return
        elif ref.kind == "error":
            try:
                text = Path(ref.path).read_text(encoding="utf-8", errors="replace")
            except OSError as error:
                text = f"# cannot read the file: {error}"
            notes = [str(error) for error in self.engine.flow_errors.get(ref.path, [])]
            self.push_screen(ViewerScreen(ref.path, text, "yaml", notes))
            return
        self.notify("Select a flow to see its source", severity="warning")

    def show_flow_source(self, flow: Flow) -> None:
        self.push_screen(ViewerScreen(f"{flow.namespace}.{flow.id} rev {flow.revision}", flow.source, "yaml"))

    async def action_execution_source(self) -> None:
        """The source of the flow revision the selected execution ran."""
        selected = self.selected_execution
        if selected is None or self.engine is None:
            return
        execution = await self.engine.execution(selected.id)
        if execution is None:
            return
        revision = execution.flow_revision
        flow = await self.engine.flow_revision(execution.namespace, execution.flow_id, revision)
        if flow is None:
            self.notify(
                f"Revision {execution.flow_revision} of {execution.flow_id} is not stored", severity="warning"
            )
            return
        title = f"{flow.namespace}.{flow.id} rev {flow.revision} (ran by {execution.id[:8]})"
        self.push_screen(ViewerScreen(title, flow.source, "yaml"))

    def action_triggers(self) -> None:
        flow = self.selected_flow
        if flow is not None and flow.triggers:
            self.show_triggers(flow)

    async def action_revisions(self) -> None:
        flow = self.selected_flow
        if flow is not None:
            await self.show_revisions(flow)

    async def show_revisions(self, flow: Flow) -> None:
        """The flow's stored revisions, each diffed against the one before."""
        if self.engine is None:
            return
        revisions = await self.engine.flow_revisions(flow.namespace, flow.id)
        self.push_screen(RevisionsScreen(f"{flow.namespace}.{flow.id}", revisions))
