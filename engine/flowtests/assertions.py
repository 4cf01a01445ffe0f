"""Whether an assertion's rendered value satisfies its operators.

The value is the text the expression renders to, as Kestra compares it. Numbers compare as numbers
when both sides read as numbers, else as text; a list or a mapping expected compares with the value
read as JSON. A value is null when the expression names nothing that exists, or renders empty.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from typing import Any

from ..parser.context import java_text

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "greaterThan": operator.gt,
    "greaterThanOrEqualTo": operator.ge,
    "lessThan": operator.lt,
    "lessThanOrEqualTo": operator.le,
}


def failed_checks(actual: str | None, checks: dict[str, Any]) -> list[str]:
    """What the value fails, one line per operator (`actual` is None for a null value)."""
    return [
        f"{name} {_shown(expected)}"
        for name, expected in checks.items()
        if not _holds(name, actual, expected)
    ]


def _holds(name: str, actual: str | None, expected: Any) -> bool:
    if name in ("isNull", "isNotNull"):
        wanted_null = (name == "isNull") == (expected is not False)
        return (actual is None or actual == "") == wanted_null
    if actual is None:
        return False
    if name == "equalTo":
        return _equal(actual, expected)
    if name == "notEqualTo":
        return not _equal(actual, expected)
    if name == "contains":
        return java_text(expected) in actual
    if name == "startsWith":
        return actual.startswith(java_text(expected))
    if name == "endsWith":
        return actual.endswith(java_text(expected))
    if name in ("in", "notIn"):
        found = any(_equal(actual, item) for item in (expected if isinstance(expected, list) else [expected]))
        return found == (name == "in")
    compare = _ORDER[name]
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return compare(left, right)
    return compare(actual, java_text(expected))


def _equal(actual: str, expected: Any) -> bool:
    if isinstance(expected, bool):
        return actual.strip().lower() == str(expected).lower()
    if isinstance(expected, int | float):
        number = _number(actual)
        return number is not None and number == expected
    if isinstance(expected, list | dict):
        try:
            return bool(json.loads(actual) == expected)
        except ValueError:
            return actual == java_text(expected)
    return actual == java_text(expected)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _shown(expected: Any) -> str:
    if isinstance(expected, list | dict):
        return json.dumps(expected, ensure_ascii=False)
    return repr(java_text(expected)) if isinstance(expected, str) else java_text(expected)
