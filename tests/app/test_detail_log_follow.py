"""The execution log follows its tail until scrolled up, and follows again at the bottom (End, G ...)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.cells import cell_len
from textual import events
from textual.pilot import Pilot

from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.execution_log import ExecutionLog
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.engine.model import LogEntry, LogLevel

CHATTY = """
id: chatty
namespace: acme
tasks:
  - {id: say, type: io.kestra.plugin.core.log.Log, message: first words}
"""


class Lines:
    """Live log lines of the shown execution, numbered on from the last ones given."""

    def __init__(self, app: TiercelApp) -> None:
        self.app = app
        self.count = 0

    def add(self, count: int) -> str:
        """Give the pane `count` more live lines; return the last one's message."""
        execution_id = self.app.detail.execution_id or ""
        now = datetime.now(UTC)
        entries = [
            LogEntry(execution_id, "acme", "chatty", now, LogLevel.INFO, f"line {self.count + n}")
            for n in range(count)
        ]
        self.count += count
        self.app.detail.add_entries(entries)
        return entries[-1].message


@pytest.fixture
async def shown(tmp_path: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None], Lines]]:
    """The dashboard at 80 columns on a finished execution whose log is a few pages long."""
    flows = tmp_path / "flows"
    (flows / "acme").mkdir(parents=True)
    (flows / "acme" / "chatty.yml").write_text(CHATTY)
    app = TiercelApp(flows, tmp_path / "db" / "tiercel.db", control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        assert app.ns_tree.select_ref(NodeRef("flow", "acme", "chatty"))
        await until_drawn(pilot, lambda: app.selected_flow is not None)
        await pilot.press("r")
        await until_drawn(
            pilot,
            lambda: (
                app.detail.execution is not None
                and app.detail.execution.state.current.is_terminated
                and any("first words" in line for line in app.detail.log_widget.lines)
            ),
        )
        lines = Lines(app)
        await written(pilot, app.detail.log_widget, lines.add(100))
        await pilot.press("3")
        assert app.focused is app.detail.log_widget
        yield app, pilot, lines


async def written(pilot: Pilot[None], log: ExecutionLog, message: str) -> None:
    """Wait until the line with `message` is in the log (live lines are flushed on a timer)."""
    await until_drawn(pilot, lambda: any(line.endswith(message) for line in log.lines), what=message)
    await pilot.pause()


def at_bottom(log: ExecutionLog) -> bool:
    return log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y


def status(app: TiercelApp) -> str:
    return str(app.detail.border_subtitle)


def wheel(log: ExecutionLog, event: type[events.MouseScrollUp | events.MouseScrollDown]) -> None:
    """A turn of the mouse wheel over the log."""
    log.post_message(event(log, 1, 1, 0, 0, 0, False, False, False))


async def test_end_follows_again_while_lines_keep_coming(
    shown: tuple[TiercelApp, Pilot[None], Lines],
) -> None:
    app, pilot, lines = shown
    log = app.detail.log_widget
    assert log.auto_scroll and at_bottom(log)

    await pilot.press("pageup")
    assert not log.auto_scroll
    await written(pilot, log, lines.add(1))
    assert status(app) == "1 new line ↓ (End follows)"
    await written(pilot, log, lines.add(4))
    assert status(app) == "5 new lines ↓ (End follows)"
    assert not at_bottom(log)

    await pilot.press("end")
    assert log.auto_scroll and at_bottom(log) and status(app) == ""
    # Following, not one jump: batch after batch ends in view and nothing is counted as unseen.
    for _ in range(5):
        await written(pilot, log, lines.add(7))
        assert at_bottom(log) and status(app) == ""


@pytest.mark.parametrize("key", ["k", "up", "pageup", "home", "g"])
async def test_scrolling_up_by_any_key_stops_following(
    shown: tuple[TiercelApp, Pilot[None], Lines], key: str
) -> None:
    app, pilot, lines = shown
    log = app.detail.log_widget
    top = log.scroll_y
    await pilot.press(key)
    assert log.scroll_y < top and not log.auto_scroll
    if key in ("home", "g"):
        assert log.scroll_y == 0
    await written(pilot, log, lines.add(3))
    assert not at_bottom(log) and status(app) == "3 new lines ↓ (End follows)"


async def test_the_mouse_wheel_stops_and_resumes_following(
    shown: tuple[TiercelApp, Pilot[None], Lines],
) -> None:
    app, pilot, lines = shown
    log = app.detail.log_widget
    wheel(log, events.MouseScrollUp)
    await until_drawn(pilot, lambda: not log.auto_scroll)
    await written(pilot, log, lines.add(2))
    assert status(app) == "2 new lines ↓ (End follows)"
    while not log.auto_scroll:  # down to the bottom, a turn at a time
        wheel(log, events.MouseScrollDown)
        await pilot.pause()
    assert at_bottom(log) and status(app) == ""
    await written(pilot, log, lines.add(3))
    assert at_bottom(log) and status(app) == ""


@pytest.mark.parametrize("keys", [("G",), ("end",), ("j",) * 200, ("pagedown",) * 20, ("down",) * 200])
async def test_reaching_the_bottom_by_any_key_follows_again(
    shown: tuple[TiercelApp, Pilot[None], Lines], keys: tuple[str, ...]
) -> None:
    app, pilot, lines = shown
    log = app.detail.log_widget
    await pilot.press("home")
    await written(pilot, log, lines.add(2))
    assert not log.auto_scroll and log.scroll_y == 0
    for key in keys:
        await pilot.press(key)
        if log.auto_scroll:
            break
    assert log.auto_scroll and at_bottom(log) and status(app) == ""
    await written(pilot, log, lines.add(3))
    assert at_bottom(log) and status(app) == ""


async def test_j_and_k_move_one_line(shown: tuple[TiercelApp, Pilot[None], Lines]) -> None:
    app, pilot, _ = shown
    log = app.detail.log_widget
    await pilot.press("home", "j", "j")
    assert log.scroll_y == 2
    await pilot.press("k")
    assert log.scroll_y == 1


async def test_a_resize_or_the_timeline_keeps_following(shown: tuple[TiercelApp, Pilot[None], Lines]) -> None:
    app, pilot, lines = shown
    log = app.detail.log_widget
    await pilot.resize_terminal(80, 18)  # a shorter log: its end moves down
    await written(pilot, log, lines.add(2))
    assert log.auto_scroll and at_bottom(log)
    await pilot.resize_terminal(80, 30)
    await written(pilot, log, lines.add(2))
    assert log.auto_scroll and at_bottom(log)

    await pilot.press("v")
    assert app.detail.showing_timeline
    await written(pilot, log, lines.add(2))
    assert log.auto_scroll and at_bottom(log) and status(app) == ""
    await pilot.press("v")
    await written(pilot, log, lines.add(2))
    assert log.auto_scroll and at_bottom(log) and status(app) == ""


async def test_a_resize_does_not_follow_a_log_scrolled_up(
    shown: tuple[TiercelApp, Pilot[None], Lines],
) -> None:
    app, pilot, lines = shown
    log = app.detail.log_widget
    await pilot.press("home")
    await pilot.resize_terminal(80, 18)
    await pilot.press("v")
    await written(pilot, log, lines.add(2))
    assert not log.auto_scroll and log.scroll_y == 0
    assert status(app) == "2 new lines ↓ (End follows)"


# -- wrapping long lines -------------------------------------------------------------------------
LONG = "a long message " + "that goes on " * 14 + "and ends here"


def long_line(app: TiercelApp) -> str:
    """Give the pane one live line far wider than the log; return its message."""
    entry = LogEntry(app.detail.execution_id or "", "acme", "chatty", datetime.now(UTC), LogLevel.INFO, LONG)
    app.detail.add_entries([entry])
    return LONG


def widest(log: ExecutionLog) -> int:
    return max(cell_len(row) for row in log.lines)


def fits(log: ExecutionLog) -> bool:
    width = log.scrollable_content_region.width
    return all(cell_len(row) <= width for row in log.lines)


async def test_w_wraps_long_lines_at_the_pane_width_and_keeps_following(
    shown: tuple[TiercelApp, Pilot[None], Lines],
) -> None:
    app, pilot, lines = shown
    log = app.detail.log_widget
    await written(pilot, log, long_line(app))
    assert not fits(log) and log.max_scroll_x > 0
    rows = len(log.lines)

    await pilot.press("w")
    assert log.wrap and status(app) == "wrap"
    assert fits(log) and len(log.lines) > rows and log.max_scroll_x == 0
    assert LONG in "".join(log.lines)  # its rows, in order
    assert log.auto_scroll and at_bottom(log)
    await written(pilot, log, lines.add(3))
    assert at_bottom(log) and log.lines[-1].endswith("line 102")

    narrow = log.scrollable_content_region.width
    await pilot.resize_terminal(160, 24)  # wider: the long line is cut again, into rows as wide as the log
    await until_drawn(pilot, lambda: log.scrollable_content_region.width > narrow)
    await until_drawn(pilot, lambda: widest(log) == log.scrollable_content_region.width)
    assert fits(log) and log.auto_scroll and at_bottom(log)

    await pilot.press("w")
    assert not log.wrap and status(app) == ""
    assert len(log.lines) == rows + 3 and any(row.endswith(LONG) for row in log.lines)
    await pilot.pause()  # the sideways scrollbar is back: the tail stays in view
    assert log.auto_scroll and at_bottom(log)


async def test_wrapping_keeps_the_filters_the_search_and_the_place_read(
    shown: tuple[TiercelApp, Pilot[None], Lines],
) -> None:
    app, pilot, lines = shown
    log = app.detail.log_widget
    await written(pilot, log, long_line(app))
    await written(pilot, log, lines.add(30))
    await pilot.press("l")  # at least DEBUG: the lines (INFO) all stay
    await pilot.press("slash", *"line 12", "enter")
    assert app.detail.search == "line 12"
    before = len(log.matching_lines())

    longest = next(i for i, row in enumerate(log.lines) if row.endswith(LONG))
    await pilot.press("home", *["j"] * (longest + 2))
    top = log.lines[int(log.scroll_y)]
    assert not log.auto_scroll and log.scroll_y == longest + 2

    await pilot.press("w")
    assert log.wrap and not log.auto_scroll
    assert log.lines[int(log.scroll_y)] == top and log.scroll_y > longest + 2  # the long line's rows above
    assert status(app) == "≥DEBUG /line 12 · wrap"
    assert len(log.matching_lines()) == before
    await pilot.press("n")
    match = log.match_line
    assert match is not None and "line 12" in log.lines[match]
    strip = log.render_line(match - int(log.scroll_y))
    assert any(segment.style is not None and segment.style.bgcolor is not None for segment in strip)

    await pilot.press("w")
    assert not log.wrap and app.detail.search == "line 12" and app.detail.min_level is LogLevel.DEBUG
