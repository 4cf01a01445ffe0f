"""What the dashboard's forms share: `enter` in a field or the first button submits, Cancel closes."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Button, Input

#: The forms' own keys, shown in their footers. Enter submits from a text field too, but a
#: drop-down or a list takes enter for itself: ctrl+s submits from any field.
FORM_BINDINGS = (
    Binding("ctrl+s", "submit", "Submit", id="tiercel.form.submit"),
    Binding("escape", "cancel", "Cancel", id="tiercel.form.cancel"),
)


class FormScreen(ModalScreen[str | None]):
    """A modal form answering with an id (what it started) or None (cancelled)."""

    async def submit(self) -> None:
        """Check and send the values; show the problems beside the fields, or dismiss with the result."""
        raise NotImplementedError

    async def action_submit(self) -> None:
        await self.submit()

    def action_cancel(self) -> None:
        self.dismiss(None)

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self.submit()

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "run":
            await self.submit()
        else:
            self.dismiss(None)
