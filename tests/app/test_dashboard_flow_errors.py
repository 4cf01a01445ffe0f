"""Pilot tests of the dashboard's flow errors as files are broken and fixed under the running app."""

from __future__ import annotations

from pathlib import Path

from textual.widgets.tree import TreeNode

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.namespaces import NodeRef

GOOD = """\
id: report
namespace: acme
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hello
"""


def nodes(app: TiercelApp) -> list[TreeNode[NodeRef]]:
    found = []
    stack = [app.ns_tree.root]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(node.children)
    return found


def shows_error(app: TiercelApp) -> bool:
    """The file's error is listed in the tree (its label starts with the file's path)."""
    return any(str(node.label).startswith("report.yml:") for node in nodes(app))


def shows_flow(app: TiercelApp) -> bool:
    return any(node.data == NodeRef("flow", "acme", "report") for node in nodes(app))


async def test_undoing_a_typo_removes_the_error_from_the_tree(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    folder.mkdir()
    file = folder / "report.yml"
    file.write_text(GOOD)
    app = TiercelApp(folder, tmp_path / "tiercel.db", control=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and shows_flow(app), what="the flow")
        assert not shows_error(app)

        file.write_text(GOOD.replace("tasks:", "taskz:"))
        await until_drawn(pilot, lambda: shows_error(app), what="the error in the tree")

        file.write_text(GOOD)  # the undo: the content of the stored revision
        await until_drawn(pilot, lambda: not shows_error(app), what="the error gone from the tree")
        assert shows_flow(app)
        assert app.engine is not None
        assert [r for r, _, _ in await app.engine.flow_revisions("acme", "report")] == [1]
