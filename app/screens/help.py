"""The help screen: every key of the dashboard."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("r", "run the selected flow (a form when it has inputs)"),
    ("K", "kill the selected execution (asks first)"),
    ("R", "restart a FAILED or KILLED execution"),
    ("u", "resume a PAUSED execution (a form for a Pause's onResume inputs)"),
    ("/", "executions: filter (state:FAILED label:k=v text; escape clears)"),
    ("y", "namespaces: YAML source of a flow (or a file in error)"),
    ("o", "detail: outputs of the task run (or of the execution) as JSON"),
    ("1 2 3", "focus namespaces, executions, detail"),
    ("g", "detail: task run tree or timeline"),
    ("enter", "task run tree: show only that task run's log"),
    ("a", "detail: log of all task runs again"),
    ("l", "detail: minimum log level (TRACE DEBUG INFO WARN ERROR)"),
    ("t", "detail: timestamps on or off"),
    ("/", "detail: search the log (escape clears)"),
    ("tab", "next pane"),
    ("↑ ↓ enter", "move and open in a pane"),
    ("?", "this help"),
    ("q", "quit (the engine stops with the dashboard)"),
)


class HelpScreen(ModalScreen[None]):
    """Lists the keys; any of escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Static("[b]Tiercel keys[/b]\n")
            yield Static("\n".join(f"[b cyan]{key:>9}[/]  {text}" for key, text in KEYS))
            yield Static("\n[dim]escape closes this help[/dim]")

    def action_close(self) -> None:
        self.dismiss(None)
