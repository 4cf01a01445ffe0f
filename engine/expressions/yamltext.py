"""YAML text of a value, laid out as Kestra's ``yaml`` filter prints it.

Kestra writes YAML with Jackson (SnakeYAML underneath), quotes only what must be quoted, and indents
lists: each ``-`` sits one space in from its parent (`` - a``), and a map or list inside a list starts on
the line after its dash. Multi-line text is a literal block (``|-``). Strings that read as numbers stay
unquoted, as Jackson leaves them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final

from yaml.emitter import Emitter, ScalarAnalysis

from .core import _java_double, json_default

__all__ = ["to_yaml"]

_INDENT: Final = 2
# Words YAML 1.1 reads as booleans or null: Jackson double-quotes text equal to one of them.
_RESERVED: Final = frozenset(
    word
    for base in ("false", "no", "null", "on", "off", "true", "yes")
    for word in (base, base.capitalize(), base.upper())
) | {"n", "N", "y", "Y"}
_ESCAPES: Final = {
    "\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f", "\r": "r",
    "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_", "\u2028": "L", "\u2029": "P",
}  # fmt: skip
_LINE_BREAKS: Final = "\n\r\x85\u2028\u2029"

_analyzer = Emitter(io.StringIO(), allow_unicode=True)


def _analyze(text: str) -> ScalarAnalysis:
    return _analyzer.analyze_scalar(text)


def _is_blank(text: str, index: int) -> bool:
    return index < 0 or index >= len(text) or text[index] in " \t"


def _value_needs_quotes(text: str) -> bool:
    if not text or text in _RESERVED or text.startswith("~"):
        return True
    for index, char in enumerate(text):
        if char in "[]{},":
            return True
        if char == "#" and _is_blank(text, index - 1):
            return True
        if char == ":" and _is_blank(text, index + 1):
            return True
    return False


def _name_needs_quotes(text: str) -> bool:
    return not text or text in _RESERVED or text.startswith("~") or text[0] in "0123456789-+."


def _printable(char: str) -> bool:
    code = ord(char)
    return (
        code in (0x9, 0xA, 0xD, 0x85)
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ) and code != 0xFEFF


def _double_quoted(text: str) -> str:
    out: list[str] = []
    for char in text:
        if char in _ESCAPES:
            out.append("\\" + _ESCAPES[char])
        elif " " <= char <= "~" or (char != "\ufeff" and _printable(char)):
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _flow_string(text: str, quote: bool, simple_key: bool) -> str:
    """A one-line string: plain when YAML allows it, else single- or double-quoted."""
    if quote:
        return _double_quoted(text)
    analysis = _analyze(text)
    if not (simple_key and (analysis.empty or analysis.multiline)) and analysis.allow_block_plain:
        return text
    if analysis.allow_single_quoted and not (simple_key and analysis.multiline):
        return "'" + text.replace("'", "''") + "'"
    return _double_quoted(text)


def _literal(text: str, indent: int) -> list[str]:
    """A literal block: the ``|`` header, then the lines indented (empty lines left empty)."""
    hints = str(_INDENT) if text[0] in " " + _LINE_BREAKS else ""
    if text[-1] not in _LINE_BREAKS:
        hints += "-"
        body = text
    else:
        if len(text) == 1 or text[-2] in _LINE_BREAKS:
            hints += "+"
        body = text[:-1]
    pad = " " * indent
    return ["|" + hints] + [pad + line if line else "" for line in body.split("\n")]


def _scalar_text(value: Any) -> str | None:
    """The plain text of a non-string scalar (None for strings and collections)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, Decimal):
        return str(value)
    return None


def _inline(prefix: str, value: Any, indent: int) -> list[str]:
    """``prefix`` followed by a scalar or an empty collection (a literal block adds lines)."""
    sep = " " if prefix else ""
    if isinstance(value, Mapping):
        return [prefix + sep + "{}"]
    if isinstance(value, list | tuple | set | frozenset):
        return [prefix + sep + "[]"]
    text = _scalar_text(value)
    if text is not None:
        return [prefix + sep + text]
    if isinstance(value, datetime | date | time | bytes) or not isinstance(value, str):
        return _inline(prefix, json_default(value), indent)
    if "\n" in value and _analyze(value).allow_block:
        header, *lines = _literal(value, indent + _INDENT)
        return [prefix + sep + header, *lines]
    quote = "\n" in value or _value_needs_quotes(value)
    return [prefix + sep + _flow_string(value, quote, simple_key=False)]


def _key(key: Any) -> str:
    text = key if isinstance(key, str) else (_scalar_text(key) or str(json_default(key)))
    return _flow_string(text, _name_needs_quotes(text), simple_key=True)


def _is_block(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple | set | frozenset) and len(value) > 0


def _block(value: Any, indent: int) -> list[str]:
    """The lines of a non-empty map or list whose entries start at column ``indent``."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            prefix = pad + _key(key) + ":"
            if isinstance(item, Mapping) and item:
                lines += [prefix, *_block(item, indent + _INDENT)]
            elif _is_block(item):
                # A list in a map is not indented further: its dashes sit one space in from the key.
                lines += [prefix, *_block(item, indent)]
            else:
                lines += _inline(prefix, item, indent)
        return lines
    for item in value:
        prefix = pad + " -"
        if _is_block(item):
            lines += [prefix, *_block(item, indent + _INDENT)]
        else:
            lines += _inline(prefix, item, indent)
    return lines


def to_yaml(value: Any) -> str:
    """YAML text of a value, each line ending with a line break, as Kestra's ``yaml`` filter writes it."""
    lines = _block(value, 0) if _is_block(value) else _inline("", value, 0)
    return "\n".join(lines) + "\n"
