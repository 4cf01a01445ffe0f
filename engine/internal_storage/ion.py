"""Amazon Ion text, the format of Kestra's internal storage files: one value per line.

Kestra writes its item files with Jackson's Ion mapper: structs, lists, strings, numbers, timestamps
and, for java.time values other than instants and dates, strings annotated with the class name
(``LocalDateTime::"2024-01-02T10:00"``). :func:`loads` reads any Ion text value (the whole text
grammar: comments, long strings, symbols, s-expressions, blobs, clobs, typed nulls, annotations)
into plain Python values; :func:`dumps` writes one value the way Kestra's mapper does, so a file
written here reads back the same in Kestra. The binary encoding is not supported: Kestra never
writes it to storage.

Values read:
    struct -> dict (a repeated field keeps its last value), list and s-expression -> list,
    string and symbol -> str, int -> int, decimal -> Decimal, float -> float, bool -> bool,
    null and typed nulls -> None, blob and clob -> bytes, timestamp -> datetime (timezone-aware),
    or date for a day-precision timestamp without a time, as Kestra reads it; strings annotated
    ``LocalDateTime``, ``LocalDate``, ``LocalTime``, ``OffsetDateTime``, ``ZonedDateTime`` or
    ``OffsetTime`` -> the matching datetime, date or time. Other annotations are dropped.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import IO, Any, Final

__all__ = ["IonError", "dumps", "iter_lines", "loads", "loads_all"]


class IonError(ValueError):
    """The text is not valid Ion (or holds a value this reader cannot represent)."""


_IDENTIFIER: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_OPERATOR: Final = re.compile(r"[!#%&*+\-./;<=>?@^`|~]+")
_NUMERIC: Final = re.compile(r"[-+0-9A-Za-z_.:]+")
_KEYWORDS: Final = frozenset({"null", "true", "false", "nan"})
_NULL_TYPES: Final = frozenset(
    {"null", "bool", "int", "float", "decimal", "timestamp", "symbol", "string", "clob", "blob", "list",
     "sexp", "struct"}
)  # fmt: skip
_INT: Final = re.compile(r"-?(?:0|[1-9](?:_?[0-9])*)")
_HEX: Final = re.compile(r"-?0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*")
_BIN: Final = re.compile(r"-?0[bB][01](?:_?[01])*")
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
_JAVA_TIME: Final = {
    "LocalDateTime", "LocalDate", "LocalTime", "OffsetDateTime", "ZonedDateTime", "OffsetTime",
}  # fmt: skip


class _Reader:
    """A recursive-descent reader over one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- low level -----------------------------------------------------------------------------------

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
        self.skip_blanks()
        return self.pos >= len(self.text)

    # -- values --------------------------------------------------------------------------------------

    def value(self, in_sexp: bool = False) -> Any:
        annotations: list[str] = []
        while True:
            self.skip_blanks()
            start = self.pos
            symbol = self.symbol_token()
            if symbol is None:
                break
            self.skip_blanks()
            if self.text.startswith("::", self.pos):
                self.pos += 2
                annotations.append(symbol)
                continue
            self.pos = start
            break
        value = self.bare_value(in_sexp)
        if annotations and annotations[0] in _JAVA_TIME and isinstance(value, str):
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
        if char == '"':
            return self.quoted('"')
        if self.text.startswith("'''", self.pos):
            return self.long_strings()
        if char == "'":
            return self.quoted("'")
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
        signed_number = char in "-+" and self.text[self.pos + 1 : self.pos + 2].isalnum()
        if in_sexp and not signed_number and (operator := _OPERATOR.match(self.text, self.pos)):
            self.pos = operator.end()
            return operator.group()
        return self.number_or_timestamp()

    def word(self) -> Any:
        match = _IDENTIFIER.match(self.text, self.pos)
        assert match is not None
        word = match.group()
        self.pos = match.end()
        if word == "true":
            return True
        if word == "false":
            return False
        if word == "nan":
            return math.nan
        if word == "null":
            if self.peek() == ".":
                typed = _IDENTIFIER.match(self.text, self.pos + 1)
                if not typed or typed.group() not in _NULL_TYPES:
                    raise self.fail("Unknown typed null")
                self.pos = typed.end()
            return None
        return word

    def number_or_timestamp(self) -> Any:
        match = _NUMERIC.match(self.text, self.pos)
        if not match:
            raise self.fail(f"Unexpected character {self.peek()!r}")
        token = match.group()
        self.pos = match.end()
        if token in ("+inf", "-inf"):
            return math.inf if token[0] == "+" else -math.inf
        if _INT.fullmatch(token):
            return int(token.replace("_", ""))
        if _HEX.fullmatch(token):
            return int(token.replace("_", ""), 16)
        if _BIN.fullmatch(token):
            return int(token.replace("_", ""), 2)
        if _FLOAT.fullmatch(token):
            return float(token.replace("_", ""))
        if _DECIMAL.fullmatch(token):
            try:
                return Decimal(token.replace("_", "").replace("d", "e").replace("D", "e"))
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
            raise self.fail("A clob holds only 7-bit text") from None

    def skip_inline_blanks(self) -> None:
        while self.peek() and self.peek() in " \t\n\r\v\f":
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
        char = self.peek()
        if char == '"':
            return self.quoted('"')
        if self.text.startswith("'''", self.pos):
            return self.long_strings()
        if char == "'":
            return self.quoted("'")
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
    parts = match.groupdict()
    year = int(parts["year"])
    month = int(parts["month"] or 1)
    day = int(parts["day"] or 1)
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
        # Kestra's IonParser reads an instant at midnight UTC as a LocalDate.
        if zone is UTC and moment.time() == time(0):
            return moment.date()
        return moment
    except ValueError:
        raise IonError(f"Invalid timestamp {token!r}") from None


