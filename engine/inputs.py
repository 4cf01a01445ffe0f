"""Flow inputs: turn what a user typed, or what a trigger or a subflow passed, into typed values.

Values arrive either as text (`tiercel run --input k=v`, a form field) or already typed (a JSON body,
a subflow's rendered inputs). Each declared input is coerced by its type and checked against its
type-specific settings (`validator`, `min`, `max`, `after`, `before`, `values` ...), following
Kestra's rules and messages, so that an execution that starts here would start the same way on a
Kestra cluster. Every problem is reported at once in an `InputError`.

The messages are Kestra's: a bad value reads "Invalid value for input `x`. Cause: ..." and an absent
required input "Missing required input:x".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import yaml

from .durations import format_duration, parse_duration
from .model import InputSpec, iso

__all__ = [
    "InputError",
    "coerce_input",
    "input_json_value",
    "input_to_text",
    "input_value",
    "resolve_inputs",
]

Renderer = Callable[[Any], Any]

# Kestra's type names; BOOL and ENUM are Kestra's deprecated aliases of BOOLEAN and SELECT.
_TEXT_TYPES = frozenset({"STRING", "SELECT", "ENUM", "URI", "EMAIL", "FILE", "SECRET"})
_TYPED_TYPES = frozenset(
    {"INT", "FLOAT", "BOOLEAN", "BOOL", "JSON", "YAML", "DATE", "DATETIME", "TIME", "DURATION"}
)
_SCALAR_TYPES = _TEXT_TYPES | _TYPED_TYPES
_LIST_TYPES = frozenset({"ARRAY", "MULTISELECT"})
_TYPES = _SCALAR_TYPES | _LIST_TYPES

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_TIME = re.compile(r"(\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d{1,9}))?")
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
_EMAIL = re.compile(
    r"[A-Za-z0-9_!#$%&'*+/=?`{|}~^.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}"
)
_MAX_ECHO = 200
_MAX_YAML_ALIASES = 100


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


class _Invalid(Exception):
    """A cause for one input, before it is wrapped in Kestra's "Invalid value for input" sentence."""


class _Many(Exception):
    """Several causes for one input (each bad item of a MULTISELECT or an ARRAY)."""

    def __init__(self, causes: list[str]) -> None:
        super().__init__("\n".join(causes))
        self.causes = causes


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
            raise _Invalid(f"unsupported input type `{spec.type}`")
        if kind == "ARRAY":
            return _coerce_array(spec, value)
        if kind == "MULTISELECT":
            return _coerce_multiselect(spec, value, render)
        if kind in ("SELECT", "ENUM"):
            return _coerce_select(spec, value, render)
        return _coerce_scalar(kind, value, spec.props)
    except _Invalid as exc:
        raise InputError([_invalid(spec, str(exc))]) from None
    except _Many as exc:
        raise InputError([_invalid(spec, cause) for cause in exc.causes]) from None


