"""The help screen: the keys of the focused pane, then the keys that work everywhere."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

#: (keys, what they do, the ids of their bindings: one for all the keys, or one per key shown).
KeyHelp = tuple[str, str] | tuple[str, str, str]

PANE_KEYS: dict[str, tuple[str, tuple[KeyHelp, ...]]] = {
    "namespaces": (
        "Namespaces",
        (
            ("↑ ↓", "move; a namespace shows the executions of every flow below it"),
            ("j k", "move down and up, as ↓ ↑", "tiercel.vim.tree_down tiercel.vim.tree_up"),
            (
                "← →",
                "collapse or go to the parent; expand or go to the first child",
                "tiercel.tree.collapse tiercel.tree.expand",
            ),
            ("h l", "as ← →", "tiercel.vim.tree_collapse tiercel.vim.tree_expand"),
            ("enter", "expand or collapse a namespace"),
            ("y", "YAML source of the flow (or of a file in error, with its errors)", "tiercel.flow.source"),
            (
                "v",
                "revisions of the flow, each diffed against the one before (m: diff against one)",
                "tiercel.flow.revisions",
            ),
            (
                "T",
                "triggers of the flow: on/off (space), backfill (b), pause (p), resume (u), cancel (c)",
                "tiercel.flow.triggers",
            ),
            ("H", "history charts of the flow, or of every flow in the namespace", "tiercel.history"),
        ),
    ),
    "executions": (
        "Executions",
        (
            ("↑ ↓", "move; the detail pane follows (older pages load at the end)"),
            ("j k", "move down and up, as ↓ ↑", "tiercel.vim.list_down tiercel.vim.list_up"),
            ("home end", "first and last row", "tiercel.executions.first tiercel.executions.last"),
            ("g G", "as home end", "tiercel.vim.list_first tiercel.vim.list_last"),
            (
                "/",
                "filter: state:FAILED label:key=value trigger:Schedule text (escape clears)",
                "tiercel.executions.filter",
            ),
            ("y", "source of the flow revision this execution ran", "tiercel.executions.source"),
        ),
    ),
    "detail": (
        "Detail",
        (
            ("v", "task run tree or timeline (Gantt)", "tiercel.detail.timeline"),
            ("enter", "task run tree: only that task run's log; on a Subflow, open its child execution"),
            ("backspace", "back to the execution a child was opened from", "tiercel.back"),
            ("P", "task run tree: replay the execution from that task run (asks first)", "tiercel.replay"),
            ("a", "log of all task runs again", "tiercel.log.all_tasks"),
            ("o", "outputs of the task run (or of the execution) as JSON", "tiercel.detail.outputs"),
            (
                "x",
                "expression console: render {{ ... }} as the task run (or execution) saw it",
                "tiercel.detail.console",
            ),
            ("l", "minimum log level (TRACE DEBUG INFO WARN ERROR)", "tiercel.log.level"),
            ("t", "timestamps on or off", "tiercel.log.times"),
            ("w", "wrap long lines, or cut them at the pane's edge", "tiercel.log.wrap"),
            (
                "/",
                "search the log: matches are highlighted (enter keeps it, escape clears)",
                "tiercel.log.search",
            ),
            ("n N", "next and previous matching line", "tiercel.log.next_match tiercel.log.previous_match"),
            ("f", "show only the matching lines, or all lines again", "tiercel.log.only_matches"),
            ("end G", "follow the tail again after scrolling up", "tiercel.log.follow"),
            ("home g", "first line held", "tiercel.log.top"),
            ("j k", "scroll the log a line down and up", "tiercel.vim.log_down tiercel.vim.log_up"),
            (
                "[ ]",
                "read older lines, then newer ones, from the store (the pane holds 20,000)",
                "tiercel.log.older tiercel.log.newer",
            ),
            ("D", "graph of the flow's Dag tasks and dependsOn, coloured by this execution", "tiercel.dag"),
            ("c", "copy the execution's full id (through the terminal)", "tiercel.copy_id"),
        ),
    ),
}


GLOBAL_KEYS: tuple[KeyHelp, ...] = (
    ("r", "run the selected flow (a form when it has inputs)", "tiercel.run"),
    ("e", "edit the selected flow's file in $EDITOR; the change shows on return", "tiercel.edit"),
    ("K", "kill the selected execution (asks first, defaults to No)", "tiercel.kill"),
    ("R", "restart a FAILED or KILLED execution", "tiercel.restart"),
    ("P", "replay the selected execution from its start (asks first)", "tiercel.replay"),
    ("u", "resume a PAUSED execution (a form for a Pause's onResume inputs)", "tiercel.resume"),
    (
        "1 2 3",
        "focus namespaces, executions, detail",
        "tiercel.focus.namespaces tiercel.focus.executions tiercel.focus.detail",
    ),
    ("tab", "next pane"),
    ("z", "zoom: the focused pane alone on the screen, or all panes again", "tiercel.zoom"),
    (
        "ctrl+p  :",
        "command palette: go to a flow, namespace or execution (type its id), run, kill, backfill ...",
        "tiercel.commands",
    ),
    ("?", "this help", "tiercel.help"),
    ("q", "quit (the engine stops with the dashboard)", "tiercel.quit"),
)


def shown_keys(entry: KeyHelp, keymap: Mapping[str, str]) -> str:
    """The keys of a help line, as the user's keymap has remapped them."""
    keys = entry[0]
    if len(entry) < 3 or not any(binding_id in keymap for binding_id in entry[2].split()):
        return keys
    ids = entry[2].split()
    if len(ids) == 1:
        return keymap[ids[0]].replace(",", " ")
    defaults = keys.split()
    return " ".join(
        keymap[binding_id].replace(",", " ") if binding_id in keymap else default
        for binding_id, default in zip(ids, defaults, strict=False)
    )


def key_lines(keys: tuple[KeyHelp, ...], keymap: Mapping[str, str] | None = None) -> str:
    return "\n".join(
        f"[b cyan]{escape(shown_keys(entry, keymap or {})):>10}[/]  {escape(entry[1])}" for entry in keys
    )


class HelpScreen(ModalScreen[None]):
    """The keys of `pane` (when one is focused) and the global keys; escape, q or ? closes it.

    Keys are shown as the user's keymap file (`keymap_file`) has remapped them.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="tiercel.help.close")
    ]

    def __init__(
        self,
        pane: str | None = None,
        keymap_file: Path | None = None,
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.pane = pane if pane in PANE_KEYS else None
        self.keymap_file = keymap_file
        self.keymap = dict(keymap or {})

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            if self.pane is not None:
                title, keys = PANE_KEYS[self.pane]
                yield Static(f"[b]{title} pane[/b]")
                yield Static(key_lines(keys, self.keymap), id="help-pane")
                yield Static("")
            yield Static("[b]Everywhere[/b]")
            yield Static(key_lines(GLOBAL_KEYS, self.keymap), id="help-global")
            if self.keymap_file is not None:
                yield Static(
                    f"\n[dim]Remap keys in {escape(str(self.keymap_file))}: a binding id and its keys per "
                    'line, such as "tiercel.kill" = "x" (ids: see the README)[/dim]',
                    id="help-keymap",
                )
            yield Static("\n[dim]escape closes this help[/dim]")

    def action_close(self) -> None:
        self.dismiss(None)
