"""A flow's revisions: pick one to see its unified diff against the one before, or against a marked one."""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from tiercel.engine import visible

Revision = tuple[int, str, datetime]


def diff_text(old: str, new: str, old_name: str, new_name: str) -> Text:
    """A coloured unified diff of two sources."""
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), fromfile=old_name, tofile=new_name, lineterm=""
    )
    text = Text(no_wrap=True, overflow="crop")
    for line in lines:
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = ""
        text.append(visible(line) + "\n", style=style)
    if not text.plain:
        text.append("no change", style="dim")
    return text


class RevisionsScreen(ModalScreen[None]):
    """Revisions newest first; the highlighted one is diffed against its predecessor or the marked one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="tiercel.revisions.close"),
        Binding("m", "mark", "Mark as base", id="tiercel.revisions.mark"),
    ]

    def __init__(self, title: str, revisions: list[Revision]) -> None:
        super().__init__()
        self.title_text = title
        self.revisions = sorted(revisions, key=lambda item: item[0])
        self.base: int | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="viewer", classes="dialog"):
            yield Label(f"Revisions of {self.title_text}", id="viewer-title", markup=False)
            with Horizontal(id="revisions-body"):
                yield OptionList(
                    *[
                        Option(f"rev {rev}  {created.astimezone().strftime('%m-%d %H:%M')}", id=str(rev))
                        for rev, _, created in reversed(self.revisions)
                    ],
                    id="revisions",
                )
                with VerticalScroll(id="diff-scroll"):
                    yield Static("", id="diff")
        yield Footer()

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        if self.revisions:
            options.highlighted = 0
            self.show(self.revisions[-1][0])

    def source(self, revision: int) -> str:
        return next(source for rev, source, _ in self.revisions if rev == revision)

    def show(self, revision: int) -> None:
        """Diff `revision` against the marked base, or else against the revision before it."""
        older = [rev for rev, _, _ in self.revisions if rev < revision]
        base = older[-1] if older else None
        if self.base is not None and self.base != revision:
            base = self.base
        diff = self.query_one("#diff", Static)
        if base is None:
            diff.update(Text(visible(self.source(revision)), no_wrap=True))
            return
        diff.update(diff_text(self.source(base), self.source(revision), f"rev {base}", f"rev {revision}"))

    @on(OptionList.OptionHighlighted, "#revisions")
    def _moved(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id is not None:
            self.show(int(event.option.id))

    def action_mark(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return
        option = options.get_option_at_index(options.highlighted)
        if option.id is not None:
            self.base = int(option.id)
            self.notify(f"Diffs are now against rev {self.base}")

    def action_close(self) -> None:
        self.dismiss(None)
