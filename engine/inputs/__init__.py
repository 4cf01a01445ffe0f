"""Flow inputs: turn what a user typed, or what a trigger or a subflow passed, into typed values.

Values arrive either as text (`tiercel run --input k=v`, a form field) or already typed (a JSON body,
a subflow's rendered inputs). Each declared input is coerced by its type and checked against its
type-specific settings (`validator`, `min`, `max`, `after`, `before`, `values` ...), following
Kestra's rules and messages, so that an execution that starts here would start the same way on a
Kestra cluster. Every problem is reported at once in an `InputError`.

The messages are Kestra's: a bad value reads "Invalid value for input `x`. Cause: ..." and an absent
required input "Missing required input:x".

This module is the public API and the walk over a flow's inputs; `scalars` coerces one value by its
type, `choices` handles SELECT, MULTISELECT and ARRAY, `text_forms` holds Kestra's text and JSON
forms of values, and `causes` the reasons a value is invalid before they become an `InputError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..model import InputSpec
from .causes import Invalid, InvalidItems
from .choices import LIST_TYPES, Renderer, coerce_array, coerce_multiselect, coerce_select
from .scalars import SCALAR_TYPES, coerce_scalar
from .text_forms import input_json_value, input_to_text

__all__ = [
    "InputError",
    "coerce_input",
    "input_json_value",
    "input_to_text",
    "input_value",
    "resolve_inputs",
]

_TYPES = SCALAR_TYPES | LIST_TYPES


class InputError(Exception):
    """One or more inputs are missing or invalid.

    Attributes:
        errors: one message per problem, in the order the inputs are declared.
        fields: the same messages grouped by input id, for forms that show each beside its field.
    """

    def __init__(self, errors: Sequence[str], fields: Mapping[str, Sequence[str]] | None = None) -> None:
        self.errors: list[str] = list(errors)
        self.fields: dict[str, list[str]] = {key: list(value) for key, value in (fields or {}).items()}
        super().__init__("\n".join(self.errors))


def _invalid(spec: InputSpec, cause: str) -> str:
    return f"Invalid value for input `{spec.id}`. Cause: {cause}"


def _missing(spec: InputSpec) -> str:
    return f"Missing required input:{spec.id}"


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def resolve_inputs(
    specs: Sequence[InputSpec], given: Mapping[str, Any], *, render: Renderer | None = None
) -> dict[str, Any]:
    """Validate and coerce every declared input; raise InputError listing all problems.

    Args:
        specs: the flow's declared inputs, in declaration order.
        given: the values supplied, keyed by input id. Ids with dots may also be given as nested
            mappings (`{"nested": {"string": "a"}}` for `nested.string`). Undeclared keys are ignored.
        render: renders an expression; used for defaults written as `{{ ... }}` strings and for
            the `expression` of SELECT and MULTISELECT inputs.

    Returns:
        The typed inputs. An absent optional input maps to None, as in Kestra. Ids holding dots are
        nested (`nested.string` becomes `{"nested": {"string": ...}}`) so that
        `{{ inputs.nested.string }}` resolves as it does on Kestra.

    Raises:
        InputError: when any input is missing or invalid; it lists every problem.
    """
    resolved: dict[str, Any] = {}
    errors: list[str] = []
    fields: dict[str, list[str]] = {}
    for spec in specs:
        try:
            value = input_value(given, spec.id)
            if value is None and spec.defaults is not None:
                value = _default(spec, render)
            resolved[spec.id] = coerce_input(spec, value, render=render)
        except InputError as exc:
            errors.extend(exc.errors)
            fields.setdefault(spec.id, []).extend(exc.errors)
    if errors:
        raise InputError(errors, fields)
    return _nest(resolved)


def coerce_input(spec: InputSpec, value: Any, *, render: Renderer | None = None) -> Any:
    """Coerce and validate one input's value (its default is not applied here).

    Args:
        spec: the declared input.
        value: text or an already typed value; None means no value.
        render: renders the `expression` that lists a SELECT's or MULTISELECT's values.

    Returns:
        The typed value: str, int, float, bool, date, datetime (aware, UTC), time, timedelta,
        list, or whatever a JSON or YAML document holds. None for an absent optional input.

    Raises:
        InputError: the value is missing (and required) or invalid; one message per problem.
    """
    if value is None:
        if spec.required:
            raise InputError([_missing(spec)])
        return None
    kind = str(spec.type).upper()
    try:
        if kind not in _TYPES:
            raise Invalid(f"unsupported input type `{spec.type}`")
        if kind == "ARRAY":
            return coerce_array(spec, value)
        if kind == "MULTISELECT":
            return coerce_multiselect(spec, value, render)
        if kind in ("SELECT", "ENUM"):
            return coerce_select(spec, value, render)
        return coerce_scalar(kind, value, spec.props)
    except Invalid as exc:
        raise InputError([_invalid(spec, str(exc))]) from None
    except InvalidItems as exc:
        raise InputError([_invalid(spec, cause) for cause in exc.causes]) from None


def input_value(inputs: Mapping[str, Any], input_id: str) -> Any:
    """The value of input `input_id` in `inputs`, whether stored flat (`a.b`) or nested (`a` -> `b`).

    Returns None when it is absent.
    """
    if input_id in inputs:
        return inputs[input_id]
    if "." not in input_id:
        return None
    current: Any = inputs
    for part in input_id.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return None
        current = current[part]
    return current


# ---------------------------------------------------------------------------------------------
# Defaults and nesting
# ---------------------------------------------------------------------------------------------


def _default(spec: InputSpec, render: Renderer | None) -> Any:
    default = spec.defaults
    if render is not None and isinstance(default, str) and ("{{" in default or "{%" in default):
        try:
            return render(default)
        except Exception as exc:  # the renderer's own error is the most useful message
            raise InputError([_invalid(spec, f"unable to render the default `{default}`: {exc}")]) from None
    return default


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Kestra's nesting of dotted input ids: `a.b` -> {"a": {"b": ...}}; a clash keeps the flat key."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node: dict[str, Any] | None = nested
        if len(parts) > 1 and all(parts):
            for part in parts[:-1]:
                child = node.setdefault(part, {}) if node is not None else None
                node = child if isinstance(child, dict) else None
        if len(parts) == 1 or not all(parts) or node is None or parts[-1] in node:
            nested[key] = value
        else:
            node[parts[-1]] = value
    return nested
