"""Kestra's filters, tests, functions and operators for the Jinja sandbox.

Names and argument names follow Kestra (and Pebble, whose core filters Kestra keeps), so that named
arguments such as ``date(format='yyyy', timeZone='UTC')`` work as they do on a Kestra cluster.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import random
import re
import socket
import time
import unicodedata
import uuid as uuid_module
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import quote_plus, unquote_plus

from jinja2 import Environment, pass_context
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined

from ..ion import dumps as dump_ion
from ..model import new_id
from .calendar_functions import CALENDAR_FUNCTIONS
from .core import (
    MAX_INT_BITS,
    MAX_ITEMS,
    LimitExceeded,
    MissingVariable,
    RenderFailure,
    current_state,
    fail_if_undefined,
    json_default,
    to_json,
    to_text,
)
from .costly import Job, check_items as _check_items
from .crypto import CRYPTO_FUNCTIONS
from .httpcall import fn_http
from .identifiers import IDENTIFIER_FUNCTIONS
from .javadate import DateError, add_to_date, format_date, format_in_zone, to_datetime, zone_of
from .javanum import JavaBigInteger, JavaFloat, JavaInteger, NumberError, parse_number
from .offload import run as run_offloaded
from .yamltext import to_yaml

__all__ = ["FILTERS", "FUNCTIONS", "HELPERS", "TESTS", "binop"]

P = ParamSpec("P")
R = TypeVar("R")


def _checked(func: Callable[P, R]) -> Callable[P, R]:
    """Fail on undefined arguments, honour the time limit, and turn bad input into clear errors."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        current_state().check_time()
        fail_if_undefined(*args, *kwargs.values())
        try:
            return func(*args, **kwargs)
        except DateError as exc:
            raise RenderFailure(f"{func.__name__.removeprefix('f_')}: {exc}") from None

    return wrapper


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _need_str(value: Any, filter_name: str) -> str:
    if not isinstance(value, str):
        raise RenderFailure(f"the '{filter_name}' filter expects a string, not a {_type_name(value)}")
    return value


def _need_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise RenderFailure(f"{what} must be an integer, not {to_text(value)!r}")
    return int(value)


def _costly(op: str, *args: Any) -> Any:
    """Run a jq program, a regular expression or a large parse under the render's time limit."""
    return run_offloaded(Job(op, args), current_state())


# ---------------------------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal)


def _check_int(value: Any, op: str) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(
            f"the result of '{op}' has {value.bit_length()} bits, "
            f"which exceeds the limit of {MAX_INT_BITS} bits"
        )
    return value


def _repeat(seq: Any, times: Any) -> Any:
    count = _need_int(times, "a repetition count")
    size = len(seq) * max(count, 0)
    if isinstance(seq, str):
        current_state().check_chars(size, "string repetition")
    else:
        _check_items(size, "list repetition")
    return seq * count


def _divide(left: Any, right: Any) -> Any:
    if right == 0:
        raise RenderFailure("division by zero")
    if isinstance(left, int) and isinstance(right, int):
        # Pebble divides integers like Java: the quotient is truncated toward zero.
        quotient = abs(left) // abs(right)
        return quotient if (left < 0) == (right < 0) else -quotient
    return left / right


