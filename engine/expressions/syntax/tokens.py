"""Tokenizing the expressions inside Pebble's ``{{ }}``, ``{% %}`` and ``#{...}`` delimiters.

Brackets are matched while tokenizing, so an unclosed one is reported where it opens; strings keep
Pebble's escapes (only the quote and the backslash) and their ``#{...}`` interpolations as tokens.
:class:`TemplateProblem`, raised here first, is the one error of the whole translation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal


class TemplateProblem(Exception):
    """A template cannot be translated.

    Attributes:
        reason: What is wrong.
        pos: Offset in the source where it was found.
        security: True when the template reaches for something the sandbox forbids.
    """

    def __init__(self, reason: str, pos: int, *, security: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pos = pos
        self.security = security


TokKind = Literal["name", "int", "float", "str", "op"]


@dataclass(frozen=True, slots=True)
class Tok:
    """One token; `pos` is its offset in the template, for error messages."""

    kind: TokKind
    value: str
    pos: int
    # For double-quoted strings with #{...}: literal text and the tokens of each interpolation.
    parts: tuple[str | tuple[Tok, ...], ...] | None = None


_NAME_RE: Final = re.compile(r"[^\W\d]\w*")
_NUMBER_RE: Final = re.compile(r"\d+(?:\.\d+(?:[eE][+-]?\d+)?)?")
_SPACE_RE: Final = re.compile(r"\s+")
_OPS3: Final = ("???",)
_OPS2: Final = ("??", "**", "//", "..", "==", "!=", "<=", ">=")
_OPS1: Final = frozenset("?:<>+-*/%~|()[]{},.=")
_OPEN: Final = {"(": ")", "[": "]", "{": "}"}
_CLOSE: Final = {")", "]", "}"}

# What ends the token stream: "}}" for {{ }}, "%}" for tags, "}" for "#{...}" interpolations.
_Closer = Literal["}}", "%}", "}"]


def lex(src: str, pos: int, closer: _Closer) -> tuple[list[Tok], int, bool]:
    """Tokenize from ``pos`` up to the closing delimiter.

    Returns:
        The tokens, the offset just after the closer, and whether the closer had a ``-`` trim marker.
    """
    tokens: list[Tok] = []
    stack: list[tuple[str, int]] = []
    n = len(src)
    start = pos
    while True:
        match = _SPACE_RE.match(src, pos)
        if match is not None:
            pos = match.end()
        if pos >= n:
            if stack:
                raise TemplateProblem(f'Unclosed "{stack[-1][0]}"', stack[-1][1])
            what = {"}}": "'}}'", "%}": "'%}'", "}": "'}' of the string interpolation"}[closer]
            raise TemplateProblem(f"Unexpected end of template, expecting {what}", start)
        if not stack:
            if closer == "}":
                if src[pos] == "}":
                    return tokens, pos + 1, False
            elif src.startswith(closer, pos):
                return tokens, pos + 2, False
            elif src[pos] == "-" and src.startswith(closer, pos + 1):
                return tokens, pos + 3, True
        ch = src[pos]
        if ch == "'" or ch == '"':
            tok, pos = _lex_string(src, pos)
            tokens.append(tok)
            continue
        match = _NAME_RE.match(src, pos)
        if match is not None:
            tokens.append(Tok("name", match.group(), pos))
            pos = match.end()
            continue
        match = _NUMBER_RE.match(src, pos)
        if match is not None:
            text = match.group()
            tokens.append(Tok("float" if "." in text else "int", text, pos))
            pos = match.end()
            continue
        op = next((o for o in (*_OPS3, *_OPS2) if src.startswith(o, pos)), None)
        if op is None and ch in _OPS1:
            op = ch
        if op is None:
            raise TemplateProblem(f"Unexpected character '{ch}'", pos)
        if op in _OPEN:
            stack.append((op, pos))
        elif op in _CLOSE:
            if not stack:
                raise TemplateProblem(f'Unexpected "{op}"', pos)
            if _OPEN[stack[-1][0]] != op:
                raise TemplateProblem(f'Unclosed "{stack[-1][0]}"', stack[-1][1])
            stack.pop()
        tokens.append(Tok("op", op, pos))
        pos += len(op)


def _lex_string(src: str, pos: int) -> tuple[Tok, int]:
    quote = src[pos]
    i = pos + 1
    n = len(src)
    parts: list[str | tuple[Tok, ...]] = []
    buf: list[str] = []
    while i < n:
        ch = src[i]
        if ch == "\\" and i + 1 < n:
            # Pebble only unescapes the quote and the backslash; "\n" stays a backslash and an "n".
            nxt = src[i + 1]
            if nxt == quote or nxt == "\\":
                buf.append(nxt)
                i += 2
                continue
            buf.append(ch)
            i += 1
            continue
        if ch == quote:
            text = "".join(buf)
            if not parts:
                return Tok("str", text, pos), i + 1
            if text:
                parts.append(text)
            return Tok("str", "", pos, tuple(parts)), i + 1
        if quote == '"' and ch == "#" and src.startswith("#{", i):
            if buf:
                parts.append("".join(buf))
                buf = []
            inner, i, _ = lex(src, i + 2, "}")
            if not inner:
                raise TemplateProblem("Empty string interpolation", i)
            parts.append(tuple(inner))
            continue
        buf.append(ch)
        i += 1
    raise TemplateProblem("Unclosed string literal", pos)
