"""The dashboard's panes and the widgets they are made of."""

from __future__ import annotations

from typing import TypedDict


class WidgetArgs(TypedDict, total=False):
    """The keyword arguments every Textual widget takes, passed through by the panes' constructors."""

    name: str | None
    id: str | None
    classes: str | None
    disabled: bool