def _remainder(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise SecurityError("string formatting with '%' is not allowed")
    if right == 0:
        raise RenderFailure("division by zero")
    if isinstance(left, int) and isinstance(right, int):
        # Java's remainder takes the sign of the dividend.
        return left - right * _divide(left, right)
    return math.fmod(left, right)


def _power(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        bits = right * math.log2(abs(left))
        if bits > MAX_INT_BITS:
            raise LimitExceeded(
                f"the result of '**' would have about {int(bits)} bits, which exceeds the limit of "
                f"{MAX_INT_BITS} bits"
            )
    try:
        return left**right
    except OverflowError:
        raise LimitExceeded("the result of '**' is too large") from None


def binop(op: str, left: Any, right: Any) -> Any:
    """Evaluate an arithmetic operator with Pebble's semantics and the render limits.

    ``+`` concatenates when either side is a string and appends to lists; integer ``/`` truncates and
    ``%`` keeps the dividend's sign (as in Java); string and list repetition, big integers and powers
    are bounded.

    Args:
        op: One of ``+ - * / // % **``.
        left: Left operand.
        right: Right operand.

    Returns:
        The result.
    """
    fail_if_undefined(left, right)
    state = current_state()
    state.check_time()
    try:
        if op == "+":
            if isinstance(left, str) or isinstance(right, str):
                lt, rt = to_text(left), to_text(right)
                state.check_chars(len(lt) + len(rt), "string concatenation")
                return lt + rt
            if isinstance(left, list | tuple):
                extra = list(right) if isinstance(right, list | tuple) else [right]
                _check_items(len(left) + len(extra), "list concatenation")
                return [*left, *extra]
            if _is_number(left) and _is_number(right):
                return _check_int(left + right, op)
        elif op == "-":
            if isinstance(left, list | tuple):
                removed = list(right) if isinstance(right, list | tuple) else [right]
                return [item for item in left if item not in removed]
            if _is_number(left) and _is_number(right):
                return _check_int(left - right, op)
        elif op == "*":
            if isinstance(left, str | list | tuple) and _is_number(right):
                return _repeat(left, right)
            if isinstance(right, str | list | tuple) and _is_number(left):
                return _repeat(right, left)
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                    raise LimitExceeded(f"the result of '*' exceeds the limit of {MAX_INT_BITS} bits")
                return left * right
            if _is_number(left) and _is_number(right):
                return left * right
        elif op == "/":
            if _is_number(left) and _is_number(right):
                return _divide(left, right)
        elif op == "//":
            if _is_number(left) and _is_number(right):
                if right == 0:
                    raise RenderFailure("division by zero")
                return left // right
        elif op == "%":
            if isinstance(left, str) or (_is_number(left) and _is_number(right)):
                return _remainder(left, right)
        elif op == "**" and _is_number(left) and _is_number(right):
            return _power(left, right)
    except (OverflowError, InvalidOperation) as exc:
        raise RenderFailure(f"'{op}' failed: {exc}") from None
    raise RenderFailure(f"unsupported operand types for '{op}': {_type_name(left)} and {_type_name(right)}")


# ---------------------------------------------------------------------------------------------------------
# Helpers called by translated templates
# ---------------------------------------------------------------------------------------------------------


def h_bool(value: Any) -> bool:
    """Truth value of a condition (undefined values fail)."""
    fail_if_undefined(value)
    return bool(value)


def h_concat(*parts: Any) -> str:
    """Pebble's ``~`` and string interpolation: concatenate the printed values."""
    texts = [to_text(part) for part in parts]
    current_state().check_chars(sum(map(len, texts)), "string concatenation")
    return "".join(texts)


def h_contains(container: Any, item: Any) -> bool:
    """Pebble's ``contains``: list membership (all of a list), map key, or substring."""
    fail_if_undefined(container, item)
    if container is None:
        return False
    if isinstance(container, str):
        return to_text(item) in container
    if isinstance(container, Mapping):
        if isinstance(item, list | tuple):
            return all(key in container for key in item)
        return item in container
    if isinstance(container, Iterable):
        values = list(container)
        if isinstance(item, list | tuple):
            return all(element in values for element in item)
        return item in values
    return False


def h_in(item: Any, container: Any) -> bool:
    """Kestra's ``isIn`` (and ``in``): the printed value among the printed list items, or map keys and
    values; false when either side is null or the right side is neither a list nor a map."""
    fail_if_undefined(item, container)
    if item is None or container is None:
        return False
    text = to_text(item)
    if isinstance(container, Mapping):
        return any(to_text(key) == text or to_text(value) == text for key, value in container.items())
    if isinstance(container, list | tuple | set | frozenset):
        return any(to_text(element) == text for element in container)
    return False


def _below(order: int) -> bool:
    return order < 0


def _at_most(order: int) -> bool:
    return order <= 0


def _above(order: int) -> bool:
    return order > 0


def _at_least(order: int) -> bool:
    return order >= 0


_COMPARISONS: Final[dict[str, tuple[str, Callable[[int], bool]]]] = {
    "<": ("less than", _below),
    "<=": ("less than equals", _at_most),
    ">": ("greater than", _above),
    ">=": ("greater than equals", _at_least),
}


def _java_string_order(left: str, right: str) -> int:
    """Java's ``String.compareTo``: UTF-16 code units in order (Python orders code points)."""
    if max(left, default="\0") > "\uffff" or max(right, default="\0") > "\uffff":
        left_units = left.encode("utf-16-be", "surrogatepass")
        right_units = right.encode("utf-16-be", "surrogatepass")
        return (left_units > right_units) - (left_units < right_units)
    return (left > right) - (left < right)


def _decimal_of(number: Any, what: str) -> Decimal:
    if isinstance(number, float):
        if not math.isfinite(number):
            raise RenderFailure(f"Could not perform {what} comparison: {to_text(number)} is not a number")
        return Decimal(to_text(number))
    return Decimal(number)


def _number_order(left: Any, right: Any, what: str) -> int:
    """Pebble's comparison of numbers: in their class when both share it, else as decimals."""
    if isinstance(left, float) and isinstance(right, float) and type(left) is type(right):
        # Double.compareTo: NaN above every number, -0.0 below 0.0.
        if math.isnan(left) or math.isnan(right):
            return int(math.isnan(left)) - int(math.isnan(right))
        if left == right:
            left, right = math.copysign(1.0, left), math.copysign(1.0, right)
        return int(left > right) - int(left < right)
    if isinstance(left, float) or isinstance(right, float):
        left, right = _decimal_of(left, what), _decimal_of(right, what)
    return int(left > right) - int(left < right)


def h_compare(op: str, left: Any, right: Any) -> bool:
    """Kestra's ``<``, ``<=``, ``>``, ``>=``: strings in Java's order, numbers by value, null is false.

    Other operands (booleans, lists, maps, dates) cannot be compared, as in Pebble.
    """
    fail_if_undefined(left, right)
    what, holds = _COMPARISONS[op]
    if isinstance(left, str) and isinstance(right, str):
        return holds(_java_string_order(left, right))
    if left is None or right is None:
        return False
    if isinstance(left, bool) or isinstance(right, bool) or not (_is_number(left) and _is_number(right)):
        raise RenderFailure(
            f"Could not perform {what} comparison: '{op}' is not supported between a "
            f"{_type_name(left)} and a {_type_name(right)}"
        )
    return holds(_number_order(left, right, what))


def h_has(value: Any) -> bool:
    """Left side of ``??``: defined and not null."""
    return not isinstance(value, Undefined) and value is not None


def h_nc(value: Any, fallback: Any) -> Any:
    """``a ?? b``: b when a is undefined or null."""
    return value if h_has(value) else fallback


def h_uc(value: Any, fallback: Any) -> Any:
    """``a ??? b``: b only when a is undefined."""
    return fallback if isinstance(value, Undefined) else value


@functools.lru_cache(maxsize=1024)
def _compiled_subexpression(env: Environment, source: str) -> TemplateExpression:
    return env.compile_expression(source, undefined_to_none=False)


def _evaluate_sub(context: Context, subs: Sequence[str], index: int, scope: Mapping[str, Any]) -> Any:
    expression = _compiled_subexpression(context.environment, subs[index])
    return expression({**context.get_all(), **scope, "_pb_subs": subs})


@pass_context
def h_try(context: Context, subs: Sequence[str], index: int, scope: Mapping[str, Any]) -> Any:
    """Left side of ``??`` or ``???`` that is more than a variable path (``subs[index]``).

    Kestra's operators catch a missing variable or attribute met anywhere while evaluating their left
    side (Pebble's ``AttributeNotFoundException``), and other failures go through: the value, or undefined
    when the evaluation used a missing variable. ``scope`` holds the variables the expression reads, as
    the calling template sees them (loop variables and ``set`` ones included).
    """
    try:
        return _evaluate_sub(context, subs, index, scope)
    except MissingVariable as missing_:
        return context.environment.undefined(name=missing_.name)


@pass_context
def h_coalesce(
    context: Context, op: str, subs: Sequence[str], left: int, right: int, scope: Mapping[str, Any]
) -> Any:
    """``a ?? b`` or ``a ??? b`` whose sides are both sub-expressions: b is evaluated only when needed."""
    value = h_try(context, subs, left, scope)
    keep = h_has(value) if op == "??" else not isinstance(value, Undefined)
    return value if keep else _evaluate_sub(context, subs, right, scope)


class _LoopIterator:
    """Iterator of a ``for`` tag: counts iterations against the render limits."""

    __slots__ = ("_items", "_iterator")

    def __init__(self, items: Sequence[Any]) -> None:
        self._items = items
        self._iterator = iter(items)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = next(self._iterator)
        current_state().count_iteration()
        return item

    def __len__(self) -> int:
        return len(self._items)


def _as_items(value: Any) -> Sequence[Any]:
    fail_if_undefined(value)
    if value is None:
        return ()
    if isinstance(value, Sequence):
        return value
    if isinstance(value, Iterable):
        items: list[Any] = []
        for item in value:
            items.append(item)
            if len(items) > MAX_ITEMS:
                _check_items(len(items), "a loop")
        return items
    raise RenderFailure(f"cannot loop over a {_type_name(value)}")


def h_iter(value: Any) -> _LoopIterator:
    """Iterable of ``{% for x in value %}``: maps give entries with ``key`` and ``value``, like Pebble."""
    if isinstance(value, Mapping):
        return _LoopIterator([{"key": key, "value": item} for key, item in value.items()])
    return _LoopIterator(_as_items(value))


def h_items(value: Any) -> _LoopIterator:
    """Iterable of ``{% for k, v in value %}``: map items, or pairs from a list."""
    if isinstance(value, Mapping):
        return _LoopIterator(list(value.items()))
    return _LoopIterator(_as_items(value))


def f_range(start: Any, end: Any = None, increment: Any = 1) -> list[Any]:
    """Pebble's ``range(start, end, increment)``: both ends included; ``range(n)`` is ``0 .. n-1``."""
    fail_if_undefined(start, end, increment)
    step = _need_int(increment, "the range increment")
    if step == 0:
        raise RenderFailure("the range increment cannot be 0")
    if end is None:
        first, last = 0, _need_int(start, "the range end") - 1
    elif isinstance(start, str) and isinstance(end, str) and len(start) == 1 and len(end) == 1:
        return [chr(code) for code in _bounded_range(ord(start), ord(end), step)]
    else:
        first, last = _need_int(start, "the range start"), _need_int(end, "the range end")
    return list(_bounded_range(first, last, step))


def _bounded_range(first: int, last: int, step: int) -> range:
    # Kestra's BoundedRangeFunction counts before looking at the direction, as here.
    count = abs(last - first) // abs(step) + 1
    if count > MAX_ITEMS:
        raise LimitExceeded(
            f"The range function cannot produce more than {MAX_ITEMS} elements, but this call would "
            f"produce {count} (it exceeds the limit of {MAX_ITEMS} items)."
        )
    if (step > 0 and last < first) or (step < 0 and last > first):
        return range(0)
    return range(first, last + (1 if step > 0 else -1), step)


def h_range(start: Any, end: Any) -> list[Any]:
    """Pebble's ``start..end``."""
    return f_range(start, end)


HELPERS: Final[dict[str, Callable[..., Any]]] = {
    "_pb_bool": h_bool,
    "_pb_concat": h_concat,
    "_pb_contains": h_contains,
    "_pb_in": h_in,
    "_pb_cmp": h_compare,
    "_pb_has": h_has,
    "_pb_nc": h_nc,
    "_pb_uc": h_uc,
    "_pb_try": h_try,
    "_pb_coalesce": h_coalesce,
    "_pb_iter": h_iter,
    "_pb_items": h_items,
    "_pb_range": h_range,
}


# ---------------------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------------------


def f_default(value: Any, default: Any = "") -> Any:
    """Pebble's ``default``: the fallback when the value is undefined, null, blank or empty."""
    if isinstance(value, Undefined) or t_empty(value):
        return default
    return value


@_checked
def f_json(value: Any) -> str:
    """``json`` / ``toJson``: compact JSON text."""
    return to_json(value)


def _parse_json(text: Any) -> Any:
    if text is None:
        return None
    if not isinstance(text, str | bytes):
        return text
    return _costly("json", text)


@_checked
def f_from_json(value: Any) -> Any:
    """``fromJson``: parse JSON text."""
    return _parse_json(value)


@_checked
def f_jq(value: Any, expression: Any) -> list[Any] | None:
    """``jq(expression)``: every result of a jq program, as a list (``| first`` takes the first)."""
    if value is None:
        return None
    program = _need_str(expression, "jq")
    text = value if isinstance(value, str) else to_json(value)
    results: list[Any] = _costly("jq", program, text)
    return results


@_checked
def f_date(
    value: Any,
    format: Any = None,
    timeZone: Any = None,
    existingFormat: Any = None,
    locale: Any = None,
) -> str | None:
    """``date(format, timeZone, existingFormat)``: print a date with a Java pattern or named format."""
    if value is None:
        return None
    return format_date(value, format, timeZone, existingFormat)


@_checked
def f_date_add(
    value: Any,
    amount: Any,
    unit: Any,
    format: Any = None,
    timeZone: Any = None,
    existingFormat: Any = None,
    locale: Any = None,
) -> str | None:
    """``dateAdd(amount, unit, format, timeZone, existingFormat)``: add a Java ChronoUnit amount."""
    if value is None:
        return None
    zone = zone_of(timeZone)
    moment = to_datetime(value, zone, existingFormat)
    moved = add_to_date(moment, _need_int(amount, "the dateAdd amount"), _need_str(unit, "dateAdd"))
    return format_in_zone(moved, format or "iso", zone)


def _epoch(value: Any, timeZone: Any, existingFormat: Any, unit: timedelta) -> int | None:
    if value is None:
        return None
    moment = to_datetime(value, zone_of(timeZone), existingFormat)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // unit


@_checked
def f_timestamp(value: Any, timeZone: Any = None, existingFormat: Any = None) -> int | None:
    """``timestamp``: epoch seconds."""
    return _epoch(value, timeZone, existingFormat, timedelta(seconds=1))


@_checked
def f_timestamp_milli(value: Any, timeZone: Any = None, existingFormat: Any = None) -> int | None:
    """``timestampMilli``: epoch milliseconds."""
    return _epoch(value, timeZone, existingFormat, timedelta(milliseconds=1))


@_checked
def f_timestamp_micro(value: Any, timeZone: Any = None, existingFormat: Any = None) -> int | None:
    """``timestampMicro``: epoch microseconds."""
    return _epoch(value, timeZone, existingFormat, timedelta(microseconds=1))


@_checked
def f_timestamp_nano(value: Any, timeZone: Any = None, existingFormat: Any = None) -> int | None:
    """``timestampNano``: epoch nanoseconds."""
    micros = _epoch(value, timeZone, existingFormat, timedelta(microseconds=1))
    return None if micros is None else micros * 1000


def _text_filter(transform: Callable[[str], str]) -> Callable[[Any], str | None]:
    @_checked
    def apply(value: Any) -> str | None:
        return None if value is None else transform(to_text(value))

    return apply


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _title(text: str) -> str:
    out: list[str] = []
    upper_next = True
    for ch in text:
        out.append(ch.upper() if upper_next else ch)
        upper_next = ch.isspace()
    return "".join(out)


def _slugify(text: str) -> str:
    text = re.sub(r"\s+", "-", text)
    text = unicodedata.normalize("NFD", text)
    text = re.sub(r"[^\w-]", "", text, flags=re.ASCII)
    text = re.sub(r"-{2,}", "-", text).strip("-")
    return text.lower()


def _urlencode(text: str) -> str:
    # Java's URLEncoder: spaces become "+", and only letters, digits and ".-*_" stay as they are.
    return quote_plus(text, safe="*").replace("~", "%7E")


def _hash(algorithm: str) -> Callable[[Any], str | None]:
    return _text_filter(lambda text: hashlib.new(algorithm, text.encode("utf-8")).hexdigest())


@_checked
def f_length(value: Any) -> int:
    """``length``: characters of a string, items of a list or map; 0 for null."""
    if value is None:
        return 0
    if isinstance(value, str | Mapping | list | tuple | set | frozenset):
        return len(value)
    return len(to_text(value))


@_checked
def f_first(value: Any) -> Any:
    """``first``: first item of a list, first character of a string."""
    if value is None:
        return None
    if isinstance(value, str | list | tuple):
        return value[0] if value else None
    if isinstance(value, Mapping):
        return next(iter(value.values()), None)
    raise RenderFailure(f"the 'first' filter expects a list or a string, not a {_type_name(value)}")


@_checked
def f_last(value: Any) -> Any:
    """``last``: last item of a list, last character of a string."""
    if value is None:
        return None
    if isinstance(value, str | list | tuple):
        return value[-1] if value else None
    if isinstance(value, Mapping):
        return list(value.values())[-1] if value else None
    raise RenderFailure(f"the 'last' filter expects a list or a string, not a {_type_name(value)}")


def _items_of(value: Any, filter_name: str) -> list[Any]:
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    if isinstance(value, Mapping):
        return list(value.values())
    raise RenderFailure(f"the '{filter_name}' filter expects a list, not a {_type_name(value)}")


@_checked
def f_join(value: Any, separator: Any = "") -> str | None:
    """``join(separator)``: print the items and join them."""
    if value is None:
        return None
    texts = [to_text(item) for item in _items_of(value, "join")]
    sep = to_text(separator)
    current_state().check_chars(sum(map(len, texts)) + len(sep) * max(len(texts) - 1, 0), "join result")
    return sep.join(texts)


@_checked
def f_keys(value: Any) -> list[Any] | None:
    """``keys``: the keys of a map (the indexes of a list)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return list(value.keys())
    if isinstance(value, list | tuple):
        return list(range(len(value)))
    raise RenderFailure(f"the 'keys' filter expects a map, not a {_type_name(value)}")


@_checked
def f_values(value: Any) -> list[Any] | None:
    """``values``: the values of a map."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return list(value.values())
    raise RenderFailure(f"the 'values' filter expects a map, not a {_type_name(value)}")


def _sorted(value: Any, reverse: bool, filter_name: str) -> list[Any] | None:
    if value is None:
        return None
    try:
        return sorted(_items_of(value, filter_name), reverse=reverse)
    except TypeError:
        raise RenderFailure(f"the '{filter_name}' filter cannot compare values of different types") from None


@_checked
def f_sort(value: Any) -> list[Any] | None:
    """``sort``: ascending order."""
    return _sorted(value, False, "sort")


@_checked
def f_rsort(value: Any) -> list[Any] | None:
    """``rsort``: descending order."""
    return _sorted(value, True, "rsort")


@_checked
def f_reverse(value: Any) -> Any:
    """``reverse``: a list or string backwards."""
    if value is None:
        return None
    if isinstance(value, str):
        return value[::-1]
    return _items_of(value, "reverse")[::-1]


@_checked
def f_slice(value: Any, fromIndex: Any = 0, toIndex: Any = None) -> Any:
    """``slice(fromIndex, toIndex)``: part of a list or string (toIndex excluded)."""
    if value is None:
        return None
    if not isinstance(value, str | list | tuple):
        raise RenderFailure(f"the 'slice' filter expects a list or a string, not a {_type_name(value)}")
    start = _need_int(fromIndex, "fromIndex")
    end = len(value) if toIndex is None else _need_int(toIndex, "toIndex")
    result = value[max(start, 0) : max(end, 0)]
    return list(result) if isinstance(result, tuple) else result


@_checked
def f_split(value: Any, delimiter: Any, limit: Any = None) -> list[str] | None:
    """``split(delimiter, limit)``: Java's ``String.split`` (the delimiter is a regular expression)."""
    if value is None:
        return None
    text = to_text(value)
    pattern = _need_str(delimiter, "split")
    max_parts = 0 if limit is None else _need_int(limit, "the split limit")
    parts: list[str] = _costly("split", pattern, text, max_parts)
    return parts


def _replace_text(text: str, pairs: Sequence[tuple[str, str]], regexp: bool) -> str:
    state = current_state()
    for old, new in pairs:
        if regexp:
            text = _costly("replace", old, new, text, state.max_output_chars)
        else:
            count = len(text) + 1 if old == "" else text.count(old)
            state.check_chars(len(text) + count * (len(new) - len(old)), "replace result")
            text = text.replace(old, new)
    return text


def _replace_any(value: Any, pairs: Sequence[tuple[str, str]], regexp: bool) -> Any:
    if isinstance(value, Mapping):
        return {key: _replace_any(item, pairs, regexp) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_any(item, pairs, regexp) for item in value]
    return _replace_text(to_text(value), pairs, regexp)


@_checked
def f_replace(value: Any, replace_pairs: Any, *rest: Any, regexp: Any = False) -> Any:
    """``replace({'a': 'b', ...}, regexp)`` (Kestra) or ``replace('a', 'b')``.

    Maps and lists are processed item by item, as Kestra does.
    """
    if value is None:
        return None
    if isinstance(replace_pairs, Mapping):
        pairs = [(to_text(key), to_text(item)) for key, item in replace_pairs.items()]
        if rest:
            regexp = rest[0]
    elif isinstance(replace_pairs, str) and rest:
        pairs = [(replace_pairs, to_text(rest[0]))]
        if len(rest) > 1:
            regexp = rest[1]
    else:
        raise RenderFailure(
            "the 'replace' filter expects a map of replacements, or a search and a replacement"
        )
    return _replace_any(value, pairs, bool(regexp))


def _required(value: Any, name: str) -> str:
    if value is None:
        raise RenderFailure(f"The argument '{name}' is required.")
    return to_text(value)


@_checked
def f_regex_match(value: Any, regex: Any = None) -> bool:
    """``regexMatch(regex)``: whether some part of the text matches (Java's ``find``); null is false."""
    if value is None:
        return False
    found: bool = _costly("regex_find", _required(regex, "regex"), to_text(value))
    return found


@_checked
def f_regex_replace(value: Any, regex: Any = None, replacement: Any = None) -> str | None:
    """``regexReplace(regex, replacement)``: every match replaced, ``$1`` naming a group (Java's
    ``replaceAll``)."""
    if value is None:
        return None
    pattern, text = _required(regex, "regex"), _required(replacement, "replacement")
    result: str = _costly("replace", pattern, text, to_text(value), current_state().max_output_chars, True)
    return result


@_checked
def f_regex_extract(value: Any, regex: Any = None, group: Any = None) -> str | None:
    """``regexExtract(regex, group=0)``: the group of the first match; null without a match."""
    if value is None:
        return None
    pattern = _required(regex, "regex")
    if group is None:
        index = 0
    elif isinstance(group, bool) or not _is_number(group):
        raise RenderFailure(f"The argument 'group' must be a number, not {to_text(group)!r}")
    else:
        index = int(group)  # Number.intValue() truncates
    if index < 0:
        raise RenderFailure(f"Group index {index} is out of bounds: must be >= 0.")
    extracted: str | None = _costly("regex_extract", pattern, to_text(value), index)
    return extracted


def _substring(value: Any, separator: Any, *, after: bool, last: bool) -> str | None:
    if value is None:
        return None
    text, sep = to_text(value), to_text(separator)
    index = (text.rfind(sep) if last else text.find(sep)) if sep else -1
    if not sep:
        # Apache Commons: an empty separator matches at the start (or at the end for "last").
        return ("" if last else text) if after else (text if last else "")
    if index < 0:
        return "" if after else text
    return text[index + len(sep) :] if after else text[:index]


@_checked
def f_substring_before(value: Any, separator: Any) -> str | None:
    """``substringBefore(separator)``: text before the first separator (all of it when absent)."""
    return _substring(value, separator, after=False, last=False)


@_checked
def f_substring_before_last(value: Any, separator: Any) -> str | None:
    """``substringBeforeLast(separator)``: text before the last separator (all of it when absent)."""
    return _substring(value, separator, after=False, last=True)


@_checked
def f_substring_after(value: Any, separator: Any) -> str | None:
    """``substringAfter(separator)``: text after the first separator (empty when absent)."""
    return _substring(value, separator, after=True, last=False)


@_checked
def f_substring_after_last(value: Any, separator: Any) -> str | None:
    """``substringAfterLast(separator)``: text after the last separator (empty when absent)."""
    return _substring(value, separator, after=True, last=True)


@_checked
def f_abbreviate(value: Any, length: Any) -> str | None:
    """``abbreviate(length)``: cut to ``length`` characters, the last three being "..."."""
    if value is None:
        return None
    text = to_text(value)
    width = _need_int(length, "the abbreviate length")
    if width < 0:
        raise RenderFailure("the abbreviate length cannot be negative")
    if len(text) <= width:
        return text
    return text[:width] if width < 3 else text[: width - 3] + "..."


def _line_separator(text: str) -> str:
    for separator in ("\r\n", "\n\r", "\n", "\r"):
        if separator in text:
            return separator
    return "\n"


def _indent(value: Any, amount: Any, prefix: Any, first_line: bool) -> str | None:
    if value is None:
        return None
    text = to_text(value)
    if not text:
        return text
    count = _need_int(amount, "the indent amount")
    if count < 0:
        raise RenderFailure("the indent amount must be a positive integer")
    pad = to_text(prefix)
    newline = _line_separator(text)
    if first_line:
        text = newline + text
    lines = text.count(newline)
    if lines == 0:
        return text
    current_state().check_chars(len(text) + lines * len(pad) * count, "indent result")
    return text.replace(newline, newline + pad * count)


@_checked
def f_indent(value: Any, amount: Any, prefix: Any = " ") -> str | None:
    """``indent(amount, prefix)``: indent every line but the first."""
    return _indent(value, amount, prefix, first_line=False)


@_checked
def f_nindent(value: Any, amount: Any, prefix: Any = " ") -> str | None:
    """``nindent(amount, prefix)``: a newline, then every line indented."""
    return _indent(value, amount, prefix, first_line=True)


@_checked
def f_number(value: Any, type: Any = None) -> Any:
    """``number(type)``: parse text into a number (``INT``, ``LONG``, ``FLOAT``, ``DOUBLE``...)."""
    if value is None or _is_number(value):
        return value
    text = _need_str(value, "number")
    try:
        return parse_number(text, None if type is None else to_text(type).upper())
    except NumberError:
        raise RenderFailure(f"'{text}' is not a valid number") from None


def _decimal_format(number: Any, pattern: str) -> str:
    positive = pattern.split(";", 1)[0]
    match = re.fullmatch(r"([^#0,.]*)([#0,]*)(?:\.([#0]*))?([^#0,.]*)", positive)
    if match is None or "E" in positive:
        raise RenderFailure(f"unsupported number format '{pattern}'")
    prefix, integer, fraction, suffix = match.group(1), match.group(2), match.group(3) or "", match.group(4)
    value = Decimal(str(number)) if not isinstance(number, Decimal) else number
    if "%" in prefix + suffix:
        value *= 100
    elif "\u2030" in prefix + suffix:
        value *= 1000
    negative = value < 0
    grouping = len(integer) - integer.rfind(",") - 1 if "," in integer else 0
    min_int = integer.count("0")
    min_frac, max_frac = fraction.count("0"), len(fraction)
    try:
        rounded = abs(value).quantize(Decimal(1).scaleb(-max_frac), rounding=ROUND_HALF_EVEN)
    except InvalidOperation:
        raise RenderFailure(f"the number {number} is too large to format") from None
    whole, _, frac = f"{rounded:f}".partition(".")
    frac = frac.rstrip("0")
    frac = frac + "0" * (min_frac - len(frac))
    whole = whole.lstrip("0")
    whole = "0" * (min_int - len(whole)) + whole
    if grouping:
        groups = [whole[max(i - grouping, 0) : i] for i in range(len(whole), 0, -grouping)]
        whole = ",".join(reversed(groups))
    body = whole + ("." + frac if frac else "")
    return f"{'-' if negative else ''}{prefix}{body or '0'}{suffix}"


@_checked
def f_numberformat(value: Any, format: Any = None) -> str | None:
    """``numberformat(pattern)``: Java ``DecimalFormat`` patterns such as ``#,##0.00``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = parse_number(value, None)
        except NumberError:
            raise RenderFailure(f"'{value}' is not a valid number") from None
    if not _is_number(value) or isinstance(value, bool):
        raise RenderFailure(f"the 'numberformat' filter expects a number, not a {_type_name(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        return to_text(value)
    return _decimal_format(value, "#,##0.###" if format is None else to_text(format))


@_checked
def f_abs(value: Any) -> Any:
    """``abs``: absolute value."""
    if not _is_number(value):
        raise RenderFailure(f"the 'abs' filter expects a number, not a {_type_name(value)}")
    return abs(value)


@_checked
def f_merge(value: Any, items: Any) -> Any:
    """``merge(items)``: concatenate lists, or merge maps (the argument wins)."""
    if isinstance(value, Mapping) and isinstance(items, Mapping):
        _check_items(len(value) + len(items), "merge result")
        return {**value, **items}
    if isinstance(value, list | tuple) and isinstance(items, list | tuple):
        _check_items(len(value) + len(items), "merge result")
        return [*value, *items]
    raise RenderFailure(f"the 'merge' filter cannot merge a {_type_name(items)} into a {_type_name(value)}")


@_checked
def f_chunk(value: Any, size: Any) -> list[list[Any]] | None:
    """``chunk(size)``: split a list into lists of ``size`` items."""
    if value is None:
        return None
    step = _need_int(size, "the chunk size")
    if step <= 0:
        raise RenderFailure("the chunk size must be positive")
    items = _items_of(value, "chunk")
    return [items[i : i + step] for i in range(0, len(items), step)]


@_checked
def f_distinct(value: Any) -> list[Any] | None:
    """``distinct``: items without duplicates, first occurrence kept."""
    if value is None:
        return None
    seen: set[Any] = set()
    out: list[Any] = []
    for item in _items_of(value, "distinct"):
        try:
            key: Any = ("h", item)
            hash(key)
        except TypeError:
            key = ("j", json.dumps(item, sort_keys=True, default=json_default))
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


@_checked
def f_flatten(value: Any) -> list[Any] | None:
    """``flatten``: one level of nested lists."""
    if value is None:
        return None
    out: list[Any] = []
    for item in _items_of(value, "flatten"):
        if isinstance(item, list | tuple):
            out.extend(item)
        else:
            out.append(item)
    _check_items(len(out), "flatten result")
    return out


@_checked
def f_string(value: Any) -> str:
    """``string``: the printed value."""
    return to_text(value)


@_checked
def f_list(value: Any) -> list[Any]:
    """``list``: items of a list, characters of a string, keys of a map."""
    if value is None:
        return []
    if isinstance(value, str):
        return list(value)
    if isinstance(value, Iterable):
        return list(_as_items(value))
    raise RenderFailure(f"cannot convert a {_type_name(value)} to a list")


@_checked
def f_int(value: Any, default: Any = 0) -> Any:
    """``int``: convert to an integer (``default`` when that fails)."""
    try:
        if isinstance(value, str):
            return int(float(value)) if re.search(r"[.eE]", value) else int(value, 0)
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


@_checked
def f_float(value: Any, default: Any = 0.0) -> Any:
    """``float``: convert to a float (``default`` when that fails)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


@_checked
def f_round(value: Any, precision: Any = 0, method: Any = "common") -> float:
    """``round(precision, method)``: ``common`` (half up), ``floor`` or ``ceil``."""
    if not _is_number(value):
        raise RenderFailure(f"the 'round' filter expects a number, not a {_type_name(value)}")
    digits = _need_int(precision, "the round precision")
    factor = 10**digits
    if method == "floor":
        return float(math.floor(value * factor) / factor)
    if method == "ceil":
        return float(math.ceil(value * factor) / factor)
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP))


