"""The expression console: Pebble expressions rendered against one execution, as its tasks saw it.

Opened from the detail pane (`x`) on the execution shown, for the task run under the cursor (or the
execution itself); the task run can be changed in the list below the input. Each expression typed
(enter) is rendered by the engine (`Commands.evaluate`: its functions and masking apply, `secret()` is
refused) and shown above, newest last, with its result, or its error and a caret under the place it
points to. Up and down recall earlier expressions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Select, Static

from tiercel.engine import EngineCommandError, Evaluation, Execution, Masker, visible

from ..widgets.shown import masker_of, plain

Evaluate = Callable[[str, str | None, str], Awaitable[Evaluation]]
EXECUTION = "(the execution)"


def task_run_choices(execution: Execution, masker: Masker | None = None) -> list[tuple[Text, str]]:
    """Each task run as the list shows it (task id, loop value masked, state; never markup), with
    its id."""
    choices = []
    for run in execution.task_runs:
        value = f" [{run.value}]" if run.value is not None else ""
        choices.append((plain(f"{run.task_id}{value} · {run.state.current.value}", masker=masker), run.id))
    return choices


def shown(expression: str, found: Evaluation) -> Text:
    """One entry of the console: the expression, then its result or its error (with a caret)."""
    text = Text()
    text.append("› ", style="bold")
    text.append(visible(expression))
    text.append("\n")
    if found.error is None:
        text.append(visible(found.result or ""), style="green")
        return text
    lines = expression.split("\n")
    if found.line is not None and found.column is not None and found.line <= len(lines):
        if len(lines) > 1:  # the line at fault again, the caret under it
            text.append(f"  {visible(lines[found.line - 1])}\n")
        text.append(" " * (found.column + 1) + "^\n", style="bold red")
    text.append(visible(found.error), style="red")
    return text


class ConsoleScreen(ModalScreen[None]):
    """Renders expressions against `execution`; escape closes it."""

    DEFAULT_CSS = """
    ConsoleScreen { align: center middle; }
    #console { width: 100%; height: 100%; border: thick $accent; background: $surface; padding: 0 1; }
    #console-title { height: 1; width: 100%; }
    #console-entries { height: 1fr; }
    #console-input { margin-top: 1; }
    #console-run { width: 100%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="tiercel.console.close"),
        Binding("up", "recall(-1)", "Earlier", show=False, id="tiercel.console.earlier"),
        Binding("down", "recall(1)", "Later", show=False, id="tiercel.console.later"),
    ]

    def __init__(self, execution: Execution, task_run_id: str | None, evaluate: Evaluate) -> None:
        super().__init__()
        self.execution = execution
        self.task_run_id = task_run_id
        self.evaluate = evaluate
        self.history: list[str] = []
        self._recalled = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="console"):
            execution = self.execution
            title = f"Expressions on execution {execution.id[:8]} ({execution.namespace}.{execution.flow_id})"
            yield Label(visible(title), id="console-title", markup=False)
            yield VerticalScroll(id="console-entries")
            yield Input(placeholder="{{ outputs.task_id.value }}", id="console-input")
            choices = task_run_choices(self.execution, masker_of(self))
            known = {run_id for _, run_id in choices}
            yield Select(
                choices,
                prompt=EXECUTION,
                value=self.task_run_id if self.task_run_id in known else Select.NULL,
                id="console-run",
            )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#console").border_title = "Expression console"
        self.query_one("#console-input", Input).focus()

    @on(Select.Changed, "#console-run")
    def _run_chosen(self, event: Select.Changed) -> None:
        self.task_run_id = event.value if isinstance(event.value, str) else None

    @on(Input.Submitted, "#console-input")
    async def _submitted(self, event: Input.Submitted) -> None:
        expression = event.value
        if not expression.strip():
            return
        if not self.history or self.history[-1] != expression:
            self.history.append(expression)
        self._recalled = len(self.history)
        event.input.value = ""
        try:
            found = await self.evaluate(self.execution.id, self.task_run_id, expression)
        except EngineCommandError as error:
            found = Evaluation(error=str(error))
        entries = self.query_one("#console-entries", VerticalScroll)
        await entries.mount(Static(shown(expression, found), classes="console-entry"))
        entries.scroll_end(animate=False)

    def action_recall(self, step: int) -> None:
        """An earlier (-1) or later (1) expression back in the input."""
        field = self.query_one("#console-input", Input)
        if not self.history or not field.has_focus:
            return
        self._recalled = max(0, min(len(self.history), self._recalled + step))
        field.value = self.history[self._recalled] if self._recalled < len(self.history) else ""
        field.cursor_position = len(field.value)

    def action_close(self) -> None:
        self.dismiss(None)
