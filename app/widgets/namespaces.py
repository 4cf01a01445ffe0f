"""The namespaces pane: a tree of dotted namespaces, flows as leaves, flow files in error.

Its actions act on the selected flow: run it (through a form when it has inputs), edit its file,
show its source, its revisions or its triggers. The command palette calls the same methods.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Unpack

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tiercel.engine import EngineCommandError, Flow, InputError, Permission, is_url

from ..actions import editor_command
from ..host import EngineFlows, dashboard, refusal, said_no
from ..screens.history import HistoryScreen
from ..screens.revisions import RevisionsScreen
from ..screens.run_form import RunFormScreen
from ..screens.triggers import TriggersScreen
from ..screens.viewer import ViewerScreen
from . import VIM_TREE_KEYS, WidgetArgs, collapse_or_parent, expand_or_child
from .shown import shown
from .states import glyph

#: What running and editing a flow need in its namespace.
FLOW_PERMISSIONS = {"run_flow": Permission.EXECUTE, "edit_flow": Permission.OWNER}
EDITOR_REFUSED = (
    "Editing runs an editor as this machine's account, the dashboard's owner only: a dashboard "
    "opened for a user or read-only changes flows through the API (OWNER) or the flows' repository"
)
BADGES = {"Schedule": "⏱", "Flow": "↪", "Webhook": "⚡"}


def trigger_badge(trigger_type: str) -> str:
    """The one-character badge of a trigger type (by its short name)."""
    return BADGES.get(trigger_type.rsplit(".", 1)[-1], "◆")


def fit_label(head: Text, name: Text, tail: Text, width: int) -> Text:
    """head + name + tail in `width` cells: only the name is cut, with an ellipsis after its start.

    The head (a state glyph) and the tail (trigger badges, a count) say something about the whole
    row, so they stay whole; the name keeps at least its first character.
    """
    room = width - head.cell_len - tail.cell_len
    if name.cell_len > room:
        name = name.copy()
        name.truncate(max(room, 2), overflow="ellipsis")
    return Text.assemble(head, name, tail)


@dataclass(frozen=True, slots=True)
class NodeRef:
    """What a tree node stands for: a namespace, a flow, or a flow file in error."""

    kind: str  # "namespace" | "flow" | "errors" | "error"
    namespace: str = ""
    flow_id: str = ""
    path: str = ""


class NamespaceTree(Tree[NodeRef]):
    """Namespaces built from the dots in their names; flows carry their last execution state."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "show_source", "Source", id="tiercel.flow.source"),
        Binding("v", "revisions", "Revisions", id="tiercel.flow.revisions"),
        Binding("T", "triggers", "Triggers", id="tiercel.flow.triggers"),
        Binding("left", "collapse_or_parent", "Collapse", show=False, id="tiercel.tree.collapse"),
        Binding("right", "expand_or_child", "Expand", show=False, id="tiercel.tree.expand"),
        *VIM_TREE_KEYS,
    ]

    def __init__(self, **kwargs: Unpack[WidgetArgs]) -> None:
        super().__init__("flows", data=NodeRef("namespace"), **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self.last_states: dict[tuple[str, str], str] = {}
        self._flow_nodes: dict[tuple[str, str], TreeNode[NodeRef]] = {}
        self._flows: dict[tuple[str, str], Flow] = {}
        self.flow_count = 0
        self.error_count = 0
        self._error_files = 0
        # (namespace, flow id, trigger id) of triggers turned off at run time (the scheduler's state).
        self.disabled_triggers: set[tuple[str, str, str]] = set()

    # -- the selection ----------------------------------------------------------------------------
    @property
    def selected_ref(self) -> NodeRef | None:
        node = self.cursor_node
        return node.data if node is not None else None

    @property
    def selected_flow(self) -> Flow | None:
        ref = self.selected_ref
        engine = dashboard(self).engine
        if engine is None or ref is None or ref.kind != "flow":
            return None
        return engine.flows.get((ref.namespace, ref.flow_id))

    def go_to(self, ref: NodeRef) -> None:
        """Select a namespace or flow and take the focus."""
        if self.select_ref(ref):
            self.focus()
        else:
            self.app.notify(f"{ref.namespace or ref.path} is not in the tree", severity="warning")

    def refused(self, action: str, flow: Flow | None = None) -> str | None:
        """Why the person may not run or edit the flow (the selected one by default); None when
        they may, or for another action."""
        needed = FLOW_PERMISSIONS.get(action)
        flow = flow or self.selected_flow
        if needed is None or flow is None:
            return None
        engine = dashboard(self).engine
        if action == "edit_flow" and engine is not None and engine.restricted:
            return EDITOR_REFUSED  # an editor's shell escape would run as the machine's account
        return refusal(self, flow.namespace, needed)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out the flow actions when no flow is selected (or it cannot be edited here, or the
        person may not: the key then says why when pressed)."""
        if self.refused(action) is not None:
            return None
        if action in ("revisions", "triggers") and self.app.screen is not self.screen:
            return False  # a dialog is open: the footer behind it does not offer views of the flow
        if action in ("run_flow", "revisions"):
            return True if self.selected_flow is not None else None
        if action == "edit_flow":
            flow = self.selected_flow
            return True if flow is not None and flow.path and dashboard(self).can_edit else None
        if action == "triggers":
            flow = self.selected_flow
            return True if flow is not None and flow.triggers else None
        if action == "history":
            ref = self.selected_ref
            return True if ref is not None and ref.kind in ("flow", "namespace") else None
        return True

    # -- moving -------------------------------------------------------------------------------------
    def action_collapse_or_parent(self) -> None:
        collapse_or_parent(self)

    def action_expand_or_child(self) -> None:
        expand_or_child(self)

    # -- running ------------------------------------------------------------------------------------
    async def action_run_flow(self) -> None:
        flow = self.selected_flow
        if flow is None:
            self.app.notify("Select a flow to run", severity="warning")
            return
        await self.run_flow(flow)

    async def run_flow(self, flow: Flow) -> None:
        """Run a flow: through the inputs form when it declares inputs."""
        host = dashboard(self)
        if host.engine is None:
            return
        if said_no(self, self.refused("run_flow", flow), "Cannot run"):
            return
        if flow.inputs:

            def started(execution_id: str | None) -> None:
                if execution_id is not None:
                    host.started(execution_id)

            self.app.push_screen(RunFormScreen(host.engine, flow), started)
            return
        try:
            execution_id = await host.engine.trigger(flow.namespace, flow.id)
        except (InputError, EngineCommandError) as error:
            self.app.notify(str(error), title="Cannot run", severity="error")
            return
        host.started(execution_id)

    # -- the flow's file and sources ----------------------------------------------------------------
    async def action_edit_flow(self) -> None:
        flow = self.selected_flow
        if flow is not None and dashboard(self).can_edit:
            await self.edit_flow(flow)

    async def edit_flow(self, flow: Flow) -> None:
        """Open the flow's file in the user's editor, then load the saved file at once."""
        engine = dashboard(self).engine
        if flow.path is None or engine is None:
            return
        if said_no(self, self.refused("edit_flow", flow), "Cannot edit"):
            return
        command = [*editor_command(), flow.path]
        # Awaited, not run blocking: the engine shares this event loop and must keep running (tasks,
        # schedules, webhooks, the control channel) while the editor is open. The batch holds every
        # screen update until the dashboard has the terminal back, so nothing is drawn over the editor.
        with self.app.batch_update(), self.app.suspend():
            try:
                editor = await asyncio.create_subprocess_exec(*command)
                await editor.wait()
            except OSError as error:
                failure: OSError | None = error
            else:
                failure = None
        if failure is not None:
            self.app.notify(f"{command[0]}: {failure}", title="Cannot start the editor", severity="error")
            return
        await engine.sync_flows([Path(flow.path)])

    def action_show_source(self) -> None:
        """The selected flow's YAML, or a file in error with its errors above it."""
        ref = self.selected_ref
        engine = dashboard(self).engine
        if engine is None or ref is None:
            return
        if ref.kind == "flow":
            flow = engine.flows.get((ref.namespace, ref.flow_id))
            if flow is not None:
                self.show_flow_source(flow)
                return
        elif ref.kind == "error":
            try:
                text = Path(ref.path).read_text(encoding="utf-8", errors="replace")
            except OSError as error:
                text = f"# cannot read the file: {error}"
            notes = [str(error) for error in engine.flow_errors.get(ref.path, [])]
            self.app.push_screen(ViewerScreen(ref.path, text, "yaml", notes))
            return
        self.app.notify("Select a flow to see its source", severity="warning")

    def show_flow_source(self, flow: Flow) -> None:
        title = f"{flow.namespace}.{flow.id} rev {flow.revision}"
        self.app.push_screen(ViewerScreen(title, flow.source, "yaml"))

    async def action_revisions(self) -> None:
        flow = self.selected_flow
        if flow is not None:
            await self.show_revisions(flow)

    async def show_revisions(self, flow: Flow) -> None:
        """The flow's stored revisions, each diffed against the one before."""
        engine = dashboard(self).engine
        if engine is None:
            return
        revisions = await engine.flow_revisions(flow.namespace, flow.id)
        self.app.push_screen(RevisionsScreen(f"{flow.namespace}.{flow.id}", revisions))

    def action_history(self) -> None:
        """Charts of the selected flow's executions, or of a namespace's."""
        ref = self.selected_ref
        engine = dashboard(self).engine
        if engine is not None and ref is not None and ref.kind in ("flow", "namespace"):
            flow_id = ref.flow_id if ref.kind == "flow" else None
            db = dashboard(self).db
            tests = None if is_url(db) else Path(db).parent  # where `tiercel test` keeps its results
            history = HistoryScreen(
                engine, ref.namespace, flow_id, tests_folder=tests, readable=engine.readable
            )
            self.app.push_screen(history)

    def action_triggers(self) -> None:
        flow = self.selected_flow
        if flow is not None and flow.triggers:
            self.show_triggers(flow)

    def show_triggers(self, flow: Flow) -> None:
        """The triggers view of a flow: on/off, backfills."""
        self.app.push_screen(TriggersScreen(flow.namespace, flow.id))

    # -- the tree -----------------------------------------------------------------------------------
    def rebuild(
        self,
        flows: EngineFlows,
        errors: Mapping[str, Sequence[object]],
        flows_dir: Path | None,
    ) -> None:
        """Rebuild the whole tree, keeping the highlighted node when it still exists.

        Only flows with triggers are parsed (for their badges): the others may still be stored
        sources that the engine parses on first use, and a tree of 10,000 flows needs only their ids.
        """
        current = self.cursor_node.data if self.cursor_node is not None else None
        self.clear()
        self._flow_nodes.clear()
        self._flows = {}
        for uid in flows.with_triggers():
            with contextlib.suppress(KeyError):  # a stored revision that no longer parses is left out
                self._flows[uid] = flows[uid]
        namespaces: dict[str, TreeNode[NodeRef]] = {}

        def namespace_node(name: str) -> TreeNode[NodeRef]:
            if name in namespaces:
                return namespaces[name]
            parent_name, _, leaf = name.rpartition(".")
            parent = namespace_node(parent_name) if parent_name else self.root
            node = parent.add(Text(shown(leaf), style="bold"), data=NodeRef("namespace", name), expand=True)
            namespaces[name] = node
            return node

        for namespace, flow_id in sorted(flows):
            parent = namespace_node(namespace)
            ref = NodeRef("flow", namespace, flow_id)
            node = parent.add_leaf(self._flow_label(namespace, flow_id), data=ref)
            self._flow_nodes[(namespace, flow_id)] = node
        self.flow_count = len(flows)
        self.error_count = sum(len(found) or 1 for found in errors.values())
        self._error_files = len(errors)
        if errors:
            group = self.root.add(Text.assemble(*self._errors_parts()), data=NodeRef("errors"), expand=True)
            for path, found in sorted(errors.items()):
                for error in found or [path]:
                    group.add_leaf(_error_label(error, flows_dir), data=NodeRef("error", path=path))
        self.root.expand()
        if current is not None:
            self.select_ref(current)

    def _flow_label(self, namespace: str, flow_id: str) -> Text:
        return Text.assemble(*self._flow_parts(namespace, flow_id))

    def _flow_parts(self, namespace: str, flow_id: str) -> tuple[Text, Text, Text]:
        """The state glyph, the flow id and the trigger badges (struck through when off)."""
        state = self.last_states.get((namespace, flow_id))
        head = Text.assemble(glyph(state) if state else Text("○", style="dim"), " ")
        tail = Text()
        flow = self._flows.get((namespace, flow_id))
        if flow is not None and flow.triggers:
            tail.append(" ")
            for trigger in flow.triggers:
                off = trigger.disabled or (namespace, flow_id, trigger.id) in self.disabled_triggers
                tail.append(trigger_badge(trigger.type), style="dim strike" if off else "cyan")
        return head, Text(shown(flow_id)), tail

    def _errors_parts(self) -> tuple[Text, Text, Text]:
        """The title of the files in error, its count kept whole when the title is cut."""
        style = "bold red"
        return Text("✘ ", style), Text("invalid files", style), Text(f" ({self._error_files})", style)

    # -- labels that fit the pane ---------------------------------------------------------------------
    def render_label(self, node: TreeNode[NodeRef], base_style: Style, style: Style) -> Text:
        """The label cut to the width the line has left after its guides and toggle icon.

        The tree's pane may be two dozen columns wide: a cut name keeps its start, and the glyph and
        badges around it stay (rather than the line's end falling off the pane).
        """
        full = super().render_label(node, base_style, style)
        room = self._label_room(node)
        if room is None or full.cell_len <= room + self._toggle_width(node):
            return full
        ref = node.data
        if ref is not None and ref.kind == "flow":
            parts = self._flow_parts(ref.namespace, ref.flow_id)
        elif ref is not None and ref.kind == "errors":
            parts = self._errors_parts()
        else:
            parts = (Text(), _text(node.label), Text())
        label = fit_label(*parts, room)
        label.stylize(style)
        prefix = full[: len(full) - len(node.label)]  # the toggle icon, with its click meta
        return Text.assemble(prefix, label)

    def get_label_width(self, node: TreeNode[NodeRef]) -> int:
        """The width render_label gives, without building the label (the tree asks for every line)."""
        width = self._toggle_width(node) + cell_len(str(node.label))
        room = self._label_room(node)
        return width if room is None else min(width, self._toggle_width(node) + max(room, 0))

    def _toggle_width(self, node: TreeNode[NodeRef]) -> int:
        if not node.allow_expand:
            return 0
        return cell_len(self.ICON_NODE_EXPANDED if node.is_expanded else self.ICON_NODE)

    def _label_room(self, node: TreeNode[NodeRef]) -> int | None:
        """The cells left for a node's label (without its toggle icon); None before the tree is laid out."""
        width = self.scrollable_content_region.width
        if width <= 0:
            return None
        depth = 0
        parent = node.parent
        while parent is not None and (parent is not self.root or self.show_root):
            depth += 1
            parent = parent.parent
        return width - depth * self.guide_depth - self._toggle_width(node)

    def set_disabled_triggers(self, disabled: set[tuple[str, str, str]]) -> None:
        """Show which triggers are turned off, relabelling only the flows that changed."""
        changed = {key[:2] for key in disabled ^ self.disabled_triggers}
        self.disabled_triggers = set(disabled)
        for namespace, flow_id in changed:
            node = self._flow_nodes.get((namespace, flow_id))
            if node is not None:
                node.set_label(self._flow_label(namespace, flow_id))

    def set_last_state(self, namespace: str, flow_id: str, state: str) -> None:
        """Show a flow's latest execution state on its leaf."""
        self.last_states[(namespace, flow_id)] = state
        node = self._flow_nodes.get((namespace, flow_id))
        if node is not None:
            node.set_label(self._flow_label(namespace, flow_id))

    def select_ref(self, ref: NodeRef) -> bool:
        """Move the cursor to the node for `ref`; False when it is not in the tree."""
        for node in _walk(self.root):
            if node.data == ref:
                parent = node.parent
                while parent is not None:
                    parent.expand()
                    parent = parent.parent
                _ = self.last_line  # lines are laid out lazily: a node's line is known only after this
                self.move_cursor(node)
                return True
        return False

    def select_flow_or_first(self, uid: tuple[str, str] | None) -> None:
        """Select a flow by (namespace, id) if it is in the tree, else the first flow shown."""
        if uid is not None and self.select_ref(NodeRef("flow", *uid)):
            return
        first = next((node.data for node in _walk(self.root) if node.data and node.data.kind == "flow"), None)
        if first is not None:
            self.select_ref(first)


def _text(label: str | Text) -> Text:
    return label.copy() if isinstance(label, Text) else Text(label)


def _walk(node: TreeNode[NodeRef]) -> list[TreeNode[NodeRef]]:
    found = [node]
    for child in node.children:
        found.extend(_walk(child))
    return found


def _error_label(error: object, flows_dir: Path | None) -> Text:
    path = getattr(error, "path", None)
    line = getattr(error, "line", None)
    message = getattr(error, "message", str(error))
    where = str(path or "?")
    if flows_dir is not None and path:
        with contextlib.suppress(ValueError):
            where = str(Path(path).resolve().relative_to(flows_dir.resolve()))
    if line is not None:
        where = f"{where}:{line}"
    # A broken file's errors quote what it holds: escapes in an id or a type are shown, not obeyed.
    return Text.assemble((shown(where), "red"), " ", (shown(message), "dim"))
