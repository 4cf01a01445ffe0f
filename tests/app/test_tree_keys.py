"""The namespace tree's keys: ← → fold, unfold or go to the parent and the first child; vim's h j k l."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets.tree import TreeNode

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.widgets import VIM_LIST_KEYS, VIM_TREE_KEYS
from tiercel.app.widgets.executions import ExecutionsTable
from tiercel.app.widgets.namespaces import NamespaceTree, NodeRef

LOG = "io.kestra.plugin.core.log.Log"


def flow(namespace: str, flow_id: str) -> str:
    return f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - {{id: say, type: {LOG}, message: hi}}\n"


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    """acme: a flow `hello`, then acme.platform.ops with two flows and acme.sales with one."""
    folder = tmp_path / "flows"
    for namespace, flow_id in (
        ("acme", "hello"),
        ("acme.platform.ops", "nightly"),
        ("acme.platform.ops", "sync"),
        ("acme.sales", "leads"),
    ):
        path = folder / namespace.replace(".", "/") / f"{flow_id}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(flow(namespace, flow_id))
    return folder


@pytest.fixture
async def tree(flows: Path, tmp_path: Path) -> AsyncIterator[tuple[NamespaceTree, Pilot[None]]]:
    app = TiercelApp(flows, tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 4)
        app.ns_tree.focus()
        await pilot.pause()
        yield app.ns_tree, pilot


def node(tree: NamespaceTree, ref: NodeRef) -> TreeNode[NodeRef]:
    stack = [tree.root]
    while stack:
        found = stack.pop()
        if found.data == ref:
            return found
        stack.extend(found.children)
    raise AssertionError(f"{ref} is not in the tree")


async def at(tree: NamespaceTree, pilot: Pilot[None], ref: NodeRef) -> TreeNode[NodeRef]:
    assert tree.select_ref(ref)
    await pilot.pause()
    return node(tree, ref)


def cursor(tree: NamespaceTree) -> NodeRef | None:
    return tree.cursor_node.data if tree.cursor_node is not None else None


ACME = NodeRef("namespace", "acme")
PLATFORM = NodeRef("namespace", "acme.platform")
OPS = NodeRef("namespace", "acme.platform.ops")
NIGHTLY = NodeRef("flow", "acme.platform.ops", "nightly")


@pytest.mark.parametrize(("collapse", "expand"), [("left", "right"), ("h", "l")])
async def test_collapse_then_go_to_the_parent_expand_then_go_to_the_first_child(
    tree: tuple[NamespaceTree, Pilot[None]], collapse: str, expand: str
) -> None:
    ns_tree, pilot = tree
    platform = await at(ns_tree, pilot, PLATFORM)
    assert platform.is_expanded
    await pilot.press(collapse)
    assert not platform.is_expanded and cursor(ns_tree) == PLATFORM
    await pilot.press(collapse)  # already collapsed: up to its parent
    assert cursor(ns_tree) == ACME and node(ns_tree, ACME).is_expanded
    await at(ns_tree, pilot, PLATFORM)
    assert not platform.is_expanded
    await pilot.press(expand)
    assert platform.is_expanded and cursor(ns_tree) == PLATFORM
    await pilot.press(expand)  # already expanded: down to its first child
    assert cursor(ns_tree) == OPS
    await pilot.press(expand, expand)
    assert cursor(ns_tree) == NIGHTLY


@pytest.mark.parametrize(("collapse", "expand"), [("left", "right"), ("h", "l")])
async def test_on_a_flow_left_goes_to_its_namespace_and_right_does_nothing(
    tree: tuple[NamespaceTree, Pilot[None]], collapse: str, expand: str
) -> None:
    ns_tree, pilot = tree
    await at(ns_tree, pilot, NIGHTLY)
    await pilot.press(expand)
    assert cursor(ns_tree) == NIGHTLY
    await pilot.press(collapse)
    assert cursor(ns_tree) == OPS and node(ns_tree, OPS).is_expanded


async def test_left_on_a_folded_top_namespace_stays_there(tree: tuple[NamespaceTree, Pilot[None]]) -> None:
    ns_tree, pilot = tree
    acme = await at(ns_tree, pilot, ACME)
    await pilot.press("left", "left")
    assert not acme.is_expanded and cursor(ns_tree) == ACME  # the hidden root is not a place to go


async def test_j_and_k_move_down_and_up_like_the_arrows(tree: tuple[NamespaceTree, Pilot[None]]) -> None:
    ns_tree, pilot = tree
    await at(ns_tree, pilot, ACME)
    line = ns_tree.cursor_line
    await pilot.press("j", "j")
    assert ns_tree.cursor_line == line + 2
    below = cursor(ns_tree)
    await pilot.press("k")
    assert ns_tree.cursor_line == line + 1
    await pilot.press("down")
    assert cursor(ns_tree) == below


def test_the_keys_have_ids_for_the_keymap_and_stay_out_of_the_footer() -> None:
    ids = {
        binding.id: binding
        for binding in [*NamespaceTree.BINDINGS, *ExecutionsTable.BINDINGS]
        if isinstance(binding, Binding)
    }
    expected = {
        "tiercel.tree.collapse": "left",
        "tiercel.tree.expand": "right",
        "tiercel.vim.tree_collapse": "h",
        "tiercel.vim.tree_expand": "l",
        "tiercel.vim.tree_down": "j",
        "tiercel.vim.tree_up": "k",
        "tiercel.vim.list_down": "j",
        "tiercel.vim.list_up": "k",
        "tiercel.vim.list_first": "g",
        "tiercel.vim.list_last": "G",
    }
    for binding_id, key in expected.items():
        assert ids[binding_id].key == key and not ids[binding_id].show, binding_id
    assert all(binding in NamespaceTree.BINDINGS for binding in VIM_TREE_KEYS)
    assert all(binding in ExecutionsTable.BINDINGS for binding in VIM_LIST_KEYS)


async def test_the_keymap_remaps_a_vim_key(
    flows: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    (config / "tiercel").mkdir(parents=True)
    (config / "tiercel" / "keymap.toml").write_text('"tiercel.vim.tree_collapse" = "b"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    app = TiercelApp(flows, tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 4)
        ns_tree = app.ns_tree
        ns_tree.focus()
        await at(ns_tree, pilot, NIGHTLY)
        await pilot.press("h")
        assert cursor(ns_tree) == NIGHTLY  # h is no longer bound
        await pilot.press("b")
        assert cursor(ns_tree) == OPS
        await pilot.press("left")  # the arrow keeps its own binding
        assert not node(ns_tree, OPS).is_expanded
