"""The source viewer's highlighting follows the app's theme: light on light themes, dark on dark."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.screens.viewer import ViewerScreen, syntax_theme
from tiercel.app.widgets.namespaces import NodeRef

FLOW = """
id: hello
namespace: acme
tasks:
  - {id: say, type: io.kestra.plugin.core.log.Log, message: hello}
"""


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    folder = tmp_path / "flows" / "acme"
    folder.mkdir(parents=True)
    (folder / "hello.yml").write_text(FLOW)
    app = TiercelApp(tmp_path / "flows", tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 1)
        yield app, pilot


def lightness(body: Static) -> set[bool]:
    """For each background colour of the first drawn line of the source, whether it is light."""
    found: set[bool] = set()
    for segment in body.render_line(0):
        colour = segment.style.bgcolor if segment.style is not None else None
        if colour is not None:
            red, green, blue = colour.get_truecolor()
            found.add(red + green + blue > 3 * 128)
    return found


def test_the_syntax_theme_matches_light_or_dark_and_ansi() -> None:
    assert syntax_theme(dark=True) == "monokai"
    assert syntax_theme(dark=False) != "monokai"
    assert syntax_theme(dark=True, ansi=True) == "ansi_dark"
    assert syntax_theme(dark=False, ansi=True) == "ansi_light"


async def test_the_source_viewer_follows_the_theme_while_open(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    app.theme = "textual-light"
    assert app.ns_tree.select_ref(NodeRef("flow", "acme", "hello"))
    await until_drawn(pilot, lambda: app.selected_flow is not None)
    await pilot.press("1", "y")
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    body = app.screen.query_one("#viewer-body", Static)
    await pilot.pause()
    assert lightness(body) == {True}
    app.theme = "textual-dark"
    await until_drawn(pilot, lambda: lightness(body) == {False})
    app.theme = "textual-light"
    await until_drawn(pilot, lambda: lightness(body) == {True})
