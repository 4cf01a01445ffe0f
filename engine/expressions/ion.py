"""Amazon Ion text, as Kestra's ``toIon`` filter writes it and its ``fromIon`` function reads it.

Kestra goes through Jackson's Ion mapper: values are written compactly on one line (``{a:1,b:[2e0]}``),
floats with an exponent, field names as symbols (quoted only when they must be), dates as annotated
strings. Reading gives plain values: structs become maps, lists and s-expressions lists, symbols and
strings text, decimals ``Decimal``, timestamps their text, blobs and clobs bytes; annotations are
dropped. Only the first top-level value is read, as Jackson does.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from .core import _java_double, json_default

__all__ = ["IonError", "from_ion", "to_ion"]


class IonError(ValueError):
    """Text that is not Ion, or a value Ion cannot hold."""


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------

_ESCAPES: Final = {0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
_IDENTIFIER: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_KEYWORD: Final = re.compile(r"false|null|nan|true|\$\d+")


def _escape(text: str, quote: str) -> str:
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char in (quote, "\\"):
            out.append("\\" + char)
        elif code in _ESCAPES:
            out.append(_ESCAPES[code])
        elif code < 0x20 or 0x7F <= code <= 0x9F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    return "".join(out)


def _symbol(name: str) -> str:
    if _IDENTIFIER.fullmatch(name) and not _KEYWORD.fullmatch(name):
        return name
    return "'" + _escape(name, "'") + "'"


def _float(value: float) -> str:
    if value == 0:
        return "-0e0" if math.copysign(1.0, value) < 0 else "0e0"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "+inf" if value > 0 else "-inf"
    text = _java_double(value)
    if text.endswith(".0"):
        return text[:-2] + "e0"
    return text if "E" in text else text + "e0"


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise IonError(f"Ion has no decimal {value}")
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    unscaled = str(int("".join(map(str, digits)) or "0"))
    prefix = "-" if sign else ""
    if exponent == 0:
        return f"{prefix}{unscaled}."
    if exponent > 0:
        return f"{prefix}{unscaled}d{exponent}"
    scale = -exponent
    adjusted = len(unscaled) - 1 - scale
    if adjusted >= 0:
        whole = len(unscaled) - scale
        return f"{prefix}{unscaled[:whole]}.{unscaled[whole:]}"
    if adjusted >= -6:
        return f"{prefix}0.{'0' * (scale - len(unscaled))}{unscaled}"
    return f"{prefix}{unscaled}d-{scale}"


def _datetime(value: datetime) -> str:
    text = json_default(value)
    if isinstance(value.tzinfo, ZoneInfo) and value.tzinfo.key not in ("UTC", "Etc/UTC"):
        text += f"[{value.tzinfo.key}]"
    return 'ZonedDateTime::"' + _escape(text, '"') + '"'


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
        out.append('"' + _escape(value, '"') + '"')
    elif isinstance(value, datetime):
        out.append(_datetime(value))
    elif isinstance(value, date):
        out.append(value.isoformat())
    elif isinstance(value, bytes):
        out.append("{{" + base64.b64encode(value).decode("ascii") + "}}")
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(_symbol(str(key)) + ":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple | set | frozenset):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        _write(json_default(value), out)


def to_ion(value: Any) -> str:
    """Compact Ion text of a value (``null`` for None), as Kestra's ``toIon`` filter prints it."""
    out: list[str] = []
    _write(value, out)
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------

