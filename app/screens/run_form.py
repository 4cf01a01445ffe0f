"""The run form: one field per flow input, validated by the engine.

A BOOLEAN (or BOOL) input is a switch, a SELECT (or ENUM) with listed `values` a drop-down, a
MULTISELECT with listed `values` a list to tick; the other inputs (and choices that allow custom
values or come from an `expression`) are text. Every field gives back the text `tiercel run --input`
would pass, so the engine checks and types the form's values exactly as it does the command line's.
A field left as it opened sends its default (or nothing), so the engine's defaults and its
missing-required check apply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, HorizontalGroup, VerticalScroll
from textual.suggester import SuggestFromList
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, Select, SelectionList, Static, Switch

from tiercel.engine import Commands, EngineCommandError, Flow, InputError, InputSpec

from ..widgets.shown import plain
from .form import FORM_BINDINGS, FormScreen

BOOLEAN_TYPES = frozenset({"BOOLEAN", "BOOL"})
SELECT_TYPES = frozenset({"SELECT", "ENUM"})
CHOICE_TYPES = SELECT_TYPES | {"MULTISELECT"}


def is_template(value: Any) -> bool:
    """A default the engine renders when the execution starts: the form cannot know its value."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def value_text(value: Any) -> str:
    """A typed value as the text the engine parses back to it (true, not True; JSON for the rest)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def default_text(spec: InputSpec) -> str:
    """The default of an input as the text a user would type (templates stay for the engine)."""
    value = spec.defaults
    if value is None or is_template(value):
        return ""
    return value_text(value)


def choices(spec: InputSpec) -> list[str] | None:
    """The values a SELECT, ENUM or MULTISELECT lists in the flow (None when an expression computes them)."""
    if str(spec.type).upper() not in CHOICE_TYPES:
        return None
    values = spec.props.get("values")
    if values is None:
        values = spec.props.get("options")  # MULTISELECT's deprecated name, as the engine reads it
    if not isinstance(values, list) or not values:
        return None
    texts = [value_text(v.get("value")) if isinstance(v, Mapping) else value_text(v) for v in values]
    return list(dict.fromkeys(texts))


def fixed_choices(spec: InputSpec) -> list[str] | None:
    """The listed values when they are the only ones allowed (a drop-down or list can offer them all)."""
    if spec.props.get("allowCustomValue") or spec.props.get("allowInput"):
        return None
    return choices(spec)


def boolean_default(spec: InputSpec) -> bool | None:
    """A BOOLEAN's default when the flow writes it as a value (None: no default, or a template)."""
    value = spec.defaults
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def chosen_defaults(spec: InputSpec) -> list[str]:
    """A MULTISELECT's default items: a list, JSON text or comma-separated text, as the engine reads them."""
    value = spec.defaults
    if value is None or is_template(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return []
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    items = value if isinstance(value, list) else [value]
    return [value_text(item) for item in items]


class FormSwitch(Switch, inherit_bindings=False):
    """A BOOLEAN input. Space toggles it; enter submits the form, as it does from a text field.

    Until it is toggled it sends nothing, so the engine applies the input's default, or reports
    a required input without one as missing.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_switch", "Toggle", show=False),
        Binding("enter", "screen.submit", "Submit", show=False),
    ]

    DEFAULT_CSS = """
    FormSwitch {
        border: none;
        padding: 0;
        height: 1;
        &:focus { border: none; background-tint: $foreground 15%; }
    }
    """

    def __init__(self, value: bool, *, id: str) -> None:
        super().__init__(value, animate=False, id=id)
        self.touched = False

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.touched = True


class BooleanField(HorizontalGroup):
    """A switch and what it sends: true, false, or nothing yet ("not set", or the flow's default)."""

    DEFAULT_CSS = """
    BooleanField { height: 1; margin-bottom: 1; }
    BooleanField .switch-state { width: auto; margin-left: 1; color: $text-muted; }
    """

    def __init__(self, switch: FormSwitch, spec: InputSpec) -> None:
        super().__init__()
        self.switch = switch
        self.spec = spec

    def compose(self) -> ComposeResult:
        yield self.switch
        yield Static(self.state(), classes="switch-state")

    def state(self) -> str:
        if not self.switch.touched and boolean_default(self.spec) is None:
            return "not set" if self.spec.defaults is None else "the default applies"
        return "true" if self.switch.value else "false"

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.query_one(".switch-state", Static).update(self.state())


class ChoiceList(SelectionList[str]):
    """A MULTISELECT's values to tick with space; it sends the ticked ones as a JSON list."""

    DEFAULT_CSS = """
    ChoiceList { height: auto; max-height: 8; margin-bottom: 1; }
    """

    def __init__(self, values: list[str], chosen: list[str], *, id: str) -> None:
        super().__init__(*[(plain(value), value, value in chosen) for value in values], id=id, compact=True)
        self.values = values
        self.touched = False

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        self.touched = True


def dom_id(prefix: str, index: int, input_id: str) -> str:
    """A widget id for an input; a dotted input id (not a valid widget id) gets its position instead."""
    # Input ids never start with "-", so `prefix--N` cannot clash with another input's id.
    return f"{prefix}-{input_id}" if "." not in input_id else f"{prefix}--{index}"


def input_field(spec: InputSpec, widget_id: str) -> Widget:
    """The widget that edits one input, preset to its default."""
    kind = str(spec.type).upper()
    values = fixed_choices(spec)
    if kind in BOOLEAN_TYPES:
        return FormSwitch(bool(boolean_default(spec)), id=widget_id)
    if values is not None and kind in SELECT_TYPES:
        default = default_text(spec)
        prompt = "the default applies" if spec.defaults is not None else "not set"
        if spec.required and spec.defaults is None:
            prompt = "choose one"
        return Select[str](
            [(plain(value), value) for value in values],
            prompt=prompt,
            value=default if default in values else Select.NULL,
            compact=True,
            id=widget_id,
        )
    if values is not None and kind == "MULTISELECT":
        return ChoiceList(values, chosen_defaults(spec), id=widget_id)
    listed = choices(spec)
    placeholder = str(spec.defaults) if spec.defaults is not None else spec.description or ""
    if listed and not placeholder:
        placeholder = ", ".join(listed)
    suggester = SuggestFromList(listed) if listed and kind in SELECT_TYPES else None
    return Input(
        value=default_text(spec), placeholder=placeholder, suggester=suggester, id=widget_id, compact=True
    )


def field_text(spec: InputSpec, widget: Widget) -> str | None:
    """What a field sends, as text the engine parses; None leaves the input out (its default applies)."""
    if isinstance(widget, FormSwitch):
        return ("true" if widget.value else "false") if widget.touched else None
    if isinstance(widget, Select):
        return None if widget.is_blank() else str(widget.value)
    if isinstance(widget, ChoiceList):
        ticked = set(widget.selected)
        chosen = [value for value in widget.values if value in ticked]
        if chosen:
            return json.dumps(chosen, ensure_ascii=False)
        # Clearing every item of a default is a choice; sending nothing would bring the default back.
        return "[]" if widget.touched and spec.defaults is not None else None
    if isinstance(widget, Input):
        return widget.value if widget.value != "" else None
    return None


def shown_field(spec: InputSpec, widget: Widget) -> Widget:
    """The widget as the form lays it out (a switch sits beside what it sends)."""
    return BooleanField(widget, spec) if isinstance(widget, FormSwitch) else widget


class RunFormScreen(FormScreen):
    """Collects inputs and triggers the flow; returns the new execution id, or None if cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = list(FORM_BINDINGS)

    DEFAULT_CSS = """
    RunFormScreen Select { margin-bottom: 1; }
    """

    verb = "Run"

    def __init__(self, engine: Commands, flow: Flow) -> None:
        super().__init__()
        self.engine = engine
        self.flow = flow
        self.specs: tuple[InputSpec, ...] = tuple(flow.inputs)
        self.fields: dict[str, Widget] = {}
        self.errors: dict[str, Static] = {}

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
            for index, spec in enumerate(self.specs):
                required = "" if not spec.required or spec.defaults is not None else " *"
                yield Label(input_title(spec, f"{spec.type}{required}"))
                widget = input_field(spec, dom_id("input", index, spec.id))
                self.fields[spec.id] = widget
                yield shown_field(spec, widget)
                error = Static("", id=dom_id("error", index, spec.id), classes="error")
                self.errors[spec.id] = error
                yield error
            with Horizontal(classes="buttons"):
                yield Button(self.verb, id="run", variant="primary")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def on_mount(self) -> None:
        first = next(iter(self.fields.values()), None)
        (first if first is not None else self.query_one("#run", Button)).focus()

    def values(self) -> dict[str, Any]:
        """Each field's text; fields left empty are left out so defaults and required checks apply."""
        found: dict[str, Any] = {}
        for spec in self.specs:
            text = field_text(spec, self.fields[spec.id])
            if text is not None:
                found[spec.id] = text
        return found

    async def submit(self) -> None:
        """Send the values, or show the engine's messages beside the fields."""
        for widget in self.errors.values():
            _show(widget, "")
        general = self.query_one("#form-error", Static)
        _show(general, "")
        try:
            execution_id = await self.send(self.values())
        except InputError as error:
            shown: set[str] = set()
            for input_id, messages in error.fields.items():
                shown_at = self.errors.get(input_id)
                if shown_at is not None:
                    _show(shown_at, "\n".join(messages))
                    shown.update(messages)
            rest = [message for message in error.errors if message not in shown]
            _show(general, "\n".join(rest))
            return
        except EngineCommandError as error:
            _show(general, str(error))
            return
        self.dismiss(execution_id)


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
