"""The backfill form: a date range over a Schedule trigger's slots, the flow's inputs and labels."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, Static

from tiercel.engine import Commands, EngineCommandError, Flow, InputError, SchedulerError, resolve_inputs

from .form import FORM_BINDINGS, FormScreen
from .run_form import _show, dom_id, field_text, input_field, input_title, shown_field

DATE_HINT = "YYYY-MM-DD HH:MM in local time, or ISO 8601 with an offset"


class FieldError(Exception):
    """A field's value is wrong; `field` names the field the message goes under."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_date(text: str, field: str) -> datetime:
    """A date typed by the user: without an offset it is local time (as the dashboard shows dates)."""
    value = text.strip()
    if not value:
        raise FieldError(field, f"a {field} date is required: {DATE_HINT}")
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise FieldError(field, f"`{value}` is not a date: use {DATE_HINT}") from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def parse_labels(text: str) -> dict[str, str]:
    """`key=value` pairs separated by commas or spaces."""
    found: dict[str, str] = {}
    for item in text.replace(",", " ").split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FieldError("labels", f"`{item}` is not a label: write key=value, separated by commas")
        found[key] = value
    return found


def field_of(error: SchedulerError) -> str:
    """Which field a scheduler's refusal is about (the general line when none)."""
    text = str(error)
    if "backfill end" in text:
        return "end"
    if "time zone" in text or "start" in text:
        return "start"
    return "general"


class BackfillFormScreen(FormScreen):
    """Starts a backfill; returns its id, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = list(FORM_BINDINGS)

    DEFAULT_CSS = """
    BackfillFormScreen Select { margin-bottom: 1; }
    """

    def __init__(self, engine: Commands, flow: Flow, trigger_id: str) -> None:
        super().__init__()
        self.engine = engine
        self.flow = flow
        self.trigger_id = trigger_id
        # The flow's inputs by id: their widgets, and where each one's message goes.
        self.fields: dict[str, Widget] = {}
        self.input_errors: dict[str, Static] = {}

    def compose(self) -> ComposeResult:
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        with VerticalScroll(id="backfill-form", classes="dialog"):
            yield Label(f"Backfill [b]{self.flow.id}.{self.trigger_id}[/b]", id="form-title")
            yield Static("", id="error-general", classes="error")
            yield from self.field(
                "start", "start [dim]local time *[/dim]", midnight.strftime("%Y-%m-%d %H:%M")
            )
            yield from self.field("end", "end [dim]empty: now[/dim]", "", placeholder="now")
            yield from self.field("labels", "labels [dim]key=value, ...[/dim]", "", placeholder="team=data")
            for index, spec in enumerate(self.flow.inputs):
                yield Label(input_title(spec, f"input {spec.type}"))
                widget = input_field(spec, dom_id("field-input", index, spec.id))
                self.fields[spec.id] = widget
                yield shown_field(spec, widget)
                error = Static("", id=dom_id("error-input", index, spec.id), classes="error")
                self.input_errors[spec.id] = error
                yield error
            with Horizontal(classes="buttons"):
                yield Button("Backfill", id="run", variant="primary")
                yield Button("Cancel", id="cancel")
        yield Footer()

    def field(self, name: str, title: str | Text, value: str, placeholder: str = "") -> ComposeResult:
        yield Label(title)
        yield Input(value=value, placeholder=placeholder, id=f"field-{name}", compact=True)
        yield Static("", id=f"error-{name}", classes="error")

    def on_mount(self) -> None:
        self.query_one("#field-start", Input).focus()

    def text(self, name: str) -> str:
        return self.query_one(f"#field-{name}", Input).value

    def inputs(self) -> dict[str, Any]:
        """Typed inputs, checked as the execution will check them; empty ones are left out."""
        texts = {spec.id: field_text(spec, self.fields[spec.id]) for spec in self.flow.inputs}
        values = {key: value for key, value in texts.items() if value is not None}
        spec = next((t for t in self.flow.triggers if t.id == self.trigger_id), None)
        own = dict(spec.props.get("inputs") or {}) if spec is not None else {}
        checked = [spec for spec in self.flow.inputs if spec.type != "FILE"]
        resolve_inputs(checked, {**own, **values})
        return values

    def show_error(self, field: str, message: str) -> None:
        widgets = self.query(f"#error-{field}")
        _show(widgets.first(Static) if widgets else self.query_one("#error-general", Static), message)

    async def submit(self) -> None:
        """Check the fields, start the backfill, or show each message under its field."""
        for widget in self.query(".error"):
            if isinstance(widget, Static):
                _show(widget, "")
        try:
            start = parse_date(self.text("start"), "start")
            end = parse_date(self.text("end"), "end") if self.text("end").strip() else None
            labels = parse_labels(self.text("labels"))
            inputs = self.inputs()
            backfill_id = await self.engine.start_backfill(
                self.flow.namespace, self.flow.id, self.trigger_id, start, end, inputs, labels
            )
        except FieldError as error:
            self.show_error(error.field, str(error))
            return
        except InputError as error:
            for input_id, messages in error.fields.items():
                shown_at = self.input_errors.get(input_id)
                if shown_at is not None:
                    _show(shown_at, "\n".join(messages))
                else:
                    self.show_error("general", "\n".join(messages))
            return
        except SchedulerError as error:
            self.show_error(field_of(error), str(error))
            return
        except EngineCommandError as error:  # a refusal (a permission)
            self.show_error("general", str(error))
            return
        self.dismiss(backfill_id)
