"""Untrusted text on screen: secrets masked, control characters made visible, never read as markup.

Log lines, outputs, labels, loop values and error texts come from tasks, webhook clients and flow
files. Widgets show them through :func:`plain` (a Rich ``Text``, so ``[red]`` or ``[link=...]``
stays text) after :func:`shown` (secrets masked, escapes as ``\\xNN``). :class:`ControlFilter` is the
last guard: whatever still holds a control character when a line is drawn loses it there.
"""

from __future__ import annotations

import re
from typing import Any

from rich.segment import Segment
from rich.text import Text
from textual.color import Color
from textual.filter import LineFilter
from textual.widget import Widget

from tiercel.engine import Masker, visible

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def masker_of(widget: Widget) -> Masker | None:
    """The masker of the engine the dashboard runs, or None (no engine yet, or a bare test app)."""
    try:
        engine = getattr(widget.app, "engine", None)
    except Exception:  # not mounted in an app
        return None
    masker = getattr(engine, "masker", None)
    return masker if isinstance(masker, Masker) else None


def shown(value: object, masker: Masker | None = None) -> str:
    """`value` as text for the screen: secrets masked, control characters as ``\\xNN``."""
    text = str(value)
    if masker:
        text = masker.mask(text)
    return visible(text)


def shown_value(value: Any, masker: Masker | None = None) -> Any:
    """A JSON-like value with every secret masked, for the outputs viewers (data stays untouched)."""
    return masker.mask_value(value) if masker else value


def plain(value: object, style: str = "", masker: Masker | None = None) -> Text:
    """`value` as a Rich Text (never parsed as markup), masked and with control characters shown."""
    return Text(shown(value, masker), style=style)


class ControlFilter(LineFilter):
    """Drops control characters from the text of drawn lines, so none reaches the terminal.

    Text is made visible before it is laid out; this catches what a code path forgot. Rich counts
    control characters as zero cells wide, so dropping them keeps every line's width.
    """

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if not any(_CONTROL.search(segment.text) for segment in segments if not segment.control):
            return segments
        return [
            segment
            if segment.control
            else Segment(_CONTROL.sub("", segment.text), segment.style, segment.control)
            for segment in segments
        ]
