"""JSON as the store writes it: compact, UTF-8, and able to hold what task outputs may contain."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

from ..model import iso


def _json_default(value: Any) -> Any:
    """JSON for the values task outputs may hold beyond plain JSON."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default).encode


def loads(text: str) -> Any:
    return json.loads(text)
