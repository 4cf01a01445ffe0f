"""Values written as Ion text as Kestra's Ion mapper writes them (see the package's docstring)."""

from __future__ import annotations

import base64
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from .reading import IonError

_IDENTIFIER: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# -- writing --------------------------------------------------------------------------------------------

# ion-java's escapes for a quoted string or symbol (_Private_IonTextAppender); other characters below
# U+0020 and U+007F to U+009F become \xNN, and the rest is written as it is.
_WRITE_ESCAPES: Final = {0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
_SYMBOL_KEYWORD: Final = re.compile(r"false|null|nan|true|\$[0-9]+")


_NEEDS_ESCAPE: Final = {quote: re.compile(rf"[\x00-\x1f\x7f-\x9f{quote}\\]") for quote in "\"'"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if code in _WRITE_ESCAPES:
        return _WRITE_ESCAPES[code]
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"\\x{code:02x}"
    return "\\" + char  # the quote, or a backslash


def _quoted(text: str, quote: str) -> str:
    return quote + _NEEDS_ESCAPE[quote].sub(_escaped, text) + quote


@functools.lru_cache(maxsize=4096)  # field names repeat on every record of a file
def _symbol(name: str) -> str:
    """A field name as ion-java writes a symbol: bare when an identifier that is not a keyword."""
    if _IDENTIFIER.fullmatch(name) and not _SYMBOL_KEYWORD.fullmatch(name):
        return name
    return _quoted(name, "'")


def _float(value: float) -> str:
    """ion-java's printFloat: Java's ``Double.toString``, its ``.0`` replaced by ``e0``, else ``e0`` added
    when it has no exponent."""
    if value == 0:
        return "-0e0" if math.copysign(1.0, value) < 0 else "0e0"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    if 1e-3 <= abs(value) < 1e7:  # Java's plain form, which repr shares in this range
        text = repr(value)
        return text[:-2] + "e0" if text.endswith(".0") else text + "e0"
    mantissa, _, power = f"{Decimal(repr(value)).normalize():e}".partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}E{int(power)}"


def _decimal(value: Decimal) -> str:
    """ion-java's printDecimal of a Java BigDecimal (which has no negative zero)."""
    if not value.is_finite():
        raise IonError(f"Ion has no decimal {value}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    unscaled = str(int("".join(map(str, digits)) or "0"))
    prefix = "-" if sign and value else ""
    if exponent >= 0:
        return f"{prefix}{unscaled}." if exponent == 0 else f"{prefix}{unscaled}d{exponent}"
    scale = -exponent
    whole = len(unscaled) - scale
    if whole > 0:
        return f"{prefix}{unscaled[:whole]}.{unscaled[whole:]}"
    if whole - 1 >= -6:
        return f"{prefix}0.{'0' * -whole}{unscaled}"
    return f"{prefix}{unscaled}d-{scale}"


def java_iso(value: datetime | time) -> str:
    """Java's ISO_LOCAL/ISO_OFFSET format: seconds always, the fraction without trailing zeros."""
    text = f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if isinstance(value, datetime):
        text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{text}"
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset()
    if offset is not None:
        if not offset:
            return text + "Z"
        seconds = int(offset.total_seconds())
        hours, rest = divmod(abs(seconds), 3600)
        text += f"{'-' if seconds < 0 else '+'}{hours:02d}:{rest // 60:02d}"
        if rest % 60:
            text += f":{rest % 60:02d}"
    return text


def _datetime(value: datetime) -> str:
    """An instant (UTC) as Kestra's IonGenerator writes it, a millisecond timestamp; a zoned or local
    date-time as Kestra's IonModule writes it, a string annotated with its class."""
    if value.tzinfo is UTC:  # the common case first: an instant
        return value.isoformat(timespec="milliseconds")[:-6] + "Z"
    offset = value.utcoffset()
    if offset is None:
        return f'LocalDateTime::"{java_iso(value)}"'
    if isinstance(value.tzinfo, ZoneInfo):
        return f'ZonedDateTime::"{java_iso(value)}[{value.tzinfo.key}]"'
    if offset:
        return f'ZonedDateTime::"{java_iso(value)}"'
    # isoformat is C: "YYYY-MM-DDTHH:MM:SS.mmm+00:00", its offset written as Z
    return value.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


# The writers of the commonest exact types, looked up before the isinstance chain (a file of records
# writes millions of them).
_PLAIN: Final[dict[type, Callable[[Any], str]]] = {
    str: lambda value: _quoted(value, '"'),
    int: str,
    float: lambda value: _float(value),
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
}


def _write(value: Any, out: list[str], default: Callable[[Any], Any] | None) -> None:
    plain = _PLAIN.get(type(value))
    if plain is not None:
        out.append(plain(value))
    elif type(value) is dict:
        out.append("{")
        first = True
        for key, item in value.items():
            out.append(("" if first else ",") + _symbol(str(key)) + ":")
            first = False
            _write(item, out, default)
        out.append("}")
    elif value is None:
        out.append("null")
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, Decimal):
        out.append(_decimal(value))
    elif isinstance(value, str):
        out.append(_quoted(value, '"'))
    elif isinstance(value, datetime):
        out.append(_datetime(value))
    elif isinstance(value, date):
        out.append(f"{value.year:04d}-{value.month:02d}-{value.day:02d}")
    elif isinstance(value, time):
        out.append(f'{"LocalTime" if value.utcoffset() is None else "OffsetTime"}::"{java_iso(value)}"')
    elif isinstance(value, bytes | bytearray):
        out.append("{{" + base64.b64encode(bytes(value)).decode("ascii") + "}}")
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            out.append(("," if index else "") + _symbol(str(key)) + ":")
            _write(item, out, default)
        out.append("}")
    elif isinstance(value, list | tuple | set | frozenset):
        out.append("[")
        for index, item in enumerate(value):
            out.append("," if index else "")
            _write(item, out, default)
        out.append("]")
    elif default is not None:
        _write(default(value), out, None)
    else:
        raise IonError(f"Cannot write a {type(value).__name__} as Ion")


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """One value as compact Ion text on one line (``null`` for None), as Kestra's Ion mapper writes it;
    ``default`` is called with a value of another type, and what it returns is written instead.

    Raises:
        IonError: For a value of another type without ``default``, or a Decimal NaN or infinity.
    """
    out: list[str] = []
    _write(value, out, default)
    return "".join(out)


def record_writer(names: Sequence[str]) -> Callable[[Sequence[Any]], str]:
    """A writer of records of these fields, in this order: ``write(values)`` is ``dumps(dict(zip(names,
    values)))`` with the field names written once (a file of rows writes millions of records). The names
    must not repeat."""
    if len(set(names)) != len(names):
        raise IonError("A record's field names must not repeat")
    prefixes = [("," if index else "{") + _symbol(name) + ":" for index, name in enumerate(names)]
    plain_of = _PLAIN.get

    def write(values: Sequence[Any]) -> str:
        out: list[str] = []
        for prefix, value in zip(prefixes, values, strict=True):
            out.append(prefix)
            plain = plain_of(type(value))
            if plain is not None:
                out.append(plain(value))
            else:
                _write(value, out, None)
        out.append("}")
        return "".join(out) if prefixes else "{}"

    return write
