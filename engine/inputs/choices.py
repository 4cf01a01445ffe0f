"""Inputs that hold a choice or a list: SELECT, MULTISELECT and ARRAY.

A SELECT or MULTISELECT accepts the `values` it lists (or those its `expression` renders to) unless
it allows custom values; a MULTISELECT or ARRAY value is a list, given as JSON or, for a MULTISELECT,
as comma-separated text, whose items are coerced by the `itemType`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..model import InputSpec
from .causes import Invalid, InvalidItems, expected
from .scalars import SCALAR_TYPES, coerce_scalar
from .text_forms import as_text, echo

Renderer = Callable[[Any], Any]

LIST_TYPES = frozenset({"ARRAY", "MULTISELECT"})


def coerce_select(spec: InputSpec, value: Any, render: Renderer | None) -> str:
    """A SELECT's value as text, checked against the values it allows."""
    text = as_text(value)
    allowed = _allowed_values(spec, render)
    if allowed is not None and text not in allowed and not _allows_custom(spec):
        raise Invalid(f"it must match the values `{_java_list(allowed)}`")
    return text


def coerce_multiselect(spec: InputSpec, value: Any, render: Renderer | None) -> list[Any]:
    """A MULTISELECT's items (STRING unless `itemType` says otherwise), each checked against the values."""
    kind = _item_type(spec, "STRING")
    items = _coerce_items(_as_list("MULTISELECT", value, comma_separated=True), kind)
    allowed = _allowed_values(spec, render)
    if allowed is not None and not _allows_custom(spec):
        bad = [
            f"value `{as_text(item)}` doesn't match the values `{_java_list(allowed)}`"
            for item in items
            if as_text(item) not in allowed
        ]
        if bad:
            raise InvalidItems(bad)
    return items


def coerce_array(spec: InputSpec, value: Any) -> list[Any]:
    """An ARRAY's items, coerced by `itemType` when it is set and kept as given otherwise."""
    kind = _item_type(spec, None)
    return _coerce_items(_as_list("ARRAY", value, comma_separated=False), kind)


def _allowed_values(spec: InputSpec, render: Renderer | None) -> list[str] | None:
    """The values a SELECT or MULTISELECT accepts, or None when they cannot be known here."""
    values = spec.props.get("values")
    if values is None:
        values = spec.props.get("options")  # MULTISELECT's deprecated name
    if values is None and spec.props.get("expression") is not None:
        if render is None:
            return None
        try:
            values = render(spec.props["expression"])
        except Exception as exc:  # the renderer's own error is the most useful message
            raise Invalid(f"Cannot render 'expression'. Cause: {exc}") from None
        if isinstance(values, str):
            try:
                values = json.loads(values)
            except json.JSONDecodeError:
                values = None
        if not isinstance(values, list):
            raise Invalid("Invalid expression result. Expected a list of strings")
    if values is None:
        return None
    if not isinstance(values, list | tuple):
        values = [values]
    return [as_text(item.get("value")) if isinstance(item, Mapping) else as_text(item) for item in values]


def _allows_custom(spec: InputSpec) -> bool:
    return bool(spec.props.get("allowCustomValue") or spec.props.get("allowInput"))


def _java_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _as_list(kind: str, value: Any, *, comma_separated: bool) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if not isinstance(value, str):
        raise expected(kind, value)
    text = value.strip()
    if text.startswith("[") or not comma_separated:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise expected(kind, value, str(exc)) from None
        if not isinstance(parsed, list):
            raise expected(kind, value)
        return parsed
    return [part.strip() for part in text.split(",") if part.strip()] if text else []


def _item_type(spec: InputSpec, fallback: str | None) -> str | None:
    raw = spec.props.get("itemType")
    kind = str(raw).upper() if raw is not None else fallback
    if kind is not None and kind not in SCALAR_TYPES:
        raise Invalid(f"the item type `{raw}` is not supported, use a type other than ARRAY or MULTISELECT")
    return kind


def _coerce_items(items: list[Any], kind: str | None) -> list[Any]:
    if kind is None:
        return items
    result: list[Any] = []
    causes: list[str] = []
    for index, item in enumerate(items):
        try:
            if item is None:
                raise expected(kind, item)
            result.append(coerce_scalar(kind, item, {}))
        except Invalid:
            causes.append(f"Unable to parse array element as `{kind}` on `{echo(item)}` at index {index}")
    if causes:
        raise InvalidItems(causes)
    return result
