"""Kestra's identifier functions: ksuid() and nanoId()."""

from __future__ import annotations

import secrets
import string
import time
from typing import Any, Final

from .core import RenderFailure, fail_if_undefined

__all__ = ["IDENTIFIER_FUNCTIONS", "fn_ksuid", "fn_nano_id"]

_BASE62: Final = string.digits + string.ascii_uppercase + string.ascii_lowercase
# KSUID's epoch (2014-05-13T16:53:20Z): timestamps count seconds from it.
KSUID_EPOCH: Final = 1_400_000_000
KSUID_CHARS: Final = 27
NANO_ID_LENGTH: Final = 21
NANO_ID_MAX_LENGTH: Final = 1000
NANO_ID_ALPHABET: Final = string.digits + string.ascii_uppercase + string.ascii_lowercase + "-_"


def fn_ksuid() -> str:
    """``ksuid()``: a K-Sortable Unique IDentifier, 27 base62 characters.

    Its 20 bytes are the seconds since the KSUID epoch (4 bytes, big-endian), then 16 random bytes,
    written as one base62 number padded with zeros, so that ids sort by creation second.
    """
    seconds = (int(time.time()) - KSUID_EPOCH) & 0xFFFFFFFF
    number = int.from_bytes(seconds.to_bytes(4, "big") + secrets.token_bytes(16), "big")
    digits: list[str] = []
    while number:
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits)).rjust(KSUID_CHARS, "0")


def fn_nano_id(length: Any = None, alphabet: Any = None) -> str:
    """``nanoId(length=21, alphabet=...)``: a random id of ``length`` characters drawn from ``alphabet``.

    As Kestra's NanoIDFunction: a ``length`` that is not an integer, or an ``alphabet`` that is not a
    string, is ignored for the default; each character is the alphabet's entry at a random (signed)
    byte masked with ``len(alphabet) - 1``, so an alphabet whose size is not a power of two uses only
    some of its characters.
    """
    fail_if_undefined(length, alphabet)
    size = NANO_ID_LENGTH
    if isinstance(length, int) and not isinstance(length, bool):
        if length > NANO_ID_MAX_LENGTH:
            raise RenderFailure(
                f"The 'nanoId()' function field 'length' must be lower than: {NANO_ID_MAX_LENGTH}"
            )
        if length < 0:
            raise RenderFailure(f"The 'nanoId()' function field 'length' must not be negative: {length}")
        size = length
    letters = alphabet if isinstance(alphabet, str) else NANO_ID_ALPHABET
    if not letters:
        raise RenderFailure("The 'nanoId()' function field 'alphabet' must not be empty")
    mask = len(letters) - 1
    signed = (byte - 256 if byte > 127 else byte for byte in secrets.token_bytes(size))
    try:
        return "".join(letters[value & mask] for value in signed)
    except IndexError:
        raise RenderFailure(
            f"The 'nanoId()' function cannot use an alphabet of {len(letters)} characters"
        ) from None


IDENTIFIER_FUNCTIONS: Final = {"ksuid": fn_ksuid, "nanoId": fn_nano_id}
