"""State glyphs and colours shared by the panes."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text

GLYPHS: dict[str, tuple[str, str]] = {
    "CREATED": ("·", "dim"),
    "QUEUED": ("·", "dim"),
    "RUNNING": ("▶", "bold cyan"),
    "RETRYING": ("↻", "yellow"),
    "RESTARTED": ("↻", "cyan"),
    "RESUBMITTED": ("↻", "cyan"),
    "PAUSED": ("⏸", "magenta"),
    "BREAKPOINT": ("⏸", "magenta"),
    "KILLING": ("◌", "yellow"),
    "SUCCESS": ("✔", "green"),
    "WARNING": ("!", "yellow"),
    "FAILED": ("✘", "bold red"),
    "KILLED": ("■", "red"),
    "CANCELLED": ("■", "dim"),
    "SKIPPED": ("»", "dim"),
    "RETRIED": ("↻", "dim"),
}


def glyph(state: str) -> Text:
    """The coloured one-character glyph of a state."""
    char, style = GLYPHS.get(state, ("?", ""))
    return Text(char, style=style)


def state_text(state: str) -> Text:
    """Glyph and name of a state, coloured."""
    char, style = GLYPHS.get(state, ("?", ""))
    return Text(f"{char} {state}", style=style)


def fmt_duration(delta: timedelta | None) -> str:
    """A short duration: 0.4s, 12s, 3m05s, 2h03m."""
    if delta is None:
        return ""
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_start(when: datetime | None, now: datetime | None = None) -> str:
    """Local start time: HH:MM:SS today, else MM-DD HH:MM."""
    if when is None:
        return ""
    local = when.astimezone()
    today = (now or datetime.now().astimezone()).date()
    return local.strftime("%H:%M:%S") if local.date() == today else local.strftime("%m-%d %H:%M")
