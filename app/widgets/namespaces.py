"""The namespaces pane: a tree of dotted namespaces, flows as leaves, flow files in error."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tiercel.engine.flows.table import FlowTable
from tiercel.engine.model import Flow

from .shown import shown
from .states import glyph

BADGES = {"Schedule": "⏱", "Flow": "↪", "Webhook": "⚡"}


def trigger_badge(trigger_type: str) -> str:
    """The one-character badge of a trigger type (by its short name)."""
    return BADGES.get(trigger_type.rsplit(".", 1)[-1], "◆")


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
        Binding("y", "app.show_source", "Source"),
        Binding("v", "app.revisions", "Revisions"),
        Binding("T", "app.triggers", "Triggers"),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__("flows", data=NodeRef("namespace"), **kwargs)  # type: ignore[arg-type]
        self.show_root = False
        self.guide_depth = 2
        self.last_states: dict[tuple[str, str], str] = {}
        self._flow_nodes: dict[tuple[str, str], TreeNode[NodeRef]] = {}
        self._flows: dict[tuple[str, str], Flow] = {}
        self.flow_count = 0
        self.error_count = 0
        # (namespace, flow id, trigger id) of triggers turned off at run time (the scheduler's state).
        self.disabled_triggers: set[tuple[str, str, str]] = set()

    def rebuild(
        self,
        flows: FlowTable,
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
        if errors:
            title = Text(f"✘ invalid files ({len(errors)})", style="bold red")
            group = self.root.add(title, data=NodeRef("errors"), expand=True)
            for path, found in sorted(errors.items()):
                for error in found or [path]:
                    group.add_leaf(_error_label(error, flows_dir), data=NodeRef("error", path=path))
        self.root.expand()
        if current is not None:
            self.select_ref(current)

    def _flow_label(self, namespace: str, flow_id: str) -> Text:
        state = self.last_states.get((namespace, flow_id))
        label = Text()
        label.append_text(glyph(state) if state else Text("○", style="dim"))
        label.append(" " + shown(flow_id))
        flow = self._flows.get((namespace, flow_id))
        if flow is not None and flow.triggers:
            label.append(" ")
            for trigger in flow.triggers:
                off = trigger.disabled or (namespace, flow_id, trigger.id) in self.disabled_triggers
                label.append(trigger_badge(trigger.type), style="dim strike" if off else "cyan")
        return label

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
