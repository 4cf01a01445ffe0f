"""The run form: one field per flow input, validated by the engine."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from tiercel.engine import Commands, EngineCommandError, Flow, InputError, InputSpec

from ..widgets.shown import plain
from .form import FormScreen


def default_text(spec: InputSpec) -> str:
    """The default of an input as the text a user would type (templates stay for the engine)."""
    value = spec.defaults
    if value is None or (isinstance(value, str) and "{{" in value):
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


class RunFormScreen(FormScreen):
    """Collects inputs and triggers the flow; returns the new execution id, or None if cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="tiercel.form.cancel")]

    verb = "Run"

    def __init__(self, engine: Commands, flow: Flow) -> None:
        super().__init__()
        self.engine = engine
        self.flow = flow
        self.specs: tuple[InputSpec, ...] = tuple(flow.inputs)

    @property
    def heading(self) -> str:
        return f"Run [b]{self.flow.namespace}.{self.flow.id}[/b]"

    async def send(self, values: dict[str, Any]) -> str:
        """Start the flow with these values; the engine validates them."""
        # The user types the values here, so a FILE input may name a local file to upload.
        return await self.engine.trigger(self.flow.namespace, self.flow.id, values, local_files=True)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="run-form", classes="dialog"):
            yield Label(self.heading, id="form-title")
            yield Static("", id="form-error", classes="error")
            for spec in self.specs:
                required = "" if not spec.required or spec.defaults is not None else " *"
                yield Label(input_title(spec, f"{spec.type}{required}"))
                placeholder = str(spec.defaults) if spec.defaults is not None else spec.description or ""
                yield Input(
                    value=default_text(spec), placeholder=placeholder, id=f"input-{spec.id}", compact=True
                )
                yield Static("", id=f"error-{spec.id}", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(self.verb, id="run", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        inputs = self.query(Input)
        (inputs.first() if inputs else self.query_one("#run", Button)).focus()

    def values(self) -> dict[str, Any]:
        """Typed text per input; empty fields are left out so defaults and required checks apply."""
        found: dict[str, Any] = {}
        for spec in self.specs:
            text = self.query_one(f"#input-{spec.id}", Input).value
            if text != "":
                found[spec.id] = text
        return found

    async def submit(self) -> None:
        """Send the values, or show the engine's messages beside the fields."""
        for spec in self.specs:
            _show(self.query_one(f"#error-{spec.id}", Static), "")
        general = self.query_one("#form-error", Static)
        _show(general, "")
        try:
            execution_id = await self.send(self.values())
        except InputError as error:
            shown: set[str] = set()
            for input_id, messages in error.fields.items():
                widgets = self.query(f"#error-{input_id}")
                if widgets:
                    _show(widgets.first(Static), "\n".join(messages))
                    shown.update(messages)
            rest = [message for message in error.errors if message not in shown]
            _show(general, "\n".join(rest))
            return
        except EngineCommandError as error:
            _show(general, str(error))
            return
        self.dismiss(execution_id)

    def action_cancel(self) -> None:
        self.dismiss(None)


def input_title(spec: InputSpec, about: str) -> Text:
    """An input's name (as the flow file gives it, shown as text) and a dim note about it."""
    return Text.assemble(plain(spec.display_name or spec.id), " ", (about, "dim"))


def _show(widget: Static, text: str) -> None:
    """Set a message as plain text (it may quote a typed value), hiding the widget while it is empty."""
    widget.update(plain(text))
    widget.display = bool(text)


class ResumeFormScreen(RunFormScreen):
    """Collects a Pause task's onResume inputs and resumes the execution with them."""

    verb = "Resume"

    def __init__(self, engine: Commands, flow: Flow, execution_id: str, specs: tuple[InputSpec, ...]) -> None:
        super().__init__(engine, flow)
        self.execution_id = execution_id
        self.specs = specs

    @property
    def heading(self) -> str:
        return f"Resume [b]{self.flow.id}[/b] {self.execution_id[:8]}"

    async def send(self, values: dict[str, Any]) -> str:
        await self.engine.resume(self.execution_id, values)
        return self.execution_id
