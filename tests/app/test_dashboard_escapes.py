"""The dashboard shows untrusted text as text: escapes made visible, markup literal, secrets masked."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.segment import Segment
from textual.color import Color
from textual.pilot import Pilot

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.screens.viewer import ViewerScreen
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.app.widgets.shown import ControlFilter
from tiercel.engine.model import Label

TOKEN = "dash-Secret-Token-77"
HOSTILE = r"""
id: hostile
namespace: acme
tasks:
  - id: shout
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - printf 'title \033]0;PWNED\007 clip \033]52;c;aGk=\033\\ clear \033[2J [red]red[/red] [link=https://x]l[/link]\n'
      - printf 'over\rwritten\n'
      - printf '::{"outputs":{"raw":"\\u001b]0;PWNED\\u0007"}}::\n'
  - id: token
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('API_TOKEN') }}"
outputs:
  - {id: token, type: STRING, value: "{{ outputs.token.value }}"}
  - {id: raw, type: STRING, value: "{{ outputs.shout.vars.raw }}"}
"""
CONTROLS = [chr(code) for code in (*range(0x20), *range(0x7F, 0xA0)) if chr(code) not in "\t\n"]


def has_control(text: str) -> bool:
    return any(char in text for char in CONTROLS)


@pytest.fixture
async def running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[TiercelApp, Pilot[None]]]:
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(TOKEN.encode()).decode())
    flows = tmp_path / "flows"
    (flows / "acme").mkdir(parents=True)
    (flows / "acme" / "hostile.yml").write_text(HOSTILE.lstrip())
    app = TiercelApp(flows, tmp_path / "t.db", control=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        yield app, pilot


async def run_hostile(app: TiercelApp, pilot: Pilot[None]) -> str:
    assert app.engine is not None
    labels = [Label("token", TOKEN), Label("evil", "\x1b]0;LABEL\x07[red]r[/red]")]
    execution_id = await app.engine.trigger("acme", "hostile", {}, labels)
    await asyncio.wait_for(app.engine.wait(execution_id), 30)
    assert app.ns_tree.select_ref(NodeRef("flow", "acme", "hostile"))
    # The dashboard may show it live from its start: wait for its end to reach the screen.
    await until_drawn(
        pilot,
        lambda: (
            app.detail.execution_id == execution_id
            and app.detail.execution is not None
            and app.detail.execution.state.current.is_terminated
        ),
    )
    await until_drawn(pilot, lambda: any("over" in line for line in app.detail.log_widget.lines))
    return execution_id


async def test_log_lines_show_escapes_and_markup_as_text(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    await run_hostile(app, pilot)
    lines = app.detail.log_widget.lines
    assert not any(has_control(line) for line in lines), lines
    shouted = next(line for line in lines if "title" in line)
    assert "title \\x1b]0;PWNED\\x07 clip \\x1b]52;c;aGk=\\x1b\\ clear \\x1b[2J" in shouted
    assert "[red]red[/red] [link=https://x]l[/link]" in shouted
    assert any("over\\x0dwritten" in line for line in lines)


async def test_labels_and_outputs_are_masked_and_escaped_on_screen_but_real_in_data(
    running: tuple[TiercelApp, Pilot[None]],
) -> None:
    app, pilot = running
    execution_id = await run_hostile(app, pilot)
    row = app.table.rows_by_id[execution_id]
    labels_cell = app.table.cells(row)[-1].plain
    assert TOKEN not in labels_cell and "token=******" in labels_cell
    assert "evil=\\x1b]0;LABEL\\x07[red]r[/red]" in labels_cell
    view = app.detail.outputs_view()
    assert view is not None
    _, text = view
    assert TOKEN not in text and '"token": "******"' in text
    # JSON viewers show JSON's own escapes, so the text stays valid JSON.
    assert '"raw": "\\u001b]0;PWNED\\u0007"' in text and not has_control(text)
    await pilot.press("3", "o")
    await until_drawn(pilot, lambda: isinstance(app.screen, ViewerScreen))
    # The data keeps the real values.
    assert app.engine is not None
    stored = await app.engine.execution(execution_id)
    assert stored is not None and stored.outputs["token"] == TOKEN
    assert stored.outputs["raw"] == "\x1b]0;PWNED\x07"
    assert dict(stored.labels_map())["token"] == TOKEN


async def test_notifications_are_plain_text(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, pilot = running
    app.notify(f"boom \x1b]0;X\x07 [red]{TOKEN}[/red]", title="[b]t\x1b[2J")
    await pilot.pause()
    shown = list(app._notifications)[-1]
    assert shown.message == "boom \\x1b]0;X\\x07 [red]******[/red]"
    assert shown.title == "[b]t\\x1b[2J" and shown.markup is False


def test_the_last_guard_drops_control_characters_and_keeps_the_width() -> None:
    guard = ControlFilter()
    line = [Segment("a\x1b]0;X\x07b"), Segment("\x9b2Jc", None), Segment("plain")]
    kept = guard.apply(line, Color(0, 0, 0))
    assert [segment.text for segment in kept] == ["a]0;Xb", "2Jc", "plain"]
    assert sum(s.cell_length for s in kept) == sum(s.cell_length for s in line)
    clean = [Segment("nothing to drop")]
    assert guard.apply(clean, Color(0, 0, 0)) is clean


async def test_the_guard_is_among_the_apps_line_filters(running: tuple[TiercelApp, Pilot[None]]) -> None:
    app, _ = running
    assert any(isinstance(f, ControlFilter) for f in app.get_line_filters())
    assert any(isinstance(f, ControlFilter) for f in app.detail.log_widget.get_line_filters())
