"""What the parts of the flow parser share: the error list, positions, and checks on value shapes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from ..durations import parse_duration
from ..model import Position
from .errors import FlowError
from .loader import SourceMap, YamlPath, format_path

# Kestra's patterns (TaskInterface, AbstractTrigger, Input, Output).
ID_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")
DOTTED_ID_PATTERN = re.compile(r"[a-zA-Z0-9][.a-zA-Z0-9_-]*")

_MISSING = object()


def is_expression(value: object) -> bool:
    """Whether a string holds a template expression, rendered at run time."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def suggestion(word: str, candidates: Iterable[str]) -> str:
    """`. Did you mean `x`?` when one candidate is close to `word`, else an empty string."""
    matches = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f". Did you mean `{matches[0]}`?" if matches else ""


def java_text(value: Any) -> str:
    """A scalar as Kestra (Java) prints it: booleans in lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Context:
    """Collects errors for one file and offers the checks every section needs."""

    def __init__(self, source: SourceMap, file: str | None) -> None:
        self.source = source
        self.file = file
        self.errors: list[FlowError] = []
        # What the engine accepts but does not do (a Docker runner, dependencies to install ...): the
        # flow is valid and runs, and `tiercel validate` says what differs from Kestra.
        self.warnings: list[FlowError] = []

    # -- reporting ---------------------------------------------------------------------------

    def error(self, path: YamlPath, message: str, *, key: bool = False) -> None:
        """Report a problem at `path`: its key when `key` (a bad name), else its value."""
        position = self.source.position(path, key=key)
        line, column = position if position else (None, None)
        self.errors.append(FlowError(self.file, line, column, format_path(path), message))

    def warn(self, path: YamlPath, message: str, *, key: bool = False) -> None:
        """Note something accepted but not honoured at `path`; the flow stays valid."""
        position = self.source.position(path, key=key)
        line, column = position if position else (None, None)
        self.warnings.append(FlowError(self.file, line, column, format_path(path), message))

    def position(self, path: YamlPath) -> Position | None:
        found = self.source.position(path)
        return Position(*found) if found else None

    def line_of(self, path: YamlPath) -> int | None:
        found = self.source.position(path)
        return found[0] if found else None

    # -- shapes ------------------------------------------------------------------------------

    def mapping(self, value: Any, path: YamlPath, what: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.error(path, f"{what} must be a mapping (`key: value` lines), not {type_name(value)}")
        return None

    def sequence(self, value: Any, path: YamlPath, what: str) -> list[Any] | None:
        """A list; null counts as an empty list."""
        if value is None:
            return []
        if isinstance(value, list):
            return value
        self.error(path, f"{what} must be a list (lines starting with `- `), not {type_name(value)}")
        return None

    def text(self, data: dict[str, Any], key: str, path: YamlPath, what: str) -> str | None:
        """An optional scalar as text (numbers and booleans are accepted, as Kestra does)."""
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return java_text(value)
        self.error((*path, key), f"{what} must be text, not {type_name(value)}")
        return None

    def boolean(self, data: dict[str, Any], key: str, path: YamlPath, what: str, default: bool) -> bool:
        value = data.get(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        self.error((*path, key), f"{what} must be `true` or `false`, not {type_name(value)} `{value}`")
        return default

    def required_text(self, data: dict[str, Any], key: str, path: YamlPath, missing: str) -> str | None:
        """A required scalar as text; `missing` is the message when it is absent."""
        if data.get(key) is None:
            self.error(path, missing)
            return None
        return self.text(data, key, path, f"`{key}`")

    def unknown_keys(
        self,
        data: dict[str, Any],
        allowed: Iterable[str],
        path: YamlPath,
        owner: str,
        hint: str = "",
    ) -> None:
        """Report every key of `data` that is not allowed, at the key, with a close match if any."""
        allowed = frozenset(allowed)
        for key in data:
            if key not in allowed:
                tail = suggestion(key, allowed) or (f": {hint}" if hint else "")
                self.error((*path, key), f"Unknown property `{key}` on {owner}{tail}", key=True)

    def check_id(self, value: str, path: YamlPath, what: str, pattern: re.Pattern[str]) -> None:
        if not pattern.fullmatch(value):
            self.error(
                path,
                f"{what} `{value}` is invalid: id must match the pattern `^{pattern.pattern}$` "
                f"(letters, digits, {'`.`, ' if '.' in pattern.pattern else ''}`_` and `-`, "
                "starting with a letter or digit)",
            )


def parse_duration_value(ctx: Context, value: Any, path: YamlPath, what: str) -> timedelta | None:
    """A duration written as ISO 8601 text (PT30S) or as a number of seconds."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            delta = timedelta(seconds=value)
        except (OverflowError, ValueError):  # infinite, NaN, or beyond a billion days
            ctx.error(path, f"{what} must be a duration such as PT30S or a number of seconds, not `{value}`")
            return None
    elif isinstance(value, str):
        try:
            delta = parse_duration(value)
        except ValueError as exc:
            ctx.error(path, f"{what}: {exc}")
            return None
    else:
        ctx.error(path, f"{what} must be an ISO 8601 duration such as PT30S, not {type_name(value)}")
        return None
    if delta < timedelta(0):
        ctx.error(path, f"{what} must not be negative (`{value}`)")
        return None
    return delta
