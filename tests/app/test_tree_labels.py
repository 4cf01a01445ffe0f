"""Tree labels in a narrow pane: a long name is cut with an ellipsis, its glyph and badges always show."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widgets.tree import TreeNode

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.namespaces import NamespaceTree, NodeRef, fit_label

LOG = "io.kestra.plugin.core.log.Log"
LONG = "nightly_warehouse_export"  # whole in a 40-column pane, cut in the 24 columns of an 80-column terminal
DEEP = "reconcile_every_ledger_of_every_subsidiary"
TRIGGERS = """
triggers:
  - {id: yearly, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 0 1 1 *"}
  - {id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: k3y, disabled: true}
"""


def flow(namespace: str, flow_id: str, extra: str = "") -> str:
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - {{id: say, type: {LOG}, message: hi}}\n{extra}"
    )


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    (folder / "acme" / "finance" / "ledgers").mkdir(parents=True)
    (folder / "acme" / "hello.yml").write_text(flow("acme", "hello"))
    (folder / "acme" / f"{LONG}.yml").write_text(flow("acme", LONG, TRIGGERS))
    (folder / "acme" / "finance" / "ledgers" / f"{DEEP}.yml").write_text(flow("acme.finance.ledgers", DEEP))
    (folder / "acme" / "broken.yml").write_text("id: broken\nnamespace: acme\ntasks: [unclosed\n")
    return folder


@pytest.fixture
async def narrow(flows: Path, tmp_path: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    app = TiercelApp(flows, tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 3)
        yield app, pilot


def node(tree: NamespaceTree, ref: NodeRef) -> TreeNode[NodeRef]:
    stack = [tree.root]
    while stack:
        found = stack.pop()
        if found.data == ref:
            return found
        stack.extend(found.children)
    raise AssertionError(f"{ref} is not in the tree")


async def drawn(tree: NamespaceTree, pilot: Pilot[None], ref: NodeRef) -> tuple[str, Strip]:
    """The part of the node's line the pane shows (left of any scrollbar), and the whole line."""
    tree.move_cursor(node(tree, ref))
    await pilot.pause()
    strip = tree.render_line(node(tree, ref).line - tree.scroll_offset.y)
    return strip.text[: tree.scrollable_content_region.width], strip


def beyond_the_pane(tree: NamespaceTree, strip: Strip) -> str:
    return strip.text[tree.scrollable_content_region.width :].strip()


async def test_a_long_flow_name_is_cut_and_its_state_and_trigger_badges_still_show(
    narrow: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = narrow
    tree = app.ns_tree
    assert tree.scrollable_content_region.width < len(f"├ ○ {LONG} ⏱⚡")
    shown, strip = await drawn(tree, pilot, NodeRef("flow", "acme", LONG))
    label = shown.rstrip()
    assert label.endswith("… ⏱⚡"), shown
    assert f"○ {LONG[:6]}" in label
    assert not beyond_the_pane(tree, strip)
    # The webhook is off in the flow: its badge is struck through, the schedule's is not.
    styles = {segment.text: segment.style for segment in strip if segment.text in ("⏱", "⚡")}
    assert styles["⚡"] is not None and styles["⚡"].strike
    assert styles["⏱"] is not None and not styles["⏱"].strike
    # Nothing is left to scroll to sideways.
    assert tree.virtual_size.width <= tree.scrollable_content_region.width


async def test_a_deep_flow_keeps_its_state_glyph_and_the_start_of_its_name(
    narrow: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = narrow
    tree = app.ns_tree
    ref = NodeRef("flow", "acme.finance.ledgers", DEEP)
    tree.set_last_state("acme.finance.ledgers", DEEP, "FAILED")
    shown, strip = await drawn(tree, pilot, ref)
    assert f"✘ {DEEP[:5]}" in shown and shown.rstrip().endswith("…"), shown
    assert not beyond_the_pane(tree, strip)


async def test_labels_follow_the_width_of_the_pane(narrow: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = narrow
    tree = app.ns_tree
    ref = NodeRef("flow", "acme", LONG)
    await pilot.resize_terminal(160, 40)
    await until_drawn(pilot, lambda: tree.scrollable_content_region.width > 30)
    shown, _ = await drawn(tree, pilot, ref)
    assert f"○ {LONG} ⏱⚡" in shown and "…" not in shown
    await pilot.resize_terminal(80, 24)
    await until_drawn(pilot, lambda: tree.scrollable_content_region.width < 24)
    shown, strip = await drawn(tree, pilot, ref)
    assert shown.rstrip().endswith("… ⏱⚡") and not beyond_the_pane(tree, strip)


async def test_the_invalid_files_title_keeps_its_count_in_a_very_narrow_pane(
    narrow: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = narrow
    tree = app.ns_tree
    pane = app.query_one("#left")
    pane.styles.min_width = 14
    pane.styles.width = 14
    await until_drawn(pilot, lambda: tree.scrollable_content_region.width <= 12)
    shown, strip = await drawn(tree, pilot, NodeRef("errors"))
    assert "✘ " in shown and shown.rstrip().endswith("… (1)"), shown
    assert not beyond_the_pane(tree, strip)
    # A file in error keeps the start of its path.
    error = node(tree, NodeRef("errors")).children[0]
    assert error.data is not None
    shown, strip = await drawn(tree, pilot, error.data)
    assert "acme/" in shown and shown.rstrip().endswith("…") and not beyond_the_pane(tree, strip)


def test_fit_label_cuts_only_the_name_and_keeps_its_first_character() -> None:
    head, name, tail = Text("✔ "), Text("nightly_pipeline"), Text(" ⏱⚡")  # ⚡ takes two cells
    assert fit_label(head, name, tail, 40).plain == "✔ nightly_pipeline ⏱⚡"
    assert fit_label(head, name, tail, 22).plain == "✔ nightly_pipeline ⏱⚡"
    assert fit_label(head, name, tail, 21).plain == "✔ nightly_pipeli… ⏱⚡"
    assert fit_label(head, name, tail, 12).plain == "✔ night… ⏱⚡"
    assert fit_label(head, name, tail, 3).plain == "✔ n… ⏱⚡"
    assert fit_label(Text(), Text("ops"), Text(), 3).plain == "ops"