@_checked
def f_sum(value: Any) -> Any:
    """``sum``: total of a list of numbers."""
    items = _items_of(value, "sum")
    if not all(_is_number(item) for item in items):
        raise RenderFailure("the 'sum' filter expects a list of numbers")
    return sum(items)


@_checked
def f_base64encode(value: Any) -> str | None:
    """``base64encode``: Base64 of the UTF-8 text."""
    if value is None:
        return None
    data = value if isinstance(value, bytes) else to_text(value).encode("utf-8")
    return base64.b64encode(data).decode("ascii")


@_checked
def f_base64decode(value: Any) -> str | None:
    """``base64decode``: decode Base64 into UTF-8 text."""
    if value is None:
        return None
    try:
        return base64.b64decode(to_text(value), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise RenderFailure(f"invalid Base64 text: {exc}") from None


@_checked
def f_yaml(value: Any) -> str:
    """``yaml``: YAML text of a value, laid out as Kestra's Jackson writer does (``null`` for null)."""
    if value is None:
        return "null"
    to_json(value)  # enforces the output limit before the text is built
    return to_yaml(value)


@_checked
def f_to_ion(value: Any) -> str:
    """``toIon``: compact Ion text of a value (``null`` for null), as Kestra's ToIonFilter writes it."""
    to_json(value)  # enforces the output limit before the text is built
    return dump_ion(value, default=json_default)


def _starts_with(subject: Any, /, value: Any) -> bool:
    """``startsWith(value)``: whether the printed subject starts with the printed value."""
    fail_if_undefined(subject, value)
    return subject is not None and to_text(subject).startswith(to_text(value))


def _ends_with(subject: Any, /, value: Any) -> bool:
    """``endsWith(value)``: whether the printed subject ends with the printed value."""
    fail_if_undefined(subject, value)
    return subject is not None and to_text(subject).endswith(to_text(value))


# escapeChar's types: what is replaced, by what (Kestra's EscapeCharFilter).
_ESCAPES: Final = {"single": ("'", "\\'"), "double": ('"', '\\"'), "shell": ("'", "'\\''")}


@_checked
def f_escape_char(value: Any, type: Any = None) -> Any:
    """``escapeChar(type)``: escape the quotes of text (in every string of a mapping or list) for a
    single-quoted, double-quoted or shell single-quoted string."""
    if value is None:
        return None
    if type is None:
        raise RenderFailure("The 'escapeChar' filter expects an argument 'type'")
    pair = _ESCAPES.get(str(type).lower())
    if pair is None:
        raise RenderFailure("The 'escapeChar' filter expects 'type' to be 'single', 'double' or 'shell'")

    def escape(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {key: escape(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [escape(inner) for inner in item]
        return to_text(item).replace(*pair)

    return escape(value)


# The Java class a value would have in Kestra's Pebble (numbers read from text are Longs and Doubles).
_JAVA_CLASSES: Final = (
    (bool, "java.lang.Boolean"),
    (JavaInteger, "java.lang.Integer"),
    (JavaBigInteger, "java.math.BigInteger"),
    (JavaFloat, "java.lang.Float"),
    (int, "java.lang.Long"),
    (float, "java.lang.Double"),
    (Decimal, "java.math.BigDecimal"),
    (str, "java.lang.String"),
    (Mapping, "java.util.LinkedHashMap"),
    (list | tuple, "java.util.ArrayList"),
    (datetime, "java.time.ZonedDateTime"),
)


@_checked
def f_class_name(value: Any) -> str | None:
    """``className``: the Java class name of a value, as Kestra's ClassNameFilter prints it."""
    if value is None:
        return None
    return next((name for kind, name in _JAVA_CLASSES if isinstance(value, kind)), "java.lang.Object")


FILTERS: Final[dict[str, Callable[..., Any]]] = {
    "abbreviate": f_abbreviate,
    "abs": f_abs,
    "base64decode": f_base64decode,
    "base64encode": f_base64encode,
    "capitalize": _text_filter(_capitalize),
    "chunk": f_chunk,
    "className": f_class_name,
    "date": f_date,
    "dateAdd": f_date_add,
    "default": f_default,
    "distinct": f_distinct,
    "endsWith": _checked(_ends_with),
    "escapeChar": f_escape_char,
    "first": f_first,
    "flatten": f_flatten,
    "float": f_float,
    "fromJson": f_from_json,
    "indent": f_indent,
    "int": f_int,
    "jq": f_jq,
    "join": f_join,
    "json": f_json,
    "keys": f_keys,
    "last": f_last,
    "length": f_length,
    "list": f_list,
    "lower": _text_filter(str.lower),
    "md5": _hash("md5"),
    "merge": f_merge,
    "nindent": f_nindent,
    "number": f_number,
    "numberFormat": f_numberformat,
    "numberformat": f_numberformat,
    "replace": f_replace,
    "regexExtract": f_regex_extract,
    "regexMatch": f_regex_match,
    "regexReplace": f_regex_replace,
    "reverse": f_reverse,
    "round": f_round,
    "rsort": f_rsort,
    "sha1": _hash("sha1"),
    "sha256": _hash("sha256"),
    "sha512": _hash("sha512"),
    "slice": f_slice,
    "slugify": _text_filter(_slugify),
    "sort": f_sort,
    "split": f_split,
    "startsWith": _checked(_starts_with),
    "string": f_string,
    "substringAfter": f_substring_after,
    "substringAfterLast": f_substring_after_last,
    "substringBefore": f_substring_before,
    "substringBeforeLast": f_substring_before_last,
    "sum": f_sum,
    "timestamp": f_timestamp,
    "timestampMicro": f_timestamp_micro,
    "timestampMilli": f_timestamp_milli,
    "timestampNano": f_timestamp_nano,
    "title": _text_filter(_title),
    "toIon": f_to_ion,
    "toJson": f_json,
    "trim": _text_filter(str.strip),
    "unique": f_distinct,
    "upper": _text_filter(str.upper),
    "urldecode": _text_filter(unquote_plus),
    "urlencode": _text_filter(_urlencode),
    "values": f_values,
    "yaml": f_yaml,
}


# ---------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------


def _strict_test(func: Callable[..., bool]) -> Callable[..., bool]:
    @functools.wraps(func)
    def wrapper(value: Any, *args: Any) -> bool:
        fail_if_undefined(value, *args)
        return func(value, *args)

    return wrapper


def t_empty(value: Any) -> bool:
    """Pebble's ``empty``: null, blank text, empty list or map."""
    fail_if_undefined(value)
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return not value
    return False


def _t_json(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _t_even(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value % 2 == 0


def _t_odd(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value % 2 == 1


def _t_divisibleby(value: Any, divisor: Any) -> bool:
    return _is_number(value) and _is_number(divisor) and divisor != 0 and value % divisor == 0


TESTS: Final[dict[str, Callable[..., bool]]] = {
    "defined": lambda value: not isinstance(value, Undefined),
    "undefined": lambda value: isinstance(value, Undefined),
    "null": _strict_test(lambda value: value is None),
    "none": _strict_test(lambda value: value is None),
    "empty": t_empty,
    "json": _strict_test(_t_json),
    "even": _strict_test(_t_even),
    "odd": _strict_test(_t_odd),
    "divisibleby": _strict_test(_t_divisibleby),
    "iterable": _strict_test(lambda value: isinstance(value, list | tuple | set | frozenset)),
    "map": _strict_test(lambda value: isinstance(value, Mapping)),
    "mapping": _strict_test(lambda value: isinstance(value, Mapping)),
    "sequence": _strict_test(lambda value: isinstance(value, list | tuple)),
    "number": _strict_test(lambda value: _is_number(value) and not isinstance(value, bool)),
    "string": _strict_test(lambda value: isinstance(value, str)),
    "boolean": _strict_test(lambda value: isinstance(value, bool)),
    "true": _strict_test(lambda value: value is True),
    "false": _strict_test(lambda value: value is False),
    "startsWith": _starts_with,
    "endsWith": _ends_with,
}


# ---------------------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------------------


@_checked
def fn_now(
    format: Any = None,
    timeZone: Any = None,
    existingFormat: Any = None,
    locale: Any = None,
) -> str:
    """``now(format, timeZone)``: the current time, ISO 8601 with microseconds by default."""
    zone = zone_of(timeZone)
    return format_in_zone(datetime.now(UTC), format or "iso", zone)


@_checked
def fn_from_json(json: Any) -> Any:
    """``fromJson(text)`` and the deprecated ``json(text)``: parse JSON text."""
    return _parse_json(json)


def _numbers(args: tuple[Any, ...], name: str) -> list[Any]:
    fail_if_undefined(*args)
    values = list(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else list(args)
    if not values:
        raise RenderFailure(f"{name}() needs at least one value")
    return values


def fn_max(*args: Any) -> Any:
    """``max(a, b, ...)``: the largest value."""
    try:
        return max(_numbers(args, "max"))
    except TypeError:
        raise RenderFailure("max() cannot compare values of different types") from None


def fn_min(*args: Any) -> Any:
    """``min(a, b, ...)``: the smallest value."""
    try:
        return min(_numbers(args, "min"))
    except TypeError:
        raise RenderFailure("min() cannot compare values of different types") from None


@pass_context
def fn_render(context: Context, toRender: Any, recursive: Any = True) -> Any:
    """``render(text, recursive=true)``: render a value that holds expressions, in the current context."""
    fail_if_undefined(toRender, recursive)
    if not isinstance(recursive, bool):
        raise RenderFailure(
            "the 'render' function expects an optional argument 'recursive' with type boolean"
        )
    renderer = current_state().renderer
    if renderer is None:
        raise RenderFailure("render() is only available while rendering")
    return renderer.render_nested(toRender, context.get_all(), recursive)


@pass_context
def fn_render_once(context: Context, toRender: Any) -> Any:
    """``renderOnce(text)``: render a value once, in the current context."""
    result: Any = fn_render(context, toRender, False)
    return result


@pass_context
def fn_current_each_output(context: Context, outputs: Any) -> Any:
    """``currentEachOutput(outputs.task)``: the output of the current loop iteration.

    Inside ``ForEach`` loops, outputs are nested by loop value; walk them with the farthest parent's
    value first, down to the nearest parent and then ``taskrun.value``.
    """
    fail_if_undefined(outputs)
    if not isinstance(outputs, Mapping):
        raise RenderFailure("the 'currentEachOutput' function expects an argument 'outputs' with type map")
    current: Any = outputs
    parents = context.resolve_or_missing("parents")
    if isinstance(parents, list | tuple):
        for parent in reversed(parents):
            taskrun = parent.get("taskrun") if isinstance(parent, Mapping) else None
            value = taskrun.get("value") if isinstance(taskrun, Mapping) else None
            if value is None:
                continue
            if not isinstance(current, Mapping) or current.get(value) is None:
                raise RenderFailure(f"no outputs for the loop value '{value}' of a parent task")
            current = current[value]
    taskrun = context.resolve_or_missing("taskrun")
    value = taskrun.get("value") if isinstance(taskrun, Mapping) else None
    if value is None:
        return current
    return current.get(value) if isinstance(current, Mapping) else None


@_checked
def fn_random_int(lower: Any, upper: Any) -> int:
    """``randomInt(lower, upper)``: a random integer, ``lower`` included and ``upper`` excluded;
    ``lower`` itself when they are equal (Kestra's RandomIntFunction refuses only upper < lower)."""
    low, high = _need_int(lower, "lower"), _need_int(upper, "upper")
    if high < low:
        raise RenderFailure("randomInt() needs 'upper' to be at least 'lower'")
    return low if low == high else random.randrange(low, high)


def fn_id() -> str:
    """``id()``: a new random id, shaped like execution ids (Kestra's IdUtils.create)."""
    return new_id()


def fn_uuid() -> str:
    """A time-ordered UUID (version 7: 48 bits of Unix milliseconds, then random bits), as Kestra's
    UUIDFunction makes with its time-based epoch generator."""
    millis = time.time_ns() // 1_000_000
    value = (millis & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | 0x7 << 76  # version 7
    value = (value & ~(0x3 << 62)) | 0x2 << 62  # RFC 4122 variant
    return str(uuid_module.UUID(int=value))


@_checked
def fn_yaml(yaml_text: Any) -> Any:
    """``yaml(text)``: parse YAML text (anchors and aliases are refused)."""
    if yaml_text is None:
        return None
    return _costly("yaml", to_text(yaml_text))


def fn_from_ion(*args: Any, **kwargs: Any) -> Any:
    """``fromIon(ion)``: parse the first value of an Ion text (null gives null)."""
    if not args and "ion" not in kwargs:
        raise RenderFailure("The 'fromIon' function expects an argument 'ion'.")
    ion = args[0] if args else kwargs["ion"]
    fail_if_undefined(ion)
    if ion is None:
        return None
    if not isinstance(ion, str):
        raise RenderFailure("The 'fromIon' function expects an argument 'ion' with type string.")
    return _costly("ion", ion)


@pass_context
def fn_fetch_context(context: Context) -> dict[str, Any]:
    """``fetchContext()`` / ``printContext()``: every variable of the render, as a map."""
    return {
        name: value
        for name, value in context.get_all().items()
        if not name.startswith("_pb_") and not callable(value) and not isinstance(value, Undefined)
    }


@pass_context
def fn_env(context: Context, name: Any = None, default: Any = None) -> Any:
    """``env(name, default=null)``: the `envs` variable named ``name`` (a name built at render time),
    or ``default`` when it is missing or empty."""
    fail_if_undefined(name, default)
    if name is None:
        raise RenderFailure("The 'env' function expects an argument 'name'.")
    envs = context.resolve_or_missing("envs")
    value = envs.get(to_text(name)) if isinstance(envs, Mapping) else None
    return default if value is None or to_text(value) == "" else value


def fn_random_port() -> int:
    """``randomPort()``: a TCP port that was free a moment ago (the system picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
    return port


FUNCTIONS: Final[dict[str, Callable[..., Any]]] = {
    "currentEachOutput": fn_current_each_output,
    "env": fn_env,
    "fetchContext": fn_fetch_context,
    "fromIon": fn_from_ion,
    "fromJson": fn_from_json,
    "json": fn_from_json,
    "max": fn_max,
    "min": fn_min,
    "now": fn_now,
    "printContext": fn_fetch_context,
    "randomInt": fn_random_int,
    "randomPort": fn_random_port,
    "range": f_range,
    "render": fn_render,
    "renderOnce": fn_render_once,
    "uuid": fn_uuid,
    "id": fn_id,
    "yaml": fn_yaml,
    "http": fn_http,
    **CALENDAR_FUNCTIONS,
    **CRYPTO_FUNCTIONS,
    **IDENTIFIER_FUNCTIONS,
}