_DIGITS: Final = r"\d(?:_?\d)*"
_TIMESTAMP: Final = re.compile(
    r"\d{4}T|\d{4}-\d{2}T|\d{4}-\d{2}-\d{2}(?:T(?:\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?)?"
)
_INT: Final = re.compile(r"-?(?:0[xX][0-9a-fA-F](?:_?[0-9a-fA-F])*|0[bB][01](?:_?[01])*|0|[1-9](?:_?\d)*)")
_REAL: Final = re.compile(rf"-?(?:0|[1-9](?:_?\d)*)(?:\.(?:{_DIGITS})?)?(?:[eEdD][+-]?{_DIGITS})?")
_STOP: Final = frozenset(" \t\n\r\v\f,]})[{(\"':/")
_OPERATOR: Final = frozenset("!#%&*+-./;<=>?@^`|~")
_STRING_ESCAPES: Final = {
    "a": "\a", "b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "v": "\v",
    "?": "?", "0": "\0", "'": "'", '"': '"', "/": "/", "\\": "\\",
}  # fmt: skip
_NULL_TYPES: Final = frozenset(
    {"null", "bool", "int", "float", "decimal", "timestamp", "string", "symbol", "blob", "clob", "struct"}
    | {"list", "sexp"}
)


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> IonError:
        return IonError(f"{what} at offset {self.pos}")

    def skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\n\r\v\f":
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.fail("unterminated comment")
                self.pos = end + 2
            else:
                return

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected '{char}'")
        self.pos += 1

    # --- strings and symbols -----------------------------------------------------------------------

    def escape(self, quote: str) -> str:
        text = self.text
        char = text[self.pos + 1 : self.pos + 2]
        if char == "":
            raise self.fail("unterminated string")
        if char in _STRING_ESCAPES:
            self.pos += 2
            return _STRING_ESCAPES[char]
        if char == "\n":
            self.pos += 2
            return ""
        if char == "\r":
            self.pos += 3 if text.startswith("\n", self.pos + 2) else 2
            return ""
        width = {"x": 2, "u": 4, "U": 8}.get(char)
        digits = text[self.pos + 2 : self.pos + 2 + width] if width else ""
        if not width or len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise self.fail(f"invalid escape '\\{char}'")
        self.pos += 2 + width
        return chr(int(digits, 16))

    def quoted(self, quote: str) -> str:
        self.pos += 1
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self.fail("unterminated string")
            char = text[self.pos]
            if char == quote:
                self.pos += 1
                return "".join(out)
            if char == "\\":
                out.append(self.escape(quote))
            elif char == "\n":
                raise self.fail("line break in a quoted string")
            else:
                out.append(char)
                self.pos += 1

    def long_strings(self) -> str:
        out: list[str] = []
        text = self.text
        while self.peek() == "'" and text.startswith("'''", self.pos):
            self.pos += 3
            while not text.startswith("'''", self.pos):
                if self.pos >= len(text):
                    raise self.fail("unterminated long string")
                if text[self.pos] == "\\":
                    out.append(self.escape("'"))
                else:
                    out.append(text[self.pos])
                    self.pos += 1
            self.pos += 3
        return "".join(out)

    def bare_word(self) -> str:
        match = _IDENTIFIER.match(self.text, self.pos)
        if match is None:
            raise self.fail("unexpected character")
        self.pos = match.end()
        return match.group()

    def symbol_text(self) -> str | None:
        """A symbol or field name: quoted, or an identifier; None when the next token is neither."""
        char = self.peek()
        if char == "'" and not self.text.startswith("'''", self.pos):
            return self.quoted("'")
        if char and _IDENTIFIER.match(self.text, self.pos):
            return self.bare_word()
        return None

    # --- values ------------------------------------------------------------------------------------

    def annotations(self) -> None:
        """Skip ``name::`` prefixes (Jackson drops annotations when reading plain values)."""
        while True:
            start = self.pos
            name = self.symbol_text()
            if name is None:
                return
            if self.peek() == ":" and self.text.startswith("::", self.pos):
                self.pos += 2
                continue
            self.pos = start
            return

    def value(self, in_sexp: bool = False) -> Any:
        self.annotations()
        char = self.peek()
        text = self.text
        if char == "":
            raise self.fail("expected a value")
        if char == "{":
            return self.lob() if text.startswith("{{", self.pos) else self.struct()
        if char == "[":
            return self.sequence("]")
        if char == "(":
            return self.sequence(")")
        if char == '"':
            return self.quoted('"')
        if char == "'":
            return self.long_strings() if text.startswith("'''", self.pos) else self.quoted("'")
        if char.isdigit() or (char == "-" and text[self.pos + 1 : self.pos + 2].isdigit()):
            return self.number()
        if text.startswith(("+inf", "-inf"), self.pos) and self.ends_at(self.pos + 4):
            return self.number()
        if in_sexp and char in _OPERATOR:
            start = self.pos
            while self.pos < len(text) and text[self.pos] in _OPERATOR:
                self.pos += 1
            return text[start : self.pos]
        word = self.bare_word()
        if word == "null":
            if text.startswith(".", self.pos):
                self.pos += 1
                if self.bare_word() not in _NULL_TYPES:
                    raise self.fail("unknown null type")
            return None
        return {"true": True, "false": False, "nan": math.nan}.get(word, word)

    def number(self) -> Any:
        text = self.text
        start = self.pos
        for literal, number in (("+inf", math.inf), ("-inf", -math.inf)):
            if text.startswith(literal, start):
                self.pos += 4
                self.check_end()
                return number
        stamp = _TIMESTAMP.match(text, start)
        if stamp is not None and self.ends_at(stamp.end()):
            self.pos = stamp.end()
            return stamp.group()
        whole = _INT.match(text, start)
        if whole is not None and self.ends_at(whole.end()):
            self.pos = whole.end()
            digits = whole.group().replace("_", "")
            negative = digits.startswith("-")
            body = digits.lstrip("-")
            base = 16 if body[:2] in ("0x", "0X") else 2 if body[:2] in ("0b", "0B") else 10
            magnitude = int(body[2:] if base != 10 else body, base)
            return -magnitude if negative else magnitude
        real = _REAL.match(text, start)
        if real is None or not self.ends_at(real.end()):
            raise self.fail("invalid number")
        self.pos = real.end()
        literal = real.group().replace("_", "")
        if "e" in literal or "E" in literal:
            return float(literal)
        return Decimal(literal.replace("d", "e").replace("D", "e"))

    def ends_at(self, end: int) -> bool:
        return end >= len(self.text) or self.text[end] in _STOP or self.text.startswith("::", end)

    def check_end(self) -> None:
        if not self.ends_at(self.pos):
            raise self.fail("invalid number")

    def lob(self) -> bytes:
        self.pos += 2
        char = self.peek()
        if char == '"':
            data = self.quoted('"')
        elif char == "'":
            data = self.long_strings()
        else:
            end = self.text.find("}}", self.pos)
            if end < 0:
                raise self.fail("unterminated blob")
            encoded = "".join(self.text[self.pos : end].split())
            self.pos = end
            try:
                self.expect("}")
                self.pos += 1
                return base64.b64decode(encoded, validate=True)
            except ValueError:
                raise self.fail("invalid blob") from None
        self.expect("}")
        if not self.text.startswith("}", self.pos):
            raise self.fail("expected '}}'")
        self.pos += 1
        try:
            return data.encode("latin-1")
        except UnicodeEncodeError:
            raise self.fail("a clob holds only 8-bit characters") from None

    def struct(self) -> dict[str, Any]:
        self.pos += 1
        result: dict[str, Any] = {}
        while self.peek() != "}":
            name = self.field_name()
            self.expect(":")
            result[name] = self.value()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.fail("expected ',' or '}'")
        self.pos += 1
        return result

    def field_name(self) -> str:
        char = self.peek()
        if char == '"':
            return self.quoted('"')
        if char == "'" and self.text.startswith("'''", self.pos):
            return self.long_strings()
        name = self.symbol_text()
        if name is None:
            raise self.fail("expected a field name")
        return name

    def sequence(self, close: str) -> list[Any]:
        self.pos += 1
        sexp = close == ")"
        items: list[Any] = []
        while self.peek() != close:
            items.append(self.value(in_sexp=sexp))
            if sexp:
                continue
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != close:
                raise self.fail(f"expected ',' or '{close}'")
        self.pos += 1
        return items


def from_ion(text: str) -> Any:
    """Read the first value of Ion text (an Ion version marker before it is skipped).

    Raises:
        IonError: The text holds no complete Ion value.
    """
    reader = _Reader(text)
    reader.skip_space()
    if reader.text.startswith("$ion_1_0", reader.pos) and reader.ends_at(reader.pos + 8):
        reader.pos += 8
    return reader.value()
