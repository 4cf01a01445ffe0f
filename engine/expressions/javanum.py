"""Numbers read from text the way Kestra's ``number`` filter reads them (Apache Commons' NumberUtils).

Without a type, whole numbers become the smallest of Integer, Long and BigInteger that holds them, and
decimals a Float when a float prints the same digits as a double, else a Double, else a BigDecimal.
Python has one int and one float type; the subclasses here only remember which Java class a value
would have (for ``className``) and behave as plain ints and floats otherwise.
"""

from __future__ import annotations

import math
import re
import struct
from decimal import Decimal, InvalidOperation
from typing import Final

__all__ = ["JavaBigInteger", "JavaFloat", "JavaInteger", "NumberError", "parse_number"]

_INT_MAX: Final = 2**31 - 1
_LONG_MAX: Final = 2**63 - 1
_FLOAT_MAX: Final = 3.4028234663852886e38
_DECIMAL_TEXT: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


class NumberError(ValueError):
    """Text that is not a number of the requested type."""


class JavaInteger(int):
    """An int that Kestra would hold as a java.lang.Integer."""


class JavaBigInteger(int):
    """An int that Kestra would hold as a java.math.BigInteger."""


class JavaFloat(float):
    """A float that Kestra would hold as a java.lang.Float."""


def _whole(value: int) -> int:
    if -_INT_MAX - 1 <= value <= _INT_MAX:
        return JavaInteger(value)
    if -_LONG_MAX - 1 <= value <= _LONG_MAX:
        return value
    return JavaBigInteger(value)


def _float32_digits(value: float) -> Decimal:
    """The shortest decimal that reads back as the same 32-bit float (what Java's Float.toString prints)."""
    single = struct.unpack("f", struct.pack("f", value))[0]
    for precision in range(1, 10):
        text = f"{single:.{precision}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            return Decimal(text)
    return Decimal(repr(single))


def _decimal_number(text: str) -> int | float | Decimal:
    if not _DECIMAL_TEXT.fullmatch(text):
        raise NumberError(text)
    exact = Decimal(text)
    number = float(text)
    kept = number != 0 or exact == 0  # a non-zero value that underflows is not taken
    if kept and abs(number) <= _FLOAT_MAX and _float32_digits(number) == Decimal(repr(number)):
        return JavaFloat(number)
    if kept and not math.isinf(number):
        return number if Decimal(repr(number)) == exact else exact
    return exact


def _typed(raw: str, kind: str) -> int | float | Decimal:
    if kind == "INT":
        value = int(raw)
        if not -_INT_MAX - 1 <= value <= _INT_MAX:
            raise NumberError(raw)
        return JavaInteger(value)
    if kind == "LONG":
        value = int(raw)
        if not -_LONG_MAX - 1 <= value <= _LONG_MAX:
            raise NumberError(raw)
        return value
    if kind == "BIGINTEGER":
        return JavaBigInteger(int(raw))
    if kind == "FLOAT":
        return JavaFloat(float(raw))
    if kind == "DOUBLE":
        return float(raw)
    return Decimal(raw)


def parse_number(text: str, kind: str | None) -> int | float | Decimal:
    """Read a number from text, as NumberUtils does for Kestra's ``number(type)`` filter.

    Args:
        text: The text.
        kind: ``INT``, ``LONG``, ``FLOAT``, ``DOUBLE``, ``BIGINTEGER``, ``BIGDECIMAL``, or None (or any
            other word) to pick the type from the text.

    Raises:
        NumberError: The text is not a number (of that type).
    """
    raw = text.strip()
    try:
        if kind in ("INT", "LONG", "BIGINTEGER", "FLOAT", "DOUBLE", "BIGDECIMAL"):
            return _typed(raw, kind)
        body = raw.lstrip("+-")
        sign = raw[: len(raw) - len(body)]
        if body[:2].lower() == "0x" or body[:1] == "#":
            digits = body[2:] if body[:1] != "#" else body[1:]
            return _whole(int(sign + digits, 16))
        last = raw[-1:]
        if last in "lL" and body[:-1].isdigit():
            value = int(raw[:-1])
            return value if -_LONG_MAX - 1 <= value <= _LONG_MAX else JavaBigInteger(value)
        if last in "fF":
            return JavaFloat(float(raw[:-1]))
        if last in "dD":
            return float(raw[:-1])
        if body.isdigit():
            return _whole(int(raw))
        return _decimal_number(raw)
    except (ValueError, InvalidOperation, OverflowError, struct.error):
        raise NumberError(text) from None
