"""The dashboard's panes and the widgets they are made of."""

from __future__ import annotations

from typing import Any, TypedDict

from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.widget import Widget
from textual.widgets import Tree


def present(node: DOMNode, kind: type[Widget]) -> bool:
    """Whether `node` holds a `kind` (no longer once a closing app has removed its panes). A cached
    `query_one`: evaluating a query walks the whole screen, too slow for every key check."""
    try:
        node.query_one(kind)
    except NoMatches:
        return False
    return True


def retitle(widget: Widget, title: str) -> None:
    """Set a border title when it differs: every set repaints the widget, and live updates come
    many times a second with the same title."""
    if widget.border_title != title:
        widget.border_title = title


class Pane(Vertical):
    """A bordered pane of the main screen: `z` zooms it to the whole screen."""

    ALLOW_MAXIMIZE = True


class WidgetArgs(TypedDict, total=False):
    """The keyword arguments every Textual widget takes, passed through by the panes' constructors."""

    name: str | None
    id: str | None
    classes: str | None
    disabled: bool


# Vim keys as lists of bindings with their own ids, so that a widget adds them with one line and the
# keymap file remaps (or turns off) each of them without touching the arrows.
#: A tree's vim keys; the tree needs the collapse_or_parent and expand_or_child actions.
VIM_TREE_KEYS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False, id="tiercel.vim.tree_down"),
    Binding("k", "cursor_up", "Up", show=False, id="tiercel.vim.tree_up"),
    Binding("h", "collapse_or_parent", "Collapse", show=False, id="tiercel.vim.tree_collapse"),
    Binding("l", "expand_or_child", "Expand", show=False, id="tiercel.vim.tree_expand"),
]

#: A list's (a DataTable with a row cursor) vim keys.
VIM_LIST_KEYS: list[BindingType] = [
    Binding("j", "cursor_down", "Down", show=False, id="tiercel.vim.list_down"),
    Binding("k", "cursor_up", "Up", show=False, id="tiercel.vim.list_up"),
    Binding("g", "scroll_top", "First", show=False, id="tiercel.vim.list_first"),
    Binding("G", "scroll_bottom", "Last", show=False, id="tiercel.vim.list_last"),
]


def collapse_or_parent(tree: Tree[Any]) -> None:
    """Collapse the node under the cursor; on a leaf or a collapsed node, go to its parent instead."""
    node = tree.cursor_node
    if node is None:
        return
    if node.allow_expand and node.is_expanded:
        node.collapse()
    elif node.parent is not None and (node.parent is not tree.root or tree.show_root):
        _ = tree.last_line  # lines are laid out lazily: a node's line is known only after this
        tree.move_cursor(node.parent)


def expand_or_child(tree: Tree[Any]) -> None:
    """Expand the node under the cursor; when it is expanded already, go to its first child."""
    node = tree.cursor_node
    if node is None or not node.allow_expand:
        return
    if not node.is_expanded:
        node.expand()
    elif node.children:
        _ = tree.last_line
        tree.move_cursor(node.children[0])
