"""ISO 8601 durations as Kestra writes them (PT1S, PT0.250S, P1DT2H, PT15m)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"^(?P<sign>[-+])?P(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<hours>[-+]?\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>[-+]?\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>[-+]?\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration; raise ValueError with a readable message otherwise."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or text.strip().upper().endswith("T") or text.strip().upper() in ("P", "-P", "+P"):
        raise ValueError(f"'{text}' is not an ISO 8601 duration (examples: PT30S, PT1.5S, PT5M, P1D)")
    parts = {
        name: float(value.replace(",", "."))
        for name, value in match.groupdict().items()
        if value and name != "sign"
    }
    delta = timedelta(**parts)
    return -delta if match.group("sign") == "-" else delta


def format_duration(delta: timedelta) -> str:
    """The Java form of a duration: PT1H2M3.5S."""
    total = delta.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{int(hours)}H"
    if minutes:
        text += f"{int(minutes)}M"
    if seconds or text == "PT":
        text += f"{seconds:.3f}".rstrip("0").rstrip(".") + "S"
    return sign + text