def _java_time(kind: str, text: str) -> Any:
    """A java.time value Kestra wrote as an annotated string, or the string when it does not parse."""
    try:
        if kind == "LocalDate":
            return date.fromisoformat(text)
        if kind in ("LocalTime", "OffsetTime"):
            return time.fromisoformat(text)
        # ZonedDateTime may end with the zone's name in brackets: 2024-01-02T10:00+01:00[Europe/Paris]
        return datetime.fromisoformat(text.split("[", 1)[0])
    except ValueError:
        return text


def loads_all(text: str) -> list[Any]:
    """Every top-level value of an Ion text (the ``$ion_1_0`` version marker is skipped).

    Raises:
        IonError: The text is not valid Ion.
    """
    reader = _Reader(text)
    values = []
    while not reader.at_end():
        value = reader.value()
        if value == "$ion_1_0" and reader.text[reader.pos - 8 : reader.pos] == "$ion_1_0":
            continue
        values.append(value)
    return values


def loads(text: str) -> Any:
    """The single value of an Ion text, such as one line of a Kestra item file.

    Raises:
        IonError: The text is not valid Ion, or holds no value or more than one.
    """
    values = loads_all(text)
    if len(values) != 1:
        raise IonError(f"Expected one Ion value, found {len(values)}")
    return values[0]


# -- writing --------------------------------------------------------------------------------------------


def _string(value: str, quote: str = '"') -> str:
    out = [quote]
    for char in value:
        code = ord(char)
        if char == quote or char == "\\":
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            named = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}.get(char)
            out.append(named or f"\\x{code:02x}")
        else:
            out.append(char)
    out.append(quote)
    return "".join(out)


def _field(name: str) -> str:
    if _IDENTIFIER.fullmatch(name) and name not in _KEYWORDS and not name.startswith("$"):
        return name
    return _string(name, "'")


def _float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}e{int(exponent)}"
    return text + "e0"


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise IonError(f"Ion decimals have no {value}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    if exponent > 0:
        text = f"{text}d{exponent}"
    else:
        whole = text[: len(text) + exponent] or "0"
        fraction = text[len(text) + exponent :].rjust(-exponent, "0")
        text = f"{whole}.{fraction}"
    return ("-" if sign else "") + text


def _java_iso(value: datetime | time) -> str:
    """Java's ISO format of a date-time or time: seconds always, the fraction without trailing zeros."""
    text = value.strftime("%H:%M:%S") if isinstance(value, time) else value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset()
    if offset is not None:
        if not offset:
            return text + "Z"
        minutes = int(offset.total_seconds()) // 60
        text += f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return text


def _datetime(value: datetime) -> str:
    """An instant (UTC) as Kestra's timestamp; a local or offset date-time as its annotated string."""
    offset = value.utcoffset()
    if offset is None:
        return f"LocalDateTime::{_string(_java_iso(value))}"
    if offset:
        return f"OffsetDateTime::{_string(_java_iso(value))}"
    return value.strftime("%Y-%m-%dT%H:%M:%S") + f".{value.microsecond // 1000:03d}Z"


def _write(value: Any, out: list[str]) -> None:
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
        out.append(_string(value))
    elif isinstance(value, datetime):
        out.append(_datetime(value))
    elif isinstance(value, date):
        out.append(value.isoformat() + "T")
    elif isinstance(value, time):
        kind = "LocalTime" if value.tzinfo is None else "OffsetTime"
        out.append(f"{kind}::{_string(_java_iso(value))}")
    elif isinstance(value, (bytes, bytearray)):
        out.append("{{" + base64.b64encode(bytes(value)).decode("ascii") + "}}")
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_field(str(key)) + ":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise IonError(f"Cannot write a {type(value).__name__} as Ion")


def dumps(value: Any) -> str:
    """One value as Ion text on one line, as Kestra's Jackson Ion mapper writes it.

    Floats carry an exponent (``1.5e0``), Decimals are Ion decimals, aware datetimes are timestamps
    at millisecond precision, dates are day timestamps (``2024-01-02T``), naive datetimes and times
    are annotated strings, bytes are blobs; mappings and lists nest.

    Raises:
        IonError: For a value of another type, or a Decimal NaN or infinity.
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def iter_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """The lines of a file as Java's ``readLine`` splits them (\\n, \\r\\n or \\r), without their ends.

    The file is read as it goes, never whole.
    """
    for raw in handle:
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:
            yield from line.split(b"\r")
        else:
            yield line
