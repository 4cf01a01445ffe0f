"""The Tiercel dashboard: namespaces, executions and live detail over an embedded engine.

The app keeps what is app-wide: the panes' layout and titles, the engine's life cycle and its
events, the trigger states, the command palette, help, the keymap and quit. What a key does to a
flow, an execution or a trigger lives on the widget or screen it acts on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar, cast

from rich.markup import escape
from textual import events, on, work
from textual.actions import parse as parse_action
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.dom import DOMNode
from textual.filter import LineFilter
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Tree

from tiercel.engine import (
    OWNER,
    DbTarget,
    Engine,
    EngineError as EngineErrorEvent,
    Event,
    EventBus,
    Execution,
    ExecutionChanged,
    Flow,
    FlowsChanged,
    HttpHandler,
    LogsAppended,
    Principal,
    TaskRunChanged,
    TriggerChanged,
    TriggerState,
    WebhookGate,
)

from .actions import WHY_NOT
from .cli.common import default_flows_dir, resolve_db
from .engine_session import EngineSession, EngineStartError
from .guarded import GuardedEngine, acting_as
from .keymap import KeymapError, binding_ids, keymap_path, load_keymap
from .palette import TiercelCommands
from .preferences import load_preferences, preferences_path, save_preferences
from .screens.backfill_form import BackfillFormScreen
from .screens.cluster import ClusterScreen
from .screens.confirm import ConfirmScreen
from .screens.dag import DagScreen, flow_has_dag
from .screens.help import HelpScreen
from .screens.history import HistoryScreen
from .screens.revisions import RevisionsScreen
from .screens.run_form import RunFormScreen
from .screens.triggers import TriggersScreen
from .screens.viewer import ViewerScreen
from .widgets import Pane, present, retitle
from .widgets.detail import DetailPane
from .widgets.execution_log import LOG_KEEP
from .widgets.executions import ExecutionsTable, Summary
from .widgets.executions_pane import PAGE_SIZE, ExecutionsPane
from .widgets.namespaces import NamespaceTree, NodeRef
from .widgets.shown import ControlFilter, shown

LOG_FLUSH_SECONDS = 0.075
#: Where keys 1 2 3 move the focus.
PANES = {"namespaces": "#namespaces", "executions": "#executions", "detail": "#log"}
#: The widgets whose actions the global keys run (`pane(...)` bindings), whichever pane has the focus.
ACTION_PANES = {"namespaces": "#namespaces", "executions": "#executions", "detail": "#detail"}
#: The panes whose actions ask for a namespace permission (`refused` says why one is refused).
ACTION_PANE_TYPES = (NamespaceTree, ExecutionsTable, DetailPane)
#: App keys that do nothing while a dialog or another view is on top.
MODAL_GATED = frozenset(
    {"pane", "focus_pane", "help", "command_palette", "quit", "zoom", "go_back", "dag", "cluster"}
)
#: Below this width the tree is a narrow column, hidden while the detail pane has the focus.
NARROW_WIDTH = 100


class TiercelApp(App[None]):
    """The dashboard; it owns the store and the engine for as long as it runs."""

    CSS_PATH = "app.tcss"
    TITLE = "Tiercel"
    COMMANDS = App.COMMANDS | {TiercelCommands}
    # The flow and execution keys work from any pane: each runs the action of the pane that owns it.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "pane('namespaces', 'run_flow')", "Run", id="tiercel.run"),
        Binding("e", "pane('namespaces', 'edit_flow')", "Edit", show=False, id="tiercel.edit"),
        Binding("K", "pane('executions', 'kill')", "Kill", id="tiercel.kill"),
        Binding("R", "pane('executions', 'restart')", "Restart", id="tiercel.restart"),
        Binding("P", "pane('executions', 'replay')", "Replay", show=False, id="tiercel.replay"),
        Binding("u", "pane('executions', 'resume')", "Resume", id="tiercel.resume"),
        Binding("z", "zoom", "Zoom", id="tiercel.zoom"),
        Binding("H", "pane('namespaces', 'history')", "History", show=False, id="tiercel.history"),
        Binding("D", "dag", "Graph", show=False, id="tiercel.dag"),
        Binding("W", "cluster", "Cluster", show=False, id="tiercel.cluster"),
        Binding("c", "pane('detail', 'copy_id')", "Copy id", show=False, id="tiercel.copy_id"),
        Binding("backspace", "go_back", "Back", show=False, id="tiercel.back"),
        Binding("ctrl+p,colon", "command_palette", "Commands", show=False, id="tiercel.commands"),
        Binding("1", "focus_pane('namespaces')", "Flows", show=False, id="tiercel.focus.namespaces"),
        Binding("2", "focus_pane('executions')", "Executions", show=False, id="tiercel.focus.executions"),
        Binding("3", "focus_pane('detail')", "Detail", show=False, id="tiercel.focus.detail"),
        Binding("question_mark", "help", "Help", id="tiercel.help"),
        Binding("q", "quit", "Quit", id="tiercel.quit"),
    ]

    def __init__(
        self,
        flows_dir: Path | None = None,
        db: DbTarget | None = None,
        *,
        control: bool = True,
        webhooks: tuple[str, int] | None = None,
        api: Callable[[Engine], HttpHandler] | None = None,
        gate: Callable[[Engine], WebhookGate] | None = None,
        principal: Principal = OWNER,
    ) -> None:
        """The dashboard on a flows folder and a store (by default those `tiercel ui` would take, so
        that `textual run --dev app.app:TiercelApp` opens it), serving webhooks on `webhooks`, and
        the REST API that `api` makes for the engine beside them (webhook calls pass the `gate` it
        makes), for `principal` (who may do what their namespace permissions grant)."""
        super().__init__()
        self.flows_dir = flows_dir if flows_dir is not None else default_flows_dir()
        self.db = db if db is not None else resolve_db(None)
        self.control = control
        # (host, port) to serve webhook triggers on, as `tiercel server` does; None: no webhooks.
        self.webhooks = webhooks
        self.api, self.gate = api, gate
        self.principal = principal
        self.session: EngineSession | None = None
        # The engine as the person at the dashboard may use it (see guarded.py).
        self.engine: GuardedEngine | None = None
        self.startup_error: str | None = None
        self._triggers: list[TriggerState] = []
        # The keys the user's keymap file remaps, by binding id (the help screen shows them).
        self.user_keys: dict[str, str] = {}
        self._control_filter = ControlFilter()
        # Executions read per page (a test may lower it before the app starts).
        self.page_size = PAGE_SIZE
        self.preferences = load_preferences(preferences_path())
        # Executions left for a subflow's child, most recent last (backspace goes back).
        self._back: list[str] = []

    # -- layout -------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Pane(id="left", classes="pane"):
                yield NamespaceTree(id="namespaces")
            with Vertical(id="right"):
                yield ExecutionsPane(self.page_size, id="executions-pane", classes="pane")
                yield DetailPane(id="detail", classes="pane")
        yield Footer(compact=True)

    # -- life cycle ---------------------------------------------------------------------------
    async def on_mount(self) -> None:
        self._apply_keymap()
        if self.preferences.theme in self.available_themes:
            self.theme = self.preferences.theme or self.theme
        self.watch(self.screen, "focused", self._focus_moved)
        self.query_one("#left").border_title = "1 Namespaces"
        self.query_one("#left").border_subtitle = escape(acting_as(self.principal))
        self.detail.border_title = "3 Detail"
        try:  # on PostgreSQL, one server of the store's cluster
            self.session = await EngineSession.start(
                self.db,
                self.flows_dir,
                self.principal,
                control=self.control,
                webhooks=self.webhooks,
                api=self.api,
                gate=self.gate,
            )
        except EngineStartError as error:
            self.startup_error = str(error)
            self.exit(return_code=2)
            return
        self.engine = self.session.guarded
        if self.session.webhook_server is not None:
            self.notify(f"Webhooks on {self.session.webhook_server.url}", title="Webhooks")
        await self._load_last_states()
        self._rebuild_tree()
        # Start on the flow used last in this folder, else on the first one.
        self.ns_tree.select_flow_or_first(self.preferences.last_flow(self.flows_dir))
        self.drain_events()
        self.set_interval(LOG_FLUSH_SECONDS, self.detail.flush)
        self.set_interval(1.0, self.table.tick)
        self.set_interval(1.0, self.detail.tick)
        self.ns_tree.focus()
        await self.refresh_triggers()

    def _apply_keymap(self) -> None:
        """The user's keymap file, when there is one; a broken file is reported and skipped in part."""
        path = keymap_path()
        try:
            keymap = load_keymap(path, binding_ids(KEYED_CLASSES))
        except KeymapError as error:
            self.notify(str(error), title="Keymap not applied", severity="error", timeout=15)
            return
        if keymap.problems:
            self.notify(
                "\n".join(keymap.problems), title="Keymap entries skipped", severity="error", timeout=15
            )
        if keymap.keys:
            self.user_keys = keymap.keys
            self.set_keymap(keymap.keys)

    async def on_unmount(self) -> None:
        await self._stop_engine()
        self.preferences.theme = self.theme
        problem = save_preferences(preferences_path(), self.preferences)
        if problem is not None:
            self.log.warning(f"dashboard state not saved: {problem}")

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Textual's filters, then one that keeps control characters off the terminal."""
        return [*super().get_line_filters(), self._control_filter]

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Notify with the message and title as plain text: they often quote errors and ids."""
        masker = self.engine.masker if self.engine is not None else None
        text, heading = shown(message, masker), shown(title, masker)
        super().notify(text, title=heading, severity=severity, timeout=timeout, markup=False)

    def masked_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """Labels as the executions list shows them: secret values masked (the data keeps them)."""
        masker = self.engine.masker if self.engine is not None else None
        return {key: masker.mask(value) for key, value in labels.items()} if masker else dict(labels)

    # -- panes and app-wide keys ------------------------------------------------------------------
    @property
    def ns_tree(self) -> NamespaceTree:
        return self.query_one(NamespaceTree)

    @property
    def executions_pane(self) -> ExecutionsPane:
        return self.query_one(ExecutionsPane)

    @property
    def table(self) -> ExecutionsTable:
        return self.query_one(ExecutionsTable)

    @property
    def detail(self) -> DetailPane:
        return self.query_one(DetailPane)

    @property
    def selected_ref(self) -> NodeRef | None:
        return self.ns_tree.selected_ref

    @property
    def selected_flow(self) -> Flow | None:
        return self.ns_tree.selected_flow

    @property
    def focused_pane(self) -> str | None:
        """Which pane holds the focus: namespaces, executions or detail."""
        node: DOMNode | None = self.focused
        while node is not None:
            if isinstance(node, NamespaceTree):
                return "namespaces"
            if isinstance(node, ExecutionsTable) or node.id == "executions-pane":
                return "executions"
            if isinstance(node, DetailPane):
                return "detail"
            node = node.parent
        return None

    @property
    def can_edit(self) -> bool:
        """Whether an editor can take over the terminal (not headless, and the driver can suspend)."""
        driver = self._driver
        return not self.is_headless and driver is not None and driver.can_suspend

    def _pane_widget(self, pane: str) -> Widget:
        return self.query_one(ACTION_PANES[pane])

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Gate the app keys while a dialog is open; a pane's action shows only when it applies (the
        footer is short: a key that does not apply now says why when pressed, see `on_key`)."""
        if action in MODAL_GATED and isinstance(self.screen, ModalScreen):
            return False
        if not present(self, NamespaceTree):  # the app is closing its panes
            return False
        if action == "pane":
            pane, name = (str(value) for value in parameters)
            return bool(self._pane_widget(pane).check_action(name, ()))
        if action == "go_back":
            return bool(self._back)
        if action == "dag":
            return self._dag_flow() is not None
        return isinstance(self.db, str) if action == "cluster" else True

    def on_key(self, event: events.Key) -> None:
        """A flow or execution key that does not apply now says why, rather than nothing."""
        if isinstance(self.screen, ModalScreen) or isinstance(self.focused, Input):
            return
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding):
                continue
            _, action, parameters = parse_action(binding.action)
            name = str(parameters[1]) if action == "pane" else action
            keys = self.user_keys.get(binding.id or "", binding.key).split(",")
            if name in WHY_NOT and event.key in keys:
                if not self.check_action(action, parameters):  # else its binding runs it
                    widget = self._pane_widget(str(parameters[0])) if action == "pane" else None
                    refused = widget.refused(name) if isinstance(widget, ACTION_PANE_TYPES) else None
                    self.notify(refused or WHY_NOT[name], title=binding.description)
                return

    def on_resize(self, event: events.Resize) -> None:
        self.screen.set_class(event.size.width < NARROW_WIDTH, "-narrow")

    def _focus_moved(self, focused: Widget | None) -> None:
        # At narrow widths the detail pane takes the tree's columns while it has the focus.
        self.screen.set_class(self.focused_pane == "detail", "-detail-focus")

    def action_zoom(self) -> None:
        """The focused pane alone on the screen, or back to all panes."""
        if self.screen.maximized is not None:
            self.screen.minimize()
        elif self.focused is not None:
            panes = [node for node in self.focused.ancestors_with_self if node.has_class("pane")]
            if panes and isinstance(panes[0], Widget):
                self.screen.maximize(panes[0], container=False)

    async def action_pane(self, pane: str, action: str) -> None:
        """Run the action of the pane that owns it (the key works from any pane)."""
        await self._pane_widget(pane).run_action(action)

    def action_focus_pane(self, pane: str) -> None:
        self.query_one(PANES[pane]).focus()

    def _dag_flow(self) -> Flow | None:
        """The flow of the execution shown, else the selected flow, when it has a graph to draw."""
        flow = self.detail.flow() or self.selected_flow
        return flow if flow is not None and flow_has_dag(flow) else None

    def action_dag(self) -> None:
        """The graphs of the flow's Dag tasks and dependsOn lists, coloured by the execution shown
        when it is of that flow."""
        flow = self._dag_flow()
        if flow is not None:
            execution = self.detail.execution
            same = execution is not None and (execution.namespace, execution.flow_id) == flow.uid
            self.push_screen(DagScreen(flow, execution if same else None))

    def on_detail_pane_open_execution(self, message: DetailPane.OpenExecution) -> None:
        """A subflow's child execution: show it, and remember where to come back to."""
        current = self.detail.execution_id
        if current is not None and current != message.execution_id:
            self._back.append(current)
        self.go_to_execution(message.execution_id)
        self.notify("backspace goes back", title=f"Child execution {message.execution_id[:8]}")

    def action_go_back(self) -> None:
        if self._back:
            self.go_to_execution(self._back.pop())

    @work(group="go-to")
    async def go_to_execution(self, execution_id: str) -> None:
        """Show an execution wherever it is: its flow in the tree, its row, its detail."""
        if self.engine is None:
            return
        execution = await self.engine.execution(execution_id)
        if execution is None:
            self.notify(f"No execution {execution_id}", title="Go to execution", severity="error")
            return
        self.table.follow(execution_id)
        ref = NodeRef("flow", execution.namespace, execution.flow_id)
        if self.selected_ref == ref or not self.ns_tree.select_ref(ref):
            self.executions_pane.load()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.focused_pane, keymap_path(), self.user_keys))

    def started(self, execution_id: str) -> None:
        """Select a new execution as soon as its row shows, and say it started."""
        self.table.follow(execution_id)
        self.notify(f"Execution {execution_id[:8]} started")

    def recent_executions(self) -> list[Summary]:
        """The executions shown plus the ones seen live, newest first."""
        return self.executions_pane.recent()

    async def reload_flows(self, paths: list[Path]) -> None:
        """Load changed flow files now rather than waiting for the watcher."""
        if self.engine is not None:
            await self.engine.sync_flows(paths)

    # -- triggers -----------------------------------------------------------------------------------
    def trigger_list(self, namespace: str | None = None, flow_id: str | None = None) -> list[TriggerState]:
        """The triggers as last read from the engine, of one flow when named."""
        return [
            state
            for state in self._triggers
            if namespace is None or (state.namespace, state.flow_id) == (namespace, flow_id)
        ]

    def trigger_states(self) -> dict[tuple[str, str, str], bool]:
        """Whether each trigger of the current flows is enabled (by command)."""
        return {(s.namespace, s.flow_id, s.trigger_id): s.enabled for s in self._triggers}

    async def refresh_triggers(self) -> None:
        """Read the trigger states and show them: the flows' badges and any open triggers view."""
        if self.engine is None:
            return
        self._triggers = await self.engine.trigger_states()
        states = self.trigger_states()
        self.ns_tree.set_disabled_triggers({key for key, enabled in states.items() if not enabled})
        for screen in self.screen_stack:
            if isinstance(screen, TriggersScreen):
                screen.refresh_rows()

    def action_cluster(self) -> None:
        """The servers and workers of the cluster (a PostgreSQL store only)."""
        self.push_screen(ClusterScreen(str(self.db)))

    async def action_quit(self) -> None:
        await self._stop_engine()
        self.exit()

    async def _stop_engine(self) -> None:
        session, self.session, self.engine = self.session, None, None
        if session is not None:  # the panes' reads go first: the store is about to close under them
            await session.stop(self.workers.cancel_all)

    async def _load_last_states(self) -> None:
        assert self.engine is not None
        self.ns_tree.last_states.update(await self.engine.last_states())

    # -- events -------------------------------------------------------------------------------
    @work(exclusive=True, group="events")
    async def drain_events(self) -> None:
        """Apply engine events in batches as they come (the UI never polls the store)."""
        assert self.session is not None
        queue = self.session.events
        while True:
            first = await queue.get()
            batch = [first, *EventBus.drain(queue)]
            try:
                with self.batch_update():
                    await self.apply_events(batch)
            except Exception as error:  # a display bug must not stop live updates
                self.notify(f"{type(error).__name__}: {error}", title="Display error", severity="error")
            await asyncio.sleep(0.05)

    async def apply_events(self, batch: list[Event]) -> None:
        """Update the panes from a batch of events."""
        latest: dict[str, Execution] = {}
        flows_changed = triggers_changed = False
        for event in batch:
            if isinstance(event, ExecutionChanged):
                if self.engine is not None and self.engine.readable(event.execution.namespace):
                    latest[event.execution.id] = event.execution
            elif isinstance(event, TaskRunChanged):
                if event.execution_id == self.detail.execution_id:
                    self.detail.update_task_run(event.task_run)
            elif isinstance(event, LogsAppended):
                self.detail.add_entries(event.entries)
            elif isinstance(event, FlowsChanged):
                flows_changed = True
            elif isinstance(event, TriggerChanged):
                triggers_changed = True
            elif isinstance(event, EngineErrorEvent) and self.principal.owner:  # the machine's errors
                self.notify(event.message, title="Engine error", severity="error")
        if flows_changed:
            self._rebuild_tree()
        if flows_changed or triggers_changed:
            await self.refresh_triggers()
        summaries = [Summary.of(execution, self.masked_labels) for execution in latest.values()]
        for summary in summaries:
            self.ns_tree.set_last_state(summary.namespace, summary.flow_id, summary.state)
        if self.detail.execution_id in latest:
            self.detail.update_execution(latest[self.detail.execution_id])
        before = self._selection_state()
        self.executions_pane.record(summaries)
        if latest:
            for screen in self.screen_stack:
                if isinstance(screen, HistoryScreen):
                    screen.executions_changed()
                elif isinstance(screen, DagScreen) and screen.execution and screen.execution.id in latest:
                    screen.update_execution(latest[screen.execution.id])
            self._update_titles()
            # The footer is rebuilt on every refresh: only when what the keys depend on changed.
            if self._selection_state() != before:
                self.refresh_bindings()

    def _selection_state(self) -> tuple[str | None, str | None]:
        """The selected execution and its state: what greys the execution keys in or out."""
        selected = self.table.selected
        return (selected.id, selected.state) if selected else (None, None)

    # -- namespaces ---------------------------------------------------------------------------
    def _rebuild_tree(self) -> None:
        if self.engine is None:
            return
        self.ns_tree.rebuild(self.engine.flows, self.engine.flow_errors, self.flows_dir)
        self._update_titles()

    def _update_titles(self) -> None:
        if not present(self, NamespaceTree):  # a load that ends while the app closes its panes
            return
        tree = self.ns_tree
        title = f"1 Namespaces {tree.flow_count}"
        if tree.error_count:
            title += f" [red]✘{tree.error_count}[/red]"  # as border_title reads back: retitle compares
        retitle(self.query_one("#left"), title)
        execution = self.detail.execution
        # The full id: it is what `tiercel logs`, the API and a search take (`c` copies it).
        full = f"3 {execution.flow_id} {execution.id} {execution.state.current.value}" if execution else ""
        retitle(self.detail, escape(full) if full else "3 Detail")

    @on(Tree.NodeHighlighted, "#namespaces")
    def _tree_moved(self, event: Tree.NodeHighlighted[NodeRef]) -> None:
        ref = event.node.data
        if ref is not None and ref.kind == "error" and self.engine is not None:
            errors = self.engine.flow_errors.get(ref.path, [])
            self.detail.show_text([shown(error) for error in errors] or [shown(ref.path)])
            self.detail.border_title = "3 Flow file in error"
        elif ref is not None and ref.kind == "flow":
            self.preferences.remember_flow(self.flows_dir, ref.namespace, ref.flow_id)
            save_preferences(preferences_path(), self.preferences)  # now: a killed dashboard keeps it
        self.executions_pane.show_scope(ref)
        self.refresh_bindings()

    def action_filter_executions(self) -> None:
        self.executions_pane.open_filter()

    @on(ExecutionsPane.Loaded)
    def _executions_loaded(self) -> None:
        if not present(self, NamespaceTree):  # a page that arrives while the app closes
            return
        self._update_titles()
        # An execution asked for (a new run, a child, a search) shows even before its row does.
        wanted = self.table.following or self.table.selected_id
        if wanted != self.detail.execution_id:
            self.show_execution(wanted)

    # -- executions and detail ------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#executions")
    def _row_moved(self, event: DataTable.RowHighlighted) -> None:
        # The cursor as it is now: a table rebuilt for new rows moves it and puts it back, and the
        # highlights it posted on the way are stale by the time they arrive.
        execution_id = cast(ExecutionsTable, event.data_table).selected_id  # (no query: may be closing)
        if execution_id != self.detail.execution_id:
            self.show_execution(execution_id)

    @work(exclusive=True, group="detail")
    async def show_execution(self, execution_id: str | None) -> None:
        """Load an execution and its log history into the detail pane."""
        detail = self.detail
        detail.begin(execution_id)
        self.refresh_bindings()
        if execution_id is None or self.engine is None:
            self._update_titles()
            return
        execution = await self.engine.execution(execution_id)
        # The newest lines only: a log may hold millions; older ones are read on demand (`[`).
        history = [entry for _, entry in await self.engine.logs(execution_id, limit=LOG_KEEP, newest=True)]
        if detail.is_attached and detail.execution_id == execution_id:  # (not if the app is closing)
            detail.finish_loading(execution, history)
            self._update_titles()
            self.refresh_bindings()


#: Every class whose key bindings the keymap file may remap.
KEYED_CLASSES: tuple[type[object], ...] = (
    TiercelApp,
    NamespaceTree,
    ExecutionsTable,
    DetailPane,
    TriggersScreen,
    ClusterScreen,
    BackfillFormScreen,
    RunFormScreen,
    RevisionsScreen,
    ConfirmScreen,
    ViewerScreen,
    HelpScreen,
    HistoryScreen,
    DagScreen,
)
