"""Ion text read as Kestra's IonParser gives its values (see the package's docstring)."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import IO, Any, Final
from zoneinfo import ZoneInfo


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
        try:
            return _scalar(token)
        except IonError as error:
            raise self.fail(str(error)) from None

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


def _scalar(token: str) -> Any:
    """A number or a timestamp, from its token.

    Raises:
        IonError: The token is neither.
    """
    if _INT.fullmatch(token):
        return int(token.replace("_", ""))
    if token in ("+inf", "-inf"):
        return math.inf if token[0] == "+" else -math.inf
    plain = token.replace("_", "")
    if _RADIX.fullmatch(token):
        return int(plain, 0) if plain[0] != "-" else -int(plain[1:], 0)
    if _FLOAT.fullmatch(token):
        return float(plain)
    if _DECIMAL.fullmatch(token):
        try:
            return Decimal(plain.replace("d", "e").replace("D", "e"))
        except InvalidOperation:
            raise IonError(f"Invalid decimal {token!r}") from None
    if stamp := _TIMESTAMP.fullmatch(token):
        return _timestamp(stamp, token)
    raise IonError(f"Invalid value {token!r}")


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


# -- the common case, fast ---------------------------------------------------------------------------
# What Kestra's writer writes (structs, lists, strings, symbols, numbers, timestamps, annotated strings,
# blobs), read a field or a scalar at a time with regular expressions. Anything else (comments, long
# strings, s-expressions, clobs, typed nulls, a version marker) or any error goes to the full reader,
# which reads it or says what is wrong and where.
_QUOTED = r"(?:\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'(?!'))"
# A field's name and its colon.
_FIELD: Final = re.compile(rf"\s*(?:([A-Za-z_][A-Za-z0-9_$]*)|({_QUOTED}))\s*:(?!:)")
# A scalar with the separator after it: a string, a number or timestamp, or a keyword.
_SCALAR: Final = re.compile(
    r"""\s*(?:("(?:[^"\\\n]|\\.)*")|('(?:[^'\\\n]|\\.)*'(?!'))|([-+0-9][-+0-9A-Za-z_.:]*?)"""
    r"""|([A-Za-z_][A-Za-z0-9_$]*))\s*([,}\]])"""
)
_OPEN: Final = re.compile(r"\s*([\[{])")
_CLOSE: Final = re.compile(r"\s*([,}\]])")
# An annotated string (a java.time value) or a blob: the rarer values Kestra writes.
_ANNOTATED: Final = re.compile(rf"\s*([A-Za-z_][A-Za-z0-9_$]*)::\s*({_QUOTED})")
_BLOB: Final = re.compile(r"\s*\{\{([A-Za-z0-9+/=\s]*)\}\}")
_KEYWORD_VALUES: Final = {"true": True, "false": False, "null": None, "nan": math.nan}


class _Slow(Exception):
    """The text needs the full reader."""


def _unquoted(token: str) -> str:
    if "\\" not in token:
        return token[1:-1]
    return _Reader(token).quoted(token[0])


class _Fast:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def value(self) -> tuple[Any, str]:
        """The value at the position and the separator after it (`,` `}` `]`, or `` at the end)."""
        text = self.text
        if scalar := _SCALAR.match(text, self.pos):
            self.pos = scalar.end()
            string, symbol, number, word, separator = scalar.groups()
            if string is not None or symbol is not None:
                return _unquoted(string or symbol), separator
            if number is not None:
                return _scalar(number), separator
            return _KEYWORD_VALUES.get(word, word), separator
        if blob := _BLOB.match(text, self.pos):
            self.pos = blob.end()
            value: Any = base64.b64decode(re.sub(r"\s+", "", blob.group(1)), validate=True)
        elif opened := _OPEN.match(text, self.pos):
            self.pos = opened.end()
            value = self.struct() if opened.group(1) == "{" else self.sequence()
        elif annotated := _ANNOTATED.match(text, self.pos):
            self.pos = annotated.end()
            kind, quoted = annotated.groups()
            if kind not in _JAVA_TIME or quoted[0] != '"':
                raise _Slow
            value = _java_time(kind, _unquoted(quoted))
        else:
            raise _Slow
        closing = _CLOSE.match(text, self.pos)
        if closing is None:
            if text[self.pos :].strip():
                raise _Slow
            return value, ""
        self.pos = closing.end()
        return value, closing.group(1)

    def struct(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if (closing := _CLOSE.match(self.text, self.pos)) and closing.group(1) == "}":
            self.pos = closing.end()
            return fields
        while True:
            field = _FIELD.match(self.text, self.pos)
            if field is None:
                raise _Slow
            self.pos = field.end()
            name = field.group(1) or _unquoted(field.group(2))
            fields[name], separator = self.value()
            if separator == "}":
                return fields
            if separator != ",":
                raise _Slow

    def sequence(self) -> list[Any]:
        items: list[Any] = []
        if (closing := _CLOSE.match(self.text, self.pos)) and closing.group(1) == "]":
            self.pos = closing.end()
            return items
        while True:
            item, separator = self.value()
            items.append(item)
            if separator == "]":
                return items
            if separator != ",":
                raise _Slow


def _fast(text: str) -> Any:
    """The first value of a text in the form Kestra writes: a struct or a list (raises _Slow for any
    other; what follows the value is left unread, as `loads` leaves it)."""
    opened = _OPEN.match(text)
    if opened is None:
        raise _Slow  # a scalar alone: rare, and the full reader knows where it ends
    reader = _Fast(text)
    reader.pos = opened.end()
    return reader.struct() if opened.group(1) == "{" else reader.sequence()


def loads(text: str) -> Any:
    """The first value of an Ion text (a line of an item file, ``fromIon``'s text); what follows it is left
    unread, as Jackson's ``readValue`` leaves it.

    Raises:
        IonError: The text holds no value, or its first value is not valid Ion.
    """
    try:
        return _fast(text)
    except (_Slow, IonError, ValueError, binascii.Error, RecursionError):
        pass
    reader = _Reader(text)
    if reader.at_end():
        raise IonError("Expected an Ion value, found none")
    return reader.value()


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
