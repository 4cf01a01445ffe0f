"""A read-only viewer: JSON outputs or YAML source, syntax-highlighted and scrollable."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tiercel.engine import visible


def as_json(value: Any) -> str:
    """Pretty JSON of outputs; values JSON does not know are shown as text."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


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
            text = visible(self.text)
            syntax = Syntax(text, self.lexer, line_numbers=True, word_wrap=False, theme="monokai")
            yield Static(syntax, id="viewer-body")

    def on_mount(self) -> None:
        self.query_one("#viewer", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
