"""Coerce one value of a scalar input type, and check it against that type's settings.

Each type has a parser (`_to_int`, `_to_date` ...) that accepts text or an already typed value, and
the settings Kestra knows for it: `validator`, `minLength` and `maxLength` for STRING; `min` and
`max` for INT, FLOAT and DURATION; `after` and `before` for DATE, DATETIME and TIME. A setting is
parsed like a value of its input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import yaml

from ..durations import format_duration, parse_duration
from .causes import Invalid, expected
from .text_forms import as_text, echo, float_text, instant_text, local_time_text

# Kestra's type names; BOOL and ENUM are Kestra's deprecated aliases of BOOLEAN and SELECT.
_TEXT_TYPES = frozenset({"STRING", "SELECT", "ENUM", "URI", "EMAIL", "FILE", "SECRET"})
_TYPED_TYPES = frozenset(
    {"INT", "FLOAT", "BOOLEAN", "BOOL", "JSON", "YAML", "DATE", "DATETIME", "TIME", "DURATION"}
)
SCALAR_TYPES = _TEXT_TYPES | _TYPED_TYPES

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
_MAX_YAML_ALIASES = 100


def coerce_scalar(kind: str, value: Any, props: Mapping[str, Any]) -> Any:
    """Parse `value` as the scalar type `kind` (upper case) and check it against `props`.

    Raises:
        Invalid: the value does not parse, breaks a setting, or a setting itself is not valid.
    """
    if kind == "STRING":
        text = as_text(value)
        _check_string(text, props)
        return text
    if kind in ("SELECT", "ENUM"):
        return as_text(value)
    if kind in ("FILE", "SECRET"):
        return value if isinstance(value, str) else as_text(value)
    if kind == "INT":
        number = _to_int(value)
        _check_range(number, props, _to_int, str, capital=False)
        return number
    if kind == "FLOAT":
        real = _to_float(value)
        _check_range(real, props, _to_float, float_text, capital=False)
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
        _check_bounds(moment, props, _to_datetime, instant_text)
        return moment
    if kind == "TIME":
        clock = _to_time(value)
        _check_bounds(clock, props, _to_time, local_time_text)
        return clock
    if kind == "DURATION":
        delta = _to_duration(value)
        _check_range(delta, props, _to_duration, format_duration, capital=True)
        return delta
    if kind == "URI":
        return _to_uri(value)
    if kind == "EMAIL":
        return _to_email(value)
    raise Invalid(f"unsupported input type `{kind}`")


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def _check_string(text: str, props: Mapping[str, Any]) -> None:
    validator = props.get("validator")
    if validator is not None:
        pattern = _compile(str(validator))
        if pattern.fullmatch(text) is None:
            raise Invalid(f"it must match the pattern `{validator}`")
    min_length = _setting(props, "minLength", _to_int)
    if min_length is not None and len(text) < min_length:
        raise Invalid(f"it must be at least `{min_length}` characters long")
    max_length = _setting(props, "maxLength", _to_int)
    if max_length is not None and len(text) > max_length:
        raise Invalid(f"it must be at most `{max_length}` characters long")


@lru_cache(maxsize=256)
def _compile(validator: str) -> re.Pattern[str]:
    try:
        return re.compile(validator)
    except re.error as exc:
        raise Invalid(
            f"the validator pattern `{validator}` is not a valid regular expression: {exc}"
        ) from None


def _setting(props: Mapping[str, Any], name: str, parse: Callable[[Any], Any]) -> Any:
    """A type-specific setting parsed like a value of the input, or None when it is not set."""
    raw = props.get(name)
    if raw is None:
        return None
    try:
        return parse(raw)
    except Invalid:
        raise Invalid(f"the `{name}` setting `{echo(raw)}` is not valid for this input type") from None


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
        raise Invalid(f"{lead} must be more than `{show(low)}`")
    high = _setting(props, "max", parse)
    if high is not None and value > high:
        raise Invalid(f"{lead} must be less than `{show(high)}`")


def _check_bounds(
    value: Any, props: Mapping[str, Any], parse: Callable[[Any], Any], show: Callable[[Any], str]
) -> None:
    after = _setting(props, "after", parse)
    if after is not None and value < after:
        raise Invalid(f"it must be after `{show(after)}`")
    before = _setting(props, "before", parse)
    if before is not None and value > before:
        raise Invalid(f"it must be before `{show(before)}`")


# ---------------------------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------------------------


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise expected("INT", value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value.strip())
    raise expected("INT", value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise expected("FLOAT", value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        return float(value.strip())
    raise expected("FLOAT", value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return text == "true"
    raise expected("BOOLEAN", value)


def _to_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise expected("JSON", value, str(exc)) from None


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
        raise expected("YAML", value, f"{exc.problem or exc.context}{where}") from None
    except yaml.YAMLError as exc:
        raise expected("YAML", value, str(exc)) from None


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise expected("DATE", value)
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise expected("DATE", value, str(exc)) from None
    raise expected("DATE", value)


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
            raise expected("DATETIME", value, str(exc)) from None
    else:
        raise expected("DATETIME", value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _to_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    match = _TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise expected("TIME", value)
    fraction = (match.group(2) or "").ljust(6, "0")[:6]
    try:
        clock = time.fromisoformat(match.group(1))
    except ValueError as exc:
        raise expected("TIME", value, str(exc)) from None
    return clock.replace(microsecond=int(fraction)) if fraction else clock


def _to_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    raise expected("DURATION", value)


def _to_uri(value: Any) -> str:
    text = as_text(value)
    if _URI_SCHEME.fullmatch(text):
        try:
            parts = urlsplit(text)
        except ValueError:
            parts = None
        if parts is not None and (parts.netloc or parts.path.strip("/")):
            return text
    raise Invalid("Invalid URI format.")


def _to_email(value: Any) -> str:
    text = as_text(value)
    # Kestra accepts an empty value, as a form sends for a field left blank.
    if text and _EMAIL.fullmatch(text) is None:
        raise Invalid("The input must be a valid email")
    return text
