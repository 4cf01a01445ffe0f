"""The help screen: the keys of the focused pane, then the keys that work everywhere."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

PANE_KEYS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "namespaces": (
        "Namespaces",
        (
            ("↑ ↓ ← →", "move; a namespace shows the executions of every flow below it"),
            ("enter", "expand or collapse a namespace"),
            ("y", "YAML source of the flow (or of a file in error, with its errors)"),
            ("v", "revisions of the flow, each diffed against the one before (m: diff against one)"),
            ("T", "triggers of the flow: on/off (space), backfill (b), pause (p), resume (u), cancel (c)"),
        ),
    ),
    "executions": (
        "Executions",
        (
            ("↑ ↓", "move; the detail pane follows (older pages load at the end)"),
            ("/", "filter: state:FAILED label:key=value trigger:Schedule text (escape clears)"),
            ("y", "source of the flow revision this execution ran"),
        ),
    ),
    "detail": (
        "Detail",
        (
            ("g", "task run tree or timeline (Gantt)"),
            ("enter", "task run tree: show only that task run's log (and the runs below it)"),
            ("P", "task run tree: replay the execution from that task run (asks first)"),
            ("a", "log of all task runs again"),
            ("o", "outputs of the task run (or of the execution) as JSON"),
            ("l", "minimum log level (TRACE DEBUG INFO WARN ERROR)"),
            ("t", "timestamps on or off"),
            ("/", "search the log: matches are highlighted (enter keeps it, escape clears)"),
            ("n N", "next and previous matching line"),
            ("f", "show only the matching lines, or all lines again"),
            ("end", "follow the tail again after scrolling up"),
            ("[ ]", "read older lines, then newer ones, from the store (the pane holds 20,000)"),
        ),
    ),
}

GLOBAL_KEYS: tuple[tuple[str, str], ...] = (
    ("r", "run the selected flow (a form when it has inputs)"),
    ("e", "edit the selected flow's file in $EDITOR; the change shows on return"),
    ("K", "kill the selected execution (asks first, defaults to No)"),
    ("R", "restart a FAILED or KILLED execution"),
    ("P", "replay the selected execution from its start (asks first)"),
    ("u", "resume a PAUSED execution (a form for a Pause's onResume inputs)"),
    ("1 2 3", "focus namespaces, executions, detail"),
    ("tab", "next pane"),
    ("ctrl+p  :", "command palette: run flow, go to namespace, kill, replay, toggle trigger, backfill ..."),
    ("?", "this help"),
    ("q", "quit (the engine stops with the dashboard)"),
)


def key_lines(keys: tuple[tuple[str, str], ...]) -> str:
    return "\n".join(f"[b cyan]{escape(key):>10}[/]  {escape(text)}" for key, text in keys)


class HelpScreen(ModalScreen[None]):
    """The keys of `pane` (when one is focused) and the global keys; escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, pane: str | None = None) -> None:
        super().__init__()
        self.pane = pane if pane in PANE_KEYS else None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            if self.pane is not None:
                title, keys = PANE_KEYS[self.pane]
                yield Static(f"[b]{title} pane[/b]")
                yield Static(key_lines(keys), id="help-pane")
                yield Static("")
            yield Static("[b]Everywhere[/b]")
            yield Static(key_lines(GLOBAL_KEYS), id="help-global")
            yield Static("\n[dim]escape closes this help[/dim]")

    def action_close(self) -> None:
        self.dismiss(None)
