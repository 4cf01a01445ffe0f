"""How a trigger and its backfill read on screen: short type, on/off, dates and a progress bar."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from tiercel.engine import SCHEDULE, BackfillProgress, TriggerState

from .shown import plain
from .states import fmt_start

BAR_WIDTH = 8
BACKFILL_STYLES = {"RUNNING": "bold cyan", "PAUSED": "magenta", "CANCELLED": "dim", "DONE": "green"}


def short_type(trigger_type: str) -> str:
    """The last part of a trigger type: Schedule, Flow, Webhook ..."""
    return trigger_type.rsplit(".", 1)[-1]


def is_schedule(state: TriggerState) -> bool:
    return state.type == SCHEDULE


def under_way(state: TriggerState) -> bool:
    """Whether the trigger has a backfill running or paused."""
    return state.backfill is not None and state.backfill.status in ("RUNNING", "PAUSED")


def on_text(state: TriggerState) -> Text:
    """on, off (by command) or off in the flow (`disabled: true` in its YAML)."""
    if state.disabled:
        return Text("flow off", style="dim strike")
    return Text("on", style="green") if state.enabled else Text("off", style="red")


def long_date(moment: datetime | None) -> str:
    """A date in local time with its year (backfill ranges may span years)."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A text progress bar."""
    done = round(max(0.0, min(fraction, 1.0)) * width)
    return "█" * done + "░" * (width - done)


def backfill_cell(progress: BackfillProgress | None) -> Text:
    """Status, fired count and a small bar: what the table shows of a backfill."""
    if progress is None:
        return Text("-", style="dim")
    style = BACKFILL_STYLES.get(progress.status, "")
    return Text.assemble((progress.status, style), f" {progress.fired} ", (bar(progress.fraction), style))


def backfill_summary(progress: BackfillProgress | None) -> str:
    """One line about a backfill for the detail under the table."""
    if progress is None:
        return "No backfill. b starts one over past dates."
    at = f", next slot {long_date(progress.current)}" if progress.current is not None else ""
    skipped = f", {progress.skipped} skipped" if progress.skipped else ""
    return (
        f"Backfill {progress.status} {long_date(progress.start)} → {long_date(progress.end)}: "
        f"{progress.fired} fired{skipped}{at}"
    )


def row_cells(state: TriggerState) -> tuple[object, ...]:
    """Cells in column order: id, type, on, last, next, backfill."""
    return (
        plain(state.trigger_id),  # a plain str cell would be read as markup
        plain(short_type(state.type)),
        on_text(state),
        fmt_start(state.last_date) or "-",
        fmt_start(state.next_date) or "-",
        backfill_cell(state.backfill),
    )
