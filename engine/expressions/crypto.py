"""Kestra's encrypt() and decrypt(): AES-GCM with a key given as base64, as its EncryptionService does.

The output of ``encrypt(key, plaintext)`` is base64 (standard alphabet, padded) of a 12-byte random IV
followed by the ciphertext and its 16-byte authentication tag, so that Kestra decrypts what Tiercel
encrypts and the other way round.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import TYPE_CHECKING, Any, Final

from .core import RenderFailure, fail_if_undefined

if TYPE_CHECKING:  # the cryptography package loads with the first encrypt() or decrypt()
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["CRYPTO_FUNCTIONS", "decrypt", "encrypt"]

IV_BYTES: Final = 12
_KEY_BYTES: Final = (16, 24, 32)


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise RenderFailure(f"{what} is not valid base64") from None


def _cipher(key: str) -> AESGCM:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = _b64decode(key, "the key")
    if len(raw) not in _KEY_BYTES:
        raise RenderFailure(
            f"Invalid AES key length: {len(raw)} bytes (a base64-encoded key of 16, 24 or 32 bytes is needed)"
        )
    return AESGCM(raw)


def encrypt(key: str, plaintext: str) -> str:
    """Encrypt `plaintext` (UTF-8) with the base64 AES `key`: base64 of IV + ciphertext + tag."""
    iv = secrets.token_bytes(IV_BYTES)
    return base64.b64encode(iv + _cipher(key).encrypt(iv, plaintext.encode("utf-8"), None)).decode("ascii")


def decrypt(key: str, encrypted: str) -> str:
    """Decrypt what :func:`encrypt` (or Kestra's encrypt()) gave with the same key."""
    cipher = _cipher(key)
    data = _b64decode(encrypted, "the encrypted value")
    # Java's Arrays.copyOf pads a short input with zeros: such a value then fails its tag check.
    iv = data[:IV_BYTES].ljust(IV_BYTES, b"\0")
    from cryptography.exceptions import InvalidTag

    try:
        plain = cipher.decrypt(iv, data[IV_BYTES:], None)
    except InvalidTag:
        raise RenderFailure(
            "Tag mismatch: the value was not encrypted with this key, or was altered"
        ) from None
    return plain.decode("utf-8", errors="replace")


def _strings(function: str, names: tuple[str, str], values: tuple[Any, Any]) -> tuple[str, str]:
    fail_if_undefined(*values)
    if any(value is None for value in values):
        raise RenderFailure(f"The '{function}' function expects two arguments '{names[0]}' and '{names[1]}'.")
    for name, value in zip(names, values, strict=True):
        if not isinstance(value, str):
            raise RenderFailure(f"The '{function}' function expects '{name}' to be a string")
    return values[0], values[1]


def fn_encrypt(key: Any = None, plaintext: Any = None) -> str:
    """``encrypt(key, plaintext)``: AES-GCM encryption with a base64-encoded AES key."""
    return encrypt(*_strings("encrypt", ("key", "plaintext"), (key, plaintext)))


def fn_decrypt(key: Any = None, encrypted: Any = None) -> str:
    """``decrypt(key, encrypted)``: the plaintext of a value :func:`fn_encrypt` gave with that key."""
    return decrypt(*_strings("decrypt", ("key", "encrypted"), (key, encrypted)))


CRYPTO_FUNCTIONS: Final = {"encrypt": fn_encrypt, "decrypt": fn_decrypt}
