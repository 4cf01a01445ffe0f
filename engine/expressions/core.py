"""Shared pieces of the expression engine: errors, value printing, truthiness, render limits, Undefined.

The public names are re-exported by :mod:`engine.expressions`; import them from there.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time as dtime
from decimal import Decimal
from typing import Any, Final, NoReturn

from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Undefined
from jinja2.utils import missing

__all__ = [
    "MAX_INT_BITS",
    "MAX_ITEMS",
    "MAX_LOOP_ITERATIONS",
    "ExpressionError",
    "ExpressionSecurityError",
    "KestraUndefined",
    "LimitExceeded",
    "MissingVariable",
    "RenderFailure",
    "RenderState",
    "current_state",
    "fail_if_undefined",
    "is_truthy",
    "json_default",
    "to_json",
    "to_text",
]

# Collections built by an expression (range(), repetition, jq results...) stay below this many items.
MAX_ITEMS: Final = 1_000_000
# Loop iterations per render, all loops together.
MAX_LOOP_ITERATIONS: Final = 1_000_000
# Integers computed by an expression stay below this size (a 10,000-bit number has ~3,000 digits).
MAX_INT_BITS: Final = 10_000
DEFAULT_MAX_OUTPUT_CHARS: Final = 10_000_000

# Jinja globals that Kestra does not have, and Python builtins people try: a template that reaches for
# one of these (when the context does not define it) is probing the sandbox.
DENIED_NAMES: Final = frozenset(
    {"cycler", "joiner", "namespace", "lipsum", "dict", "eval", "exec", "open", "getattr", "compile"}
)


class ExpressionError(Exception):
    """A template failed to parse or render; str(e) is the user-facing message."""


class ExpressionSecurityError(ExpressionError):
    """A template tried to reach something the sandbox forbids (private attributes, mutation...)."""


class RenderFailure(Exception):
    """Raised by filters, functions and operators while rendering.

    The renderer adds the template to the message and raises an :class:`ExpressionError`.
    """


class LimitExceeded(RenderFailure):
    """A size, count or time limit was exceeded while rendering."""


class MissingVariable(UndefinedError):
    """An undefined variable was used; ``name`` is the missing root variable or path element."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(slots=True)
class RenderState:
    """Limits and bookkeeping for one top-level render (shared by nested ``render()`` calls).

    Attributes:
        deadline: ``time.monotonic()`` value after which rendering stops.
        timeout_s: The time limit, for messages.
        max_output_chars: The largest string an expression may build or print.
        renderer: The renderer, for the ``render()`` function (None outside a render).
        iterations: Loop iterations so far.
        depth: Nesting depth of ``render()`` calls.
    """

    deadline: float
    timeout_s: float
    max_output_chars: int
    renderer: Any = None
    iterations: int = 0
    depth: int = 0

    def check_time(self) -> None:
        """Raise :class:`LimitExceeded` once the deadline has passed."""
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"rendering took longer than the limit of {self.timeout_s:g} s")

    def check_chars(self, size: int, what: str) -> None:
        """Raise :class:`LimitExceeded` if a string of ``size`` characters is too large."""
        if size > self.max_output_chars:
            raise LimitExceeded(
                f"{what} of {size} characters exceeds the limit of {self.max_output_chars} characters"
            )

    def count_iteration(self) -> None:
        """Count one loop iteration, checking the iteration and time limits."""
        if self.renderer is None:
            return  # outside a render (constant folding while compiling): nothing to limit
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise LimitExceeded(f"loops ran more than the limit of {MAX_LOOP_ITERATIONS} iterations")
        if self.iterations & 1023 == 0:
            self.check_time()


_STATE: ContextVar[RenderState | None] = ContextVar("tiercel_render_state", default=None)
# Used when filters run outside a render (Jinja folds constant filter calls while compiling).
_IDLE_STATE: Final = RenderState(
    deadline=math.inf, timeout_s=math.inf, max_output_chars=DEFAULT_MAX_OUTPUT_CHARS
)


def current_state() -> RenderState:
    """The state of the render in progress (an unlimited-time state outside a render)."""
    state = _STATE.get()
    return state if state is not None else _IDLE_STATE


def state_var() -> ContextVar[RenderState | None]:
    """The context variable holding the current :class:`RenderState`."""
    return _STATE


