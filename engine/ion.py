"""Amazon Ion text as Kestra reads and writes it: its internal storage files, ``toIon`` and ``fromIon()``.

Kestra goes through one mapper for all three (``JacksonMapper.ofIon()``: Jackson's Ion module over
ion-java, with Kestra's ``IonModule``, ``IonParser`` and ``IonGenerator``), so one reader and one writer
serve them. :func:`dumps` writes a value compactly on one line; :func:`loads` reads the first value of a
text (a line of an item file, the text given to ``fromIon``), :func:`loads_all` every top-level value.
The reader takes the whole text grammar (comments, long strings, symbols, s-expressions, blobs, clobs,
typed nulls, annotations, ``$ion_1_0``); Kestra never writes the binary encoding.

Read, as Kestra's ``IonParser`` gives them: struct -> dict (a repeated field keeps its last value), list
and s-expression -> list, string and symbol -> str, int, decimal -> Decimal, float, bool, null and typed
nulls -> None, blob and clob -> bytes; a timestamp at midnight UTC (or of day precision) -> date, another
UTC or unknown-offset one -> datetime in UTC (an Instant), one at another offset -> datetime at that
offset (a ZonedDateTime); a string annotated ``Instant``, ``LocalDateTime``, ``LocalDate``, ``LocalTime``,
``OffsetDateTime``, ``ZonedDateTime`` or ``OffsetTime`` (first annotation) -> that datetime, date or time.
Other annotations are dropped (Kestra hands such a value on as an ion-java ``IonValue``).

Written, as Kestra's mapper writes them: floats as ion-java prints them (``1.5e0``, ``1.0E10``), Decimal
as an Ion decimal (``2.``, ``1d3``, ``1d-9``), mapping keys as symbols quoted only when they must be,
tuples and sets as lists, bytes as a blob; a datetime in UTC as a millisecond timestamp (an Instant),
another aware one as ``ZonedDateTime::"..."``, a naive one as ``LocalDateTime::"..."``, a date as a day
timestamp (``2008-12-25``), a time as ``LocalTime::"..."`` or ``OffsetTime::"..."``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import IO, Any, Final
from zoneinfo import ZoneInfo

__all__ = ["IonError", "dumps", "iter_lines", "java_iso", "loads", "loads_all"]


class IonError(ValueError):
    """Text that is not valid Ion, or a value Ion (or this module) cannot hold."""


_IDENTIFIER: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_OPERATOR: Final = re.compile(r"[!#%&*+\-./;<=>?@^`|~]+")
_SIGNED_NUMBER: Final = re.compile(r"-[0-9]|[-+]inf(?![A-Za-z0-9_$])")
_NUMERIC: Final = re.compile(r"[-+0-9A-Za-z_.:]+")
_KEYWORDS: Final = frozenset({"null", "true", "false", "nan"})
_NULL_TYPES: Final = frozenset({"null", "bool", "int", "float", "decimal", "timestamp", "symbol", "string",
                                "clob", "blob", "list", "sexp", "struct"})  # fmt: skip
_INT: Final = re.compile(r"-?(?:0|[1-9](?:_?[0-9])*)")
_RADIX: Final = re.compile(r"-?0(?:[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*|[bB][01](?:_?[01])*)")
_DIGITS: Final = r"[0-9](?:_?[0-9])*"
_DECIMAL: Final = re.compile(rf"-?(?:0|[1-9](?:_?[0-9])*)(?:\.(?:{_DIGITS})?)?(?:[dD][-+]?[0-9]+)?")
_FLOAT: Final = re.compile(rf"-?(?:0|[1-9](?:_?[0-9])*)(?:\.(?:{_DIGITS})?)?[eE][-+]?[0-9]+")
_TIMESTAMP: Final = re.compile(
    r"(?P<year>\d{4})(?:T|-(?P<month>\d{2})(?:T|-(?P<day>\d{2})(?:T(?:(?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?(?P<offset>Z|[-+]\d{2}:\d{2}))?)?))"
)
_ESCAPES: Final = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "v": "\v",
    '"': '"', "'": "'", "?": "?", "\\": "\\", "/": "/",
}  # fmt: skip
_JAVA_TIME: Final = frozenset(
    {"Instant", "LocalDateTime", "LocalDate", "LocalTime", "OffsetDateTime", "ZonedDateTime", "OffsetTime"}
)
_VERSION_MARKER: Final = re.compile(r"\$ion_1_0(?![A-Za-z0-9_$:])")


class _Reader:
    """A recursive-descent reader over one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> IonError:
        return IonError(f"{message} at offset {self.pos}")

    def skip_blanks(self) -> None:
        text, end = self.text, len(self.text)
        while self.pos < end:
            char = text[self.pos]
            if char in " \t\n\r\v\f":
                self.pos += 1
            elif text.startswith("//", self.pos):
                newline = text.find("\n", self.pos)
                self.pos = end if newline < 0 else newline + 1
            elif text.startswith("/*", self.pos):
                close = text.find("*/", self.pos + 2)
                if close < 0:
                    raise self.fail("Unterminated comment")
                self.pos = close + 2
            else:
                return

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        self.skip_blanks()
        if self.peek() != char:
            raise self.fail(f"Expected '{char}'")
        self.pos += 1

    def at_end(self) -> bool:
        """Whether only blanks and version markers are left (the markers are skipped)."""
        while True:
            self.skip_blanks()
            marker = _VERSION_MARKER.match(self.text, self.pos)
            if marker is None:
                return self.pos >= len(self.text)
            self.pos = marker.end()

    def value(self, in_sexp: bool = False) -> Any:
        annotations: list[str] = []
        while True:
            self.skip_blanks()
            start = self.pos
            symbol = self.symbol_token()
            self.skip_blanks()
            if symbol is None or not self.text.startswith("::", self.pos):
                self.pos = start
                break
            self.pos += 2
            annotations.append(symbol)
        value = self.bare_value(in_sexp)
        if annotations and annotations[0] in _JAVA_TIME:
            return _java_time(annotations[0], value)
        return value

    def symbol_token(self) -> str | None:
        """An identifier or quoted symbol at the position (not a keyword), consumed; else None."""
        char = self.peek()
        if char == "'" and not self.text.startswith("'''", self.pos):
            return self.quoted("'")
        match = _IDENTIFIER.match(self.text, self.pos)
        if match and match.group() not in _KEYWORDS:
            self.pos = match.end()
            return match.group()
        return None

    def bare_value(self, in_sexp: bool) -> Any:
        self.skip_blanks()
        char = self.peek()
        if not char:
            raise self.fail("Expected a value")
        if (text := self.quoted_text()) is not None:
            return text
        if self.text.startswith("{{", self.pos):
            return self.lob()
        if char == "{":
            return self.struct()
        if char == "[":
            return self.sequence("]")
        if char == "(":
            return self.sequence(")")
        if char.isalpha() or char in "_$":
            return self.word()
        if in_sexp and not _SIGNED_NUMBER.match(self.text, self.pos):
            operator = _OPERATOR.match(self.text, self.pos)
            if operator:
                self.pos = operator.end()
                return operator.group()
        return self.number_or_timestamp()

    def quoted_text(self) -> str | None:
        """A "string", '''long strings''' or a 'symbol' at the position, read; else None."""
        if self.peek() == '"':
            return self.quoted('"')
        if self.text.startswith("'''", self.pos):
            return self.long_strings()
        return self.quoted("'") if self.peek() == "'" else None

    def word(self) -> Any:
        match = _IDENTIFIER.match(self.text, self.pos)
        assert match is not None
        word = match.group()
        self.pos = match.end()
        if word == "null":
            if self.peek() == ".":
                typed = _IDENTIFIER.match(self.text, self.pos + 1)
                if not typed or typed.group() not in _NULL_TYPES:
                    raise self.fail("Unknown typed null")
                self.pos = typed.end()
            return None
        return {"true": True, "false": False, "nan": math.nan}.get(word, word)

    def number_or_timestamp(self) -> Any:
        match = _NUMERIC.match(self.text, self.pos)
        if not match:
            raise self.fail(f"Unexpected character {self.peek()!r}")
        token = match.group()
        self.pos = match.end()
        if token in ("+inf", "-inf"):
            return math.inf if token[0] == "+" else -math.inf
        plain = token.replace("_", "")
        if _INT.fullmatch(token):
            return int(plain)
        if _RADIX.fullmatch(token):
            return int(plain, 0) if plain[0] != "-" else -int(plain[1:], 0)
        if _FLOAT.fullmatch(token):
            return float(plain)
        if _DECIMAL.fullmatch(token):
            try:
                return Decimal(plain.replace("d", "e").replace("D", "e"))
            except InvalidOperation:
                raise self.fail(f"Invalid decimal {token!r}") from None
        if stamp := _TIMESTAMP.fullmatch(token):
            return _timestamp(stamp, token)
        raise self.fail(f"Invalid value {token!r}")

    def quoted(self, quote: str) -> str:
        """A "string" or 'symbol', the position on its opening quote."""
        text, out = self.text, []
        self.pos += 1
        while True:
            end = self.pos
            while end < len(text) and text[end] not in (quote, "\\", "\n"):
                end += 1
            out.append(text[self.pos : end])
            self.pos = end
            if end >= len(text) or text[end] == "\n":
                raise self.fail("Unterminated string")
            if text[end] == quote:
                self.pos = end + 1
                return "".join(out)
            out.append(self.escape(long=False))

    def long_strings(self) -> str:
        """One or more '''long''' strings, concatenated."""
        parts: list[str] = []
        while True:
            self.pos += 3
            text, out = self.text, []
            while True:
                end = self.pos
                while end < len(text) and text[end] != "\\" and not text.startswith("'''", end):
                    end += 1
                out.append(text[self.pos : end])
                self.pos = end
                if end >= len(text):
                    raise self.fail("Unterminated long string")
                if text[end] == "\\":
                    out.append(self.escape(long=True))
                    continue
                self.pos = end + 3
                break
            parts.append("".join(out))
            save = self.pos
            self.skip_blanks()
            if not self.text.startswith("'''", self.pos):
                self.pos = save
                return "".join(parts)

    def escape(self, long: bool) -> str:
        text = self.text
        self.pos += 1
        char = text[self.pos : self.pos + 1]
        if not char:
            raise self.fail("Unterminated escape")
        self.pos += 1
        if char in _ESCAPES:
            return _ESCAPES[char]
        if char == "\n" or (char == "\r" and long):
            if char == "\r" and self.peek() == "\n":
                self.pos += 1
            return ""
        width = {"x": 2, "u": 4, "U": 8}.get(char)
        if width is None:
            raise self.fail(f"Invalid escape '\\{char}'")
        digits = text[self.pos : self.pos + width]
        if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise self.fail(f"Invalid escape '\\{char}{digits}'")
        self.pos += width
        code = int(digits, 16)
        if char == "u" and 0xD800 <= code < 0xDC00 and text.startswith("\\u", self.pos):
            low = int(text[self.pos + 2 : self.pos + 6], 16)
            if 0xDC00 <= low < 0xE000:
                self.pos += 6
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        try:
            return chr(code)
        except ValueError:
            raise self.fail(f"Invalid code point {code:#x}") from None

    def lob(self) -> bytes:
        self.pos += 2
        self.skip_inline_blanks()
        if self.peek() == '"':
            data = self.quoted('"')
        elif self.text.startswith("'''", self.pos):
            data = self.long_strings()
        else:
            close = self.text.find("}}", self.pos)
            if close < 0:
                raise self.fail("Unterminated blob")
            encoded = re.sub(r"\s+", "", self.text[self.pos : close])
            self.pos = close
            try:
                data_bytes = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise self.fail("Invalid base64 in blob") from None
            self.pos += 2
            return data_bytes
        self.skip_inline_blanks()
        if not self.text.startswith("}}", self.pos):
            raise self.fail("Expected '}}'")
        self.pos += 2
        try:
            return data.encode("latin-1")
        except UnicodeEncodeError:
            raise self.fail("A clob holds only 8-bit characters") from None

    def skip_inline_blanks(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\n\r\v\f":
            self.pos += 1

    def struct(self) -> dict[str, Any]:
        self.pos += 1
        fields: dict[str, Any] = {}
        while True:
            self.skip_blanks()
            if self.peek() == "}":
                self.pos += 1
                return fields
            name = self.field_name()
            self.expect(":")
            fields[name] = self.value()
            self.skip_blanks()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.fail("Expected ',' or '}' in a struct")

    def field_name(self) -> str:
        if (name := self.quoted_text()) is not None:
            return name
        match = _IDENTIFIER.match(self.text, self.pos)
        if not match:
            raise self.fail("Expected a field name")
        self.pos = match.end()
        return match.group()

    def sequence(self, closer: str) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        in_sexp = closer == ")"
        while True:
            self.skip_blanks()
            if self.peek() == closer:
                self.pos += 1
                return items
            items.append(self.value(in_sexp))
            self.skip_blanks()
            if in_sexp:
                continue
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != closer:
                raise self.fail(f"Expected ',' or '{closer}' in a list")


def _timestamp(match: re.Match[str], token: str) -> date | datetime:
    """As Kestra's IonParser: UTC or unknown offset, an Instant (a LocalDate at midnight); else zoned."""
    parts = match.groupdict()
    year, month, day = int(parts["year"]), int(parts["month"] or 1), int(parts["day"] or 1)
    try:
        if parts["hour"] is None:
            return date(year, month, day)
        offset = parts["offset"]
        if offset in ("Z", "-00:00", "+00:00"):
            zone: timezone = UTC
        else:
            sign = -1 if offset[0] == "-" else 1
            zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        fraction = (parts["fraction"] or "")[:6].ljust(6, "0")
        moment = datetime(
            year, month, day, int(parts["hour"]), int(parts["minute"]), int(parts["second"] or 0),
            int(fraction), tzinfo=zone,
        )  # fmt: skip
    except ValueError:
        raise IonError(f"Invalid timestamp {token!r}") from None
    if zone is UTC and moment.time() == time(0):
        return moment.date()
    return moment


def _java_time(kind: str, value: Any) -> Any:
    """The java.time value Kestra wrote as a string annotated with its class, as its IonParser parses it."""
    if not isinstance(value, str):
        raise IonError(f"A {kind} annotation on a value that is not text")
    try:
        if kind in ("LocalDate", "LocalTime", "OffsetTime"):
            return (date if kind == "LocalDate" else time).fromisoformat(value)
        # A ZonedDateTime may end with its zone's name: 2024-01-02T10:00+01:00[Europe/Paris]
        text, _, zone = value.partition("[")
        moment = datetime.fromisoformat(text)
        if zone and moment.tzinfo is not None:
            moment = moment.astimezone(ZoneInfo(zone.rstrip("]")))
    except (ValueError, KeyError):
        raise IonError(f"Invalid {kind} {value!r}") from None
    if (kind == "LocalDateTime") != (moment.tzinfo is None):
        raise IonError(f"Invalid {kind} {value!r}")
    return moment


def loads_all(text: str) -> list[Any]:
    """Every top-level value of an Ion text, as Kestra's ``FileSerde.readAll`` streams them.

    Raises:
        IonError: The text is not valid Ion.
    """
    reader = _Reader(text)
    values = []
    while not reader.at_end():
        values.append(reader.value())
    return values


def loads(text: str) -> Any:
    """The first value of an Ion text (a line of an item file, ``fromIon``'s text); what follows it is left
    unread, as Jackson's ``readValue`` leaves it.

    Raises:
        IonError: The text holds no value, or its first value is not valid Ion.
    """
    reader = _Reader(text)
    if reader.at_end():
        raise IonError("Expected an Ion value, found none")
    return reader.value()


# -- writing --------------------------------------------------------------------------------------------

# ion-java's escapes for a quoted string or symbol (_Private_IonTextAppender); other characters below
# U+0020 and U+007F to U+009F become \xNN, and the rest is written as it is.
_WRITE_ESCAPES: Final = {0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
_SYMBOL_KEYWORD: Final = re.compile(r"false|null|nan|true|\$[0-9]+")


def _quoted(text: str, quote: str) -> str:
    out = [quote]
    for char in text:
        code = ord(char)
        if char == quote or char == "\\":
            out.append("\\" + char)
        elif code in _WRITE_ESCAPES:
            out.append(_WRITE_ESCAPES[code])
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    out.append(quote)
    return "".join(out)


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
    offset = value.utcoffset()
    if offset is None:
        return f'LocalDateTime::"{java_iso(value)}"'
    if isinstance(value.tzinfo, ZoneInfo):
        return f'ZonedDateTime::"{java_iso(value)}[{value.tzinfo.key}]"'
    if offset:
        return f'ZonedDateTime::"{java_iso(value)}"'
    moment = value.astimezone(UTC).replace(tzinfo=None)
    return f"{java_iso(moment.replace(microsecond=0))}.{moment.microsecond // 1000:03d}Z"


def _write(value: Any, out: list[str], default: Callable[[Any], Any] | None) -> None:
    if value is None:
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


def iter_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of a file as Java's ``readLine`` splits them (\\n, \\r\\n or \\r), without their ends,
    read as it goes, never whole."""
    for raw in handle:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:
            yield from line.split(b"\r")
        else:
            yield line
