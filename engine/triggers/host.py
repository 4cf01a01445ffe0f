"""What the trigger sources need from the engine that hosts them: the `TriggerHost` protocol.

The scheduler, the Flow triggers and the webhook server receive their engine as a `TriggerHost`
and use nothing else of it. The Engine satisfies it structurally (mypy checks this where the
engine builds its trigger sources), so this package never imports the engine.

Starting an execution is two steps, because every source must answer before anything is stored:
`new_execution` validates the inputs (a schedule skips its slot, a webhook answers 422), then
`submit` stores the execution and starts it. A fire the trigger records (a schedule's date and
new state, a Flow trigger's windows) goes with `submit`, written in the same transaction: a date
fires at most once, across crashes and restarts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from ..events import EventBus
from ..internal_storage import Storage
from ..model import Execution, Flow, Label
from ..store import TriggerFire, TriggerRow, WindowUpdate

FlowUid = tuple[str, str]

# `TriggerFire`, from the store: a fire recorded with the execution it starts, in the same
# transaction (see `TriggerHost.submit`): a schedule's date (`ScheduleFire`) or a Flow trigger's
# windows (`WindowsFire`), plain data the store writes; a date that already fired raises
# AlreadyFiredError, and then nothing is stored.


class TriggerFlows(Protocol):
    """The engine's current flows, read-only."""

    def get(self, uid: FlowUid, /) -> Flow | None:
        """The current revision of a flow (parsed on first use), or None."""
        ...

    def with_triggers(self, trigger_type: str | None = None) -> list[FlowUid]:
        """The flows that have a trigger (of the given type), known without parsing every flow."""
        ...


class TriggerRenderer(Protocol):
    """Renders the expressions of trigger properties (conditions, inputs, labels, keys)."""

    def render(self, template: str, context: Mapping[str, Any]) -> str:
        """One template, rendered as text."""
        ...

    def render_value(self, value: Any, context: Mapping[str, Any]) -> Any:
        """Every template inside a value (a mapping, a list ...), rendered."""
        ...

    async def prefetch(self, value: Any, context: Mapping[str, Any]) -> None:
        """Run the costly filters inside a value off the event loop, ahead of `render_value`."""
        ...


class SecretMasker(Protocol):
    """Masks secret values in what is shown."""

    def add(self, secret: str, owner: str | None = None) -> None:
        """Mask this value from now on."""
        ...

    def mask(self, text: str) -> str:
        """The text with every known secret masked."""
        ...

    def mask_value(self, value: Any) -> Any:
        """A value (a mapping, a list ...) with every known secret masked in its texts."""
        ...


class SecretLookup(Protocol):
    """The configured secrets."""

    def get(self, name: str) -> str:
        """The secret's value (raises SecretError when there is none)."""
        ...


class TriggerStateStore(Protocol):
    """Where trigger state lives: one row per trigger, and the fires of unfinished executions."""

    async def trigger_rows(self) -> list[TriggerRow]:
        """The stored state of every trigger."""
        ...

    async def save_trigger(self, row: TriggerRow) -> None:
        """Insert or replace one trigger's state."""
        ...

    async def running_trigger_executions(self) -> list[tuple[str, str, str, str]]:
        """(namespace, flow id, trigger id, execution id) of every unfinished execution a trigger fired."""
        ...


class FlowTriggerWindows(Protocol):
    """Where the Flow triggers keep which preconditions were met within their time windows."""

    async def flow_trigger_window(
        self, namespace: str, flow_id: str, trigger_id: str, condition_id: str
    ) -> tuple[datetime, datetime, list[str], dict[str, Any]] | None:
        """The stored window as (start, end, satisfied condition keys, merged outputs), or None."""
        ...

    async def update_flow_trigger_windows(self, updates: Sequence[WindowUpdate]) -> None:
        """Save or delete (window None) several windows in one transaction."""
        ...

    async def purge_flow_trigger_windows(self, now: datetime) -> None:
        """Delete every window that ended before `now`."""
        ...


class TriggerStore(TriggerStateStore, FlowTriggerWindows, Protocol):
    """The part of the store the trigger sources read and write themselves."""


class TriggerSwitches(Protocol):
    """Which triggers are switched on or off by command (the scheduler keeps this state)."""

    async def load(self) -> None:
        """Read the stored switches, before any trigger source starts firing."""
        ...

    def is_enabled(self, namespace: str, flow_id: str, trigger_id: str) -> bool:
        """Whether a trigger is enabled by command (True for a trigger without stored state)."""
        ...


class TriggerHost(Protocol):
    """The engine, as the trigger sources see it."""

    @property
    def flows(self) -> TriggerFlows:
        """The current flows."""
        ...

    @property
    def events(self) -> EventBus:
        """The engine's event bus: execution and flow changes come in, trigger changes and errors go out."""
        ...

    @property
    def renderer(self) -> TriggerRenderer:
        """Renders the expressions of trigger properties."""
        ...

    @property
    def masker(self) -> SecretMasker:
        """Masks secrets in what goes back to a webhook's client or onto the bus."""
        ...

    @property
    def secrets(self) -> SecretLookup:
        """The configured secrets (a webhook key may name one)."""
        ...

    @property
    def store(self) -> TriggerStore:
        """Trigger state and Flow trigger windows."""
        ...

    @property
    def trigger_switches(self) -> TriggerSwitches:
        """The switches set by command, shared by every trigger type."""
        ...

    @property
    def storage(self) -> Storage:
        """The internal storage, where a polling trigger's files go."""
        ...

    def new_execution(
        self,
        flow: Flow,
        inputs: Mapping[str, Any],
        labels: Sequence[Label] = (),
        *,
        trigger: Mapping[str, Any] | None = None,
        check_inputs: bool = True,
    ) -> Execution:
        """A CREATED execution of `flow` started by `trigger` (raises InputError on bad inputs).

        Without `check_inputs`: an execution without inputs, to be submitted with a `failure`.
        """
        ...

    async def submit(
        self, flow: Flow, execution: Execution, *, fire: TriggerFire | None = None, failure: str | None = None
    ) -> str:
        """Store the execution, with the trigger's fire in the same transaction, and start it.

        With a `failure`, the execution is stored FAILED with that message logged, not started.
        When the fire raises (AlreadyFiredError: that date already fired), nothing is stored or
        started and the exception propagates.
        """
        ...

    async def wait(self, execution_id: str) -> Execution:
        """The execution once it has ended."""
        ...

    async def execution(self, execution_id: str) -> Execution | None:
        """The execution as stored now, or None."""
        ...


__all__ = [
    "FlowTriggerWindows",
    "FlowUid",
    "SecretLookup",
    "SecretMasker",
    "TriggerFire",
    "TriggerFlows",
    "TriggerHost",
    "TriggerRenderer",
    "TriggerStateStore",
    "TriggerStore",
    "TriggerSwitches",
]