class KestraUndefined(Undefined):
    """Kestra's strict variables: chainable, and failing only when used.

    ``outputs.missing.value`` yields an undefined value; testing it (``is defined``, ``??``, ``default``)
    is fine, while printing, comparing, iterating, calling or computing with it raises
    :class:`MissingVariable` naming the first missing element of the path.
    """

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[Exception] = UndefinedError,
    ) -> None:
        if exc is SecurityError:
            raise SecurityError(hint or f"access to {name!r} is not allowed")
        if obj is missing and name in DENIED_NAMES:
            raise SecurityError(f"`{name}` is not available in expressions")
        super().__init__(hint, obj, name, exc)  # type: ignore[arg-type]

    @property
    def missing_name(self) -> str:
        """The missing root variable or path element."""
        name = self._undefined_name
        return str(name) if name is not None else (self._undefined_hint or "?")

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise MissingVariable(self.missing_name)

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    # Undefined binds these to its own method object, so they are rebound to the override above.
    __iter__ = __str__ = __len__ = _fail_with_undefined_error
    __eq__ = __ne__ = __bool__ = __hash__ = __contains__ = _fail_with_undefined_error
    __add__ = __radd__ = __sub__ = __rsub__ = _fail_with_undefined_error
    __mul__ = __rmul__ = __div__ = __rdiv__ = _fail_with_undefined_error
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _fail_with_undefined_error
    __mod__ = __rmod__ = __pos__ = __neg__ = __pow__ = __rpow__ = _fail_with_undefined_error
    __call__ = __lt__ = __le__ = __gt__ = __ge__ = _fail_with_undefined_error
    __int__ = __float__ = __complex__ = _fail_with_undefined_error

    def __repr__(self) -> str:
        return f"Undefined({self.missing_name!r})"


def fail_if_undefined(*values: Any) -> None:
    """Raise :class:`MissingVariable` for the first undefined value among ``values``."""
    for value in values:
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()


def _java_double(value: float) -> str:
    """Print a float the way Java's ``Double.toString`` does (``1.0``, ``1.0E7``, ``NaN``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    power = exponent + len(mantissa) - 1
    return f"{'-' if sign else ''}{mantissa[0]}.{mantissa[1:] or '0'}E{power}"


def _datetime_text(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def json_default(value: Any) -> Any:
    """``json.dumps`` hook for values JSON does not know (dates, decimals, sets...)."""
    if isinstance(value, Undefined):
        fail_if_undefined(value)
    if isinstance(value, datetime):
        return _datetime_text(value)
    if isinstance(value, date | dtime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _json_size_within(value: Any, budget: int) -> int:
    """Rough lower bound of the JSON size of ``value``, stopping once ``budget`` is exceeded.

    Lists can hold the same large string many times (``[text] * 100000``); measuring first keeps the
    encoder from building gigabytes before the output limit is checked.
    """
    used = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            used += len(item) + 3
        elif isinstance(item, Mapping):
            used += 2 + len(item)
            for key, element in item.items():
                used += len(key) + 3 if isinstance(key, str) else 8
                stack.append(element)
        elif isinstance(item, list | tuple | set | frozenset):
            used += 2 + len(item)
            stack.extend(item)
        else:
            used += 4
        if used > budget:
            break
    return used


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept, as Kestra's ``toJson`` prints it.

    Raises:
        LimitExceeded: The JSON text would exceed the output limit of the current render.
    """
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        state = current_state()
        size = _json_size_within(value, state.max_output_chars)
        if size > state.max_output_chars:
            raise LimitExceeded(f"JSON text exceeds the limit of {state.max_output_chars} characters")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=json_default)


def to_text(value: Any) -> str:
    """How a value prints in a template.

    Maps and lists become compact JSON (non-ASCII kept), booleans ``true``/``false``, None an empty
    string, floats as Java prints them (``1.0``), datetimes ISO 8601 (``Z`` for UTC).

    Args:
        value: Any value an expression produced.

    Returns:
        The text.

    Raises:
        MissingVariable: The value is undefined.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, Undefined):
        fail_if_undefined(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return to_json(value)
    if isinstance(value, datetime):
        return _datetime_text(value)
    if isinstance(value, date | dtime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


_FALSE_TEXTS: Final = frozenset({"", "0", "-0"})


def is_truthy(text: str | None) -> bool:
    """Kestra's ``TruthUtils``: is a rendered condition true?

    None, blank text, ``false`` (any case), ``0`` and ``-0`` (surrounding blanks ignored) are false;
    everything else is true.

    Args:
        text: The rendered condition.

    Returns:
        Whether the condition holds.
    """
    if text is None:
        return False
    stripped = text.strip()
    return stripped not in _FALSE_TEXTS and stripped.lower() != "false"
