"""The detail pane holds at most LOG_KEEP lines of a long log and pages through the rest with [ and ]."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.reliability.large_logs import NAMESPACE, create, message
from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.detail import LOG_KEEP, LOG_PAGE
from tiercel.engine.model import LogEntry, LogLevel, utcnow

LINES = LOG_KEEP + 2 * LOG_PAGE + 1234


def held(app: TiercelApp) -> tuple[str, str, int]:
    """The first and last messages the pane holds, and how many."""
    entries = app.detail.entries
    return entries[0].message, entries[-1].message, len(entries)


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[tuple[TiercelApp, Pilot[None], str]]:
    db = tmp_path / "db" / "tiercel.db"
    execution_id = await create(db, LINES)
    flows = tmp_path / "flows"
    flows.mkdir()
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None)
        app.show_execution(execution_id)
        await until_drawn(pilot, lambda: app.detail.execution is not None and len(app.detail.entries) > 0)
        await pilot.press("3")
        yield app, pilot, execution_id


async def press_and_wait(app: TiercelApp, pilot: Pilot[None], key: str, first: str) -> None:
    await pilot.press(key)
    await until_drawn(pilot, lambda: app.detail.entries[0].message == first)
    await pilot.pause()


async def test_an_execution_opens_on_its_newest_lines_only(
    opened: tuple[TiercelApp, Pilot[None], str],
) -> None:
    app, _, _ = opened
    assert held(app) == (message(LINES - LOG_KEEP), message(LINES - 1), LOG_KEEP)
    assert app.detail.log_widget.line_count == LOG_KEEP
    assert app.detail.at_tail and app.detail.more_before
    assert "[ older" in str(app.detail.border_subtitle)


@pytest.mark.slow
async def test_older_and_newer_pages_keep_the_pane_bounded(
    opened: tuple[TiercelApp, Pilot[None], str],
) -> None:
    app, pilot, _ = opened
    detail = app.detail
    start = LINES - LOG_KEEP

    await press_and_wait(app, pilot, "left_square_bracket", message(start - LOG_PAGE))
    assert held(app) == (message(start - LOG_PAGE), message(LINES - 1 - LOG_PAGE), LOG_KEEP)
    assert not detail.at_tail and detail.more_before
    assert "] newer" in str(detail.border_subtitle)
    # The view stays where the older page meets the lines shown before.
    assert 0 < detail.log_widget.scroll_y <= LOG_PAGE

    await press_and_wait(app, pilot, "left_square_bracket", message(start - 2 * LOG_PAGE))
    await press_and_wait(app, pilot, "left_square_bracket", message(0))
    assert held(app) == (message(0), message(LOG_KEEP - 1), LOG_KEEP)
    assert not detail.more_before
    assert detail.log_widget.line_count == LOG_KEEP

    # Live lines of the execution are not mixed into older lines: `]` reads them in order.
    live = LogEntry(detail.execution_id or "", NAMESPACE, "chatty", utcnow(), LogLevel.INFO, "live line")
    detail.add_entries([live])
    await pilot.pause(0.2)
    assert detail.entries[-1].message == message(LOG_KEEP - 1)

    await press_and_wait(app, pilot, "right_square_bracket", message(LOG_PAGE))
    assert held(app) == (message(LOG_PAGE), message(LOG_KEEP + LOG_PAGE - 1), LOG_KEEP)
    await press_and_wait(app, pilot, "right_square_bracket", message(2 * LOG_PAGE))
    await press_and_wait(app, pilot, "right_square_bracket", message(start))
    assert held(app) == (message(start), message(LINES - 1), LOG_KEEP)
    assert detail.at_tail

    # Back at the tail, live lines are shown again.
    detail.add_entries([live])
    await until_drawn(pilot, lambda: detail.entries[-1].message == "live line")


@pytest.mark.slow
async def test_level_filter_applies_to_the_lines_held(opened: tuple[TiercelApp, Pilot[None], str]) -> None:
    app, pilot, _ = opened
    for _ in range(4):  # TRACE -> DEBUG -> INFO -> WARN -> ERROR
        await pilot.press("l")
    await pilot.pause()
    errors = [line for line in app.detail.log_widget.lines if "ERROR" in line]
    assert len(errors) == app.detail.log_widget.line_count == LOG_KEEP // 1000
