"""A read-only viewer: JSON outputs or YAML source, syntax-highlighted and scrollable."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.theme import Theme
from textual.widgets import Footer, Label, Static

from tiercel.engine import visible

#: Pygments styles for the app's dark and light themes.
DARK_SYNTAX = "monokai"
LIGHT_SYNTAX = "default"


def as_json(value: Any) -> str:
    """Pretty JSON of outputs; values JSON does not know are shown as text."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def syntax_theme(dark: bool, ansi: bool = False) -> str:
    """The highlighting that reads on the app's background (the terminal's own colours in ANSI mode)."""
    if ansi:
        return "ansi_dark" if dark else "ansi_light"
    return DARK_SYNTAX if dark else LIGHT_SYNTAX


class ViewerScreen(ModalScreen[None]):
    """Shows `text` highlighted as `lexer`, with optional lines (errors) above it; escape closes.

    The text may be a broken flow file or outputs: its control characters are shown as ``\\xNN``.
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close", id="tiercel.viewer.close")]

    def __init__(self, title: str, text: str, lexer: str, notes: list[str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.text = text
        self.lexer = lexer
        self.notes = notes or []

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="viewer", classes="dialog"):
            yield Label(visible(self.title_text), id="viewer-title", markup=False)
            if self.notes:
                yield Static(visible("\n".join(self.notes)), id="viewer-notes", markup=False)
            yield Static(self.highlighted(), id="viewer-body")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#viewer", VerticalScroll).focus()
        self.app.theme_changed_signal.subscribe(self, self.follow_theme)

    @property
    def syntax_theme(self) -> str:
        """The highlighting for the app's current theme."""
        return syntax_theme(self.app.current_theme.dark, self.app.native_ansi_color)

    def highlighted(self) -> Syntax:
        return Syntax(
            visible(self.text), self.lexer, line_numbers=True, word_wrap=False, theme=self.syntax_theme
        )

    def follow_theme(self, theme: Theme) -> None:
        """Switch the highlighting between light and dark with the app's theme."""
        self.query_one("#viewer-body", Static).update(self.highlighted())

    def action_close(self) -> None:
        self.dismiss(None)