def input_to_text(spec: InputSpec, value: Any) -> str:
    """How a typed value is shown in, or prefilled into, a form field that holds text.

    The text parses back to the same value with `coerce_input`: a DATETIME becomes ISO 8601 in UTC,
    a DURATION ISO 8601 (PT5M), JSON, YAML and ARRAY values compact JSON, a MULTISELECT a
    comma-separated list (JSON when an item holds a comma).
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    kind = str(spec.type).upper()
    if kind == "MULTISELECT" and isinstance(value, list | tuple):
        items = [_text(item) for item in value]
        if any("," in item or item != item.strip() for item in items) or (items and items[0].startswith("[")):
            return json.dumps(items, separators=(",", ":"), ensure_ascii=False)
        return ", ".join(items)
    return _text(value)


def input_json_value(value: Any) -> Any:
    """Convert a typed input value into what an execution's JSON stores, as Kestra prints it.

    date -> "2024-01-01", datetime -> "2024-01-01T10:00:00.000Z", time -> "10:00:00",
    timedelta -> "PT5M"; mappings and lists are converted item by item; anything else is kept.
    """
    if isinstance(value, datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping):
        return {str(key): input_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [input_json_value(item) for item in value]
    return value


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
# Defaults
# ---------------------------------------------------------------------------------------------


def _default(spec: InputSpec, render: Renderer | None) -> Any:
    default = spec.defaults
    if render is not None and isinstance(default, str) and ("{{" in default or "{%" in default):
        try:
            return render(default)
        except Exception as exc:  # the renderer's own error is the most useful message
            raise InputError([_invalid(spec, f"unable to render the default `{default}`: {exc}")]) from None
    return default


# ---------------------------------------------------------------------------------------------
# Coercion by type
# ---------------------------------------------------------------------------------------------


def _coerce_scalar(kind: str, value: Any, props: Mapping[str, Any]) -> Any:
    if kind == "STRING":
        text = _text(value)
        _check_string(text, props)
        return text
    if kind in ("SELECT", "ENUM"):
        return _text(value)
    if kind in ("FILE", "SECRET"):
        return value if isinstance(value, str) else _text(value)
    if kind == "INT":
        number = _to_int(value)
        _check_range(number, props, _to_int, str, capital=False)
        return number
    if kind == "FLOAT":
        real = _to_float(value)
        _check_range(real, props, _to_float, _float_text, capital=False)
        return real
    if kind in ("BOOLEAN", "BOOL"):
        return _to_bool(value)
    if kind == "JSON":
        return _to_json(value)
    if kind == "YAML":
        return _to_yaml(value)
    if kind == "DATE":
        day = _to_date(value)
        _check_bounds(day, props, _to_date, date.isoformat)
        return day
    if kind == "DATETIME":
        moment = _to_datetime(value)
        _check_bounds(moment, props, _to_datetime, _instant_text)
        return moment
    if kind == "TIME":
        clock = _to_time(value)
        _check_bounds(clock, props, _to_time, _local_time_text)
        return clock
    if kind == "DURATION":
        delta = _to_duration(value)
        _check_range(delta, props, _to_duration, format_duration, capital=True)
        return delta
    if kind == "URI":
        return _to_uri(value)
    if kind == "EMAIL":
        return _to_email(value)
    raise _Invalid(f"unsupported input type `{kind}`")


def _check_string(text: str, props: Mapping[str, Any]) -> None:
    validator = props.get("validator")
    if validator is not None:
        pattern = _compile(str(validator))
        if pattern.fullmatch(text) is None:
            raise _Invalid(f"it must match the pattern `{validator}`")
    min_length = _setting(props, "minLength", _to_int)
    if min_length is not None and len(text) < min_length:
        raise _Invalid(f"it must be at least `{min_length}` characters long")
    max_length = _setting(props, "maxLength", _to_int)
    if max_length is not None and len(text) > max_length:
        raise _Invalid(f"it must be at most `{max_length}` characters long")


@lru_cache(maxsize=256)
def _compile(validator: str) -> re.Pattern[str]:
    try:
        return re.compile(validator)
    except re.error as exc:
        raise _Invalid(
            f"the validator pattern `{validator}` is not a valid regular expression: {exc}"
        ) from None


def _setting(props: Mapping[str, Any], name: str, parse: Callable[[Any], Any]) -> Any:
    """A type-specific setting parsed like a value of the input, or None when it is not set."""
    raw = props.get(name)
    if raw is None:
        return None
    try:
        return parse(raw)
    except _Invalid:
        raise _Invalid(f"the `{name}` setting `{_echo(raw)}` is not valid for this input type") from None


def _check_range(
    value: Any,
    props: Mapping[str, Any],
    parse: Callable[[Any], Any],
    show: Callable[[Any], str],
    *,
    capital: bool,
) -> None:
    # Kestra writes "It must ..." for durations and "it must ..." elsewhere; both are kept as is.
    lead = "It" if capital else "it"
    low = _setting(props, "min", parse)
    if low is not None and value < low:
        raise _Invalid(f"{lead} must be more than `{show(low)}`")
    high = _setting(props, "max", parse)
    if high is not None and value > high:
        raise _Invalid(f"{lead} must be less than `{show(high)}`")


def _check_bounds(
    value: Any, props: Mapping[str, Any], parse: Callable[[Any], Any], show: Callable[[Any], str]
) -> None:
    after = _setting(props, "after", parse)
    if after is not None and value < after:
        raise _Invalid(f"it must be after `{show(after)}`")
    before = _setting(props, "before", parse)
    if before is not None and value > before:
        raise _Invalid(f"it must be before `{show(before)}`")


def _expected(kind: str, value: Any, detail: str | None = None) -> _Invalid:
    message = f"Expected `{kind}` but received `{_echo(value)}`"
    return _Invalid(f"{message}: {detail}" if detail else message)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _expected("INT", value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    raise _expected("INT", value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _expected("FLOAT", value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value.strip())
    raise _expected("FLOAT", value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return text == "true"
    raise _expected("BOOLEAN", value)


def _to_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise _expected("JSON", value, str(exc)) from None


class _YamlLoader(yaml.SafeLoader):
    """A safe loader that refuses documents with more aliases than any sensible input holds."""

    aliases_seen = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases_seen += 1
            if self.aliases_seen > _MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {_MAX_YAML_ALIASES} aliases")
        return super().compose_node(parent, index)


def _to_yaml(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return yaml.load(value, Loader=_YamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise _expected("YAML", value, f"{exc.problem or exc.context}{where}") from None
    except yaml.YAMLError as exc:
        raise _expected("YAML", value, str(exc)) from None


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise _expected("DATE", value)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise _expected("DATE", value, str(exc)) from None
    raise _expected("DATE", value)


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _DATETIME.fullmatch(value.strip()):
        text = value.strip().replace(",", ".")
        if text[-1] in "Zz":
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise _expected("DATETIME", value, str(exc)) from None
    else:
        raise _expected("DATETIME", value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _to_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    match = _TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise _expected("TIME", value)
    fraction = (match.group(2) or "").ljust(6, "0")[:6]
    try:
        clock = time.fromisoformat(match.group(1))
    except ValueError as exc:
        raise _expected("TIME", value, str(exc)) from None
    return clock.replace(microsecond=int(fraction)) if fraction else clock


def _to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise _expected("DURATION", value)


def _to_uri(value: Any) -> str:
    text = _text(value)
    if _URI_SCHEME.fullmatch(text):
        try:
            parts = urlsplit(text)
        except ValueError:
            parts = None
        if parts is not None and (parts.netloc or parts.path.strip("/")):
            return text
    raise _Invalid("Invalid URI format.")


def _to_email(value: Any) -> str:
    text = _text(value)
    # Kestra accepts an empty value, as a form sends for a field left blank.
    if text and _EMAIL.fullmatch(text) is None:
        raise _Invalid("The input must be a valid email")
    return text


# ---------------------------------------------------------------------------------------------
# SELECT, MULTISELECT and ARRAY
# ---------------------------------------------------------------------------------------------


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
            raise _Invalid(f"Cannot render 'expression'. Cause: {exc}") from None
        if isinstance(values, str):
            try:
                values = json.loads(values)
            except json.JSONDecodeError:
                values = None
        if not isinstance(values, list):
            raise _Invalid("Invalid expression result. Expected a list of strings")
    if values is None:
        return None
    if not isinstance(values, list | tuple):
        values = [values]
    return [_text(item.get("value")) if isinstance(item, Mapping) else _text(item) for item in values]


def _allows_custom(spec: InputSpec) -> bool:
    return bool(spec.props.get("allowCustomValue") or spec.props.get("allowInput"))


def _java_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _coerce_select(spec: InputSpec, value: Any, render: Renderer | None) -> str:
    text = _text(value)
    allowed = _allowed_values(spec, render)
    if allowed is not None and text not in allowed and not _allows_custom(spec):
        raise _Invalid(f"it must match the values `{_java_list(allowed)}`")
    return text


def _as_list(kind: str, value: Any, *, comma_separated: bool) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if not isinstance(value, str):
        raise _expected(kind, value)
    text = value.strip()
    if text.startswith("[") or not comma_separated:
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _expected(kind, value, str(exc)) from None
        if not isinstance(parsed, list):
            raise _expected(kind, value)
        return parsed
    return [part.strip() for part in text.split(",") if part.strip()] if text else []


def _item_type(spec: InputSpec, fallback: str | None) -> str | None:
    raw = spec.props.get("itemType")
    kind = str(raw).upper() if raw is not None else fallback
    if kind is not None and kind not in _SCALAR_TYPES:
        raise _Invalid(f"the item type `{raw}` is not supported, use a type other than ARRAY or MULTISELECT")
    return kind


def _coerce_items(items: list[Any], kind: str | None) -> list[Any]:
    if kind is None:
        return items
    result: list[Any] = []
    causes: list[str] = []
    for index, item in enumerate(items):
        try:
            if item is None:
                raise _expected(kind, item)
            result.append(_coerce_scalar(kind, item, {}))
        except _Invalid:
            causes.append(f"Unable to parse array element as `{kind}` on `{_echo(item)}` at index {index}")
    if causes:
        raise _Many(causes)
    return result


def _coerce_array(spec: InputSpec, value: Any) -> list[Any]:
    kind = _item_type(spec, None)
    return _coerce_items(_as_list("ARRAY", value, comma_separated=False), kind)


def _coerce_multiselect(spec: InputSpec, value: Any, render: Renderer | None) -> list[Any]:
    kind = _item_type(spec, "STRING")
    items = _coerce_items(_as_list("MULTISELECT", value, comma_separated=True), kind)
    allowed = _allowed_values(spec, render)
    if allowed is not None and not _allows_custom(spec):
        bad = [
            f"value `{_text(item)}` doesn't match the values `{_java_list(allowed)}`"
            for item in items
            if _text(item) not in allowed
        ]
        if bad:
            raise _Many(bad)
    return items


# ---------------------------------------------------------------------------------------------
# Text forms
# ---------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """A value as text, the way Kestra shows it (true, not True; JSON for mappings and lists)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, datetime | date | time | timedelta):
        return str(input_json_value(value))
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(input_json_value(value), separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _echo(value: Any) -> str:
    """A received value quoted in a message, shortened when it is long."""
    text = _text(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 1] + "…"


def _float_text(value: float) -> str:
    return repr(float(value))


def _instant_text(moment: datetime) -> str:
    """Java's Instant.toString: seconds always, a fraction only when there is one."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + _java_fraction(moment.microsecond) + "Z"


def _local_time_text(clock: time) -> str:
    """Java's LocalTime.toString: 01:00, 11:59:59, 11:59:59.500."""
    text = f"{clock.hour:02d}:{clock.minute:02d}"
    if clock.second or clock.microsecond:
        text += f":{clock.second:02d}"
    return text + _java_fraction(clock.microsecond)


def _java_fraction(microsecond: int) -> str:
    """Java prints a fraction of a second in groups of three digits, and nothing for none."""
    if not microsecond:
        return ""
    return f".{microsecond // 1000:03d}" if microsecond % 1000 == 0 else f".{microsecond:06d}"


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
