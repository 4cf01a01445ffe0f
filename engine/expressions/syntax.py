"""Translate Kestra's Pebble templates into Jinja templates.

Pebble and Jinja share their delimiters but not their expressions: Pebble has ``??``/``???``,
``cond ? a : b``, ``contains``, ``equals``, ``a..b`` ranges, ``"#{interpolation}"``, zero-based
``loop.index``, maps iterated as entries and different operator precedences (``|`` binds looser than
``~`` and ``??``). Every expression is tokenized and parsed with Pebble's grammar, then written back as a
fully parenthesized Jinja expression that calls the ``_pb_*`` helpers for Pebble-only semantics.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["HELPER_PREFIX", "TemplateProblem", "translate"]

HELPER_PREFIX: Final = "_pb_"


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


# ---------------------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------------------

TokKind = Literal["name", "int", "float", "str", "op"]


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: TokKind
    value: str
    pos: int
    # For double-quoted strings with #{...}: literal text and the tokens of each interpolation.
    parts: tuple[str | tuple[_Tok, ...], ...] | None = None


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


def _lex(src: str, pos: int, closer: _Closer) -> tuple[list[_Tok], int, bool]:
    """Tokenize from ``pos`` up to the closing delimiter.

    Returns:
        The tokens, the offset just after the closer, and whether the closer had a ``-`` trim marker.
    """
    tokens: list[_Tok] = []
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
            tokens.append(_Tok("name", match.group(), pos))
            pos = match.end()
            continue
        match = _NUMBER_RE.match(src, pos)
        if match is not None:
            text = match.group()
            tokens.append(_Tok("float" if "." in text else "int", text, pos))
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
        tokens.append(_Tok("op", op, pos))
        pos += len(op)


def _lex_string(src: str, pos: int) -> tuple[_Tok, int]:
    quote = src[pos]
    i = pos + 1
    n = len(src)
    parts: list[str | tuple[_Tok, ...]] = []
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
                return _Tok("str", text, pos), i + 1
            if text:
                parts.append(text)
            return _Tok("str", "", pos, tuple(parts)), i + 1
        if quote == '"' and ch == "#" and src.startswith("#{", i):
            if buf:
                parts.append("".join(buf))
                buf = []
            inner, i, _ = _lex(src, i + 2, "}")
            if not inner:
                raise TemplateProblem("Empty string interpolation", i)
            parts.append(tuple(inner))
            continue
        buf.append(ch)
        i += 1
    raise TemplateProblem("Unclosed string literal", pos)


# ---------------------------------------------------------------------------------------------------------
# Expressions
# ---------------------------------------------------------------------------------------------------------

# Kind of an emitted expression: literals and plain variable paths are safe to evaluate eagerly.
_Kind = Literal["lit", "path", "expr"]


@dataclass(frozen=True, slots=True)
class _Code:
    text: str
    kind: _Kind


# Pebble's binary operators and precedences (higher binds tighter); "**" and "//" are Jinja extras.
_BINARY: Final = {
    "or": 10, "and": 15,
    "is": 20, "contains": 20, "in": 20, "not in": 20,
    "==": 30, "equals": 30, "!=": 30, "<": 30, ">": 30, "<=": 30, ">=": 30,
    "+": 40, "-": 40,
    "*": 60, "/": 60, "%": 60, "//": 60,
    "**": 65,
    "|": 100, "~": 110, "..": 120, "??": 120, "???": 120,
}  # fmt: skip
_WORD_OPS: Final = frozenset({"or", "and", "is", "contains", "in", "equals"})
_TRUE: Final = frozenset({"true", "True", "TRUE"})
_FALSE: Final = frozenset({"false", "False", "FALSE"})
_NULL: Final = frozenset({"null", "none", "None", "NULL"})
# Names whose meaning in Jinja is not a context variable.
_RESERVED_NAMES: Final = frozenset({"self", "caller", "varargs", "kwargs"})
_FORBIDDEN_FILTERS: Final = frozenset({"attr", "map", "select", "reject", "selectattr", "rejectattr"})


def _forbidden_attribute(name: str) -> bool:
    return name.startswith("__")


class _Parser:
    def __init__(
        self,
        tokens: list[_Tok],
        end_pos: int,
        *,
        filters: Collection[str],
        tests: Collection[str],
        in_loop: bool,
    ) -> None:
        self.tokens = tokens
        self.i = 0
        self.end_pos = end_pos
        self.filters = filters
        self.tests = tests
        self.in_loop = in_loop

    # -- token helpers ---------------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> _Tok | None:
        index = self.i + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at_op(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "op" and tok.value == value

    def at_name(self, value: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok.kind == "name" and tok.value == value

    def pos(self) -> int:
        tok = self.peek()
        return tok.pos if tok is not None else self.end_pos

    def describe(self) -> str:
        tok = self.peek()
        if tok is None:
            return "end of expression"
        if tok.kind == "str":
            return "string literal"
        return f"'{tok.value}'"

    def advance(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise TemplateProblem("Unexpected end of expression", self.end_pos)
        self.i += 1
        return tok

    def expect_op(self, value: str) -> None:
        if not self.at_op(value):
            raise TemplateProblem(f"Expected '{value}' but found {self.describe()}", self.pos())
        self.i += 1

    def expect_name(self, what: str) -> _Tok:
        tok = self.peek()
        if tok is None or tok.kind != "name":
            raise TemplateProblem(f"Expected {what} but found {self.describe()}", self.pos())
        self.i += 1
        return tok

    def expect_end(self) -> None:
        if self.peek() is not None:
            raise TemplateProblem(f"Unexpected {self.describe()}", self.pos())

    # -- grammar ---------------------------------------------------------------------------------------

    def expression(self) -> _Code:
        cond = self.binary(0)
        if self.at_op("?"):
            self.i += 1
            yes = self.expression()
            self.expect_op(":")
            no = self.expression()
            return _Code(f"({yes.text} if {HELPER_PREFIX}bool({cond.text}) else {no.text})", "expr")
        return cond

    def peek_binary(self) -> tuple[str, int] | None:
        tok = self.peek()
        if tok is None:
            return None
        if tok.kind == "op" and tok.value in _BINARY:
            return tok.value, 1
        if tok.kind == "name":
            if tok.value in _WORD_OPS:
                return tok.value, 1
            if tok.value == "not" and self.at_name("in", 1):
                return "not in", 2
        return None

    def binary(self, min_prec: int) -> _Code:
        left = self.unary()
        while True:
            found = self.peek_binary()
            if found is None:
                break
            op, width = found
            prec = _BINARY[op]
            if prec < min_prec:
                break
            self.i += width
            if op == "|":
                left = self.filter_call(left)
            elif op == "is":
                left = self.test_call(left)
            else:
                right = self.binary(prec if op == "**" else prec + 1)
                left = self.combine(op, left, right)
        return left

    def unary(self) -> _Code:
        if self.at_name("not"):
            self.i += 1
            operand = self.binary(_BINARY["is"])
            return _Code(f"(not {HELPER_PREFIX}bool({operand.text}))", "expr")
        if self.at_op("-") or self.at_op("+"):
            sign = self.advance().value
            operand = self.unary()
            return _Code(f"({sign}{operand.text})", "lit" if operand.kind == "lit" else "expr")
        return self.postfix()

    def combine(self, op: str, left: _Code, right: _Code) -> _Code:
        h = HELPER_PREFIX
        lt, rt = left.text, right.text
        if op == "or" or op == "and":
            return _Code(f"({h}bool({lt}) {op} {h}bool({rt}))", "expr")
        if op == "contains":
            return _Code(f"{h}contains({lt}, {rt})", "expr")
        if op == "in":
            return _Code(f"{h}in({lt}, {rt})", "expr")
        if op == "not in":
            return _Code(f"(not {h}in({lt}, {rt}))", "expr")
        if op == "equals":
            return _Code(f"({lt} == {rt})", "expr")
        if op == "~":
            return _Code(f"{h}concat({lt}, {rt})", "expr")
        if op == "..":
            return _Code(f"{h}range({lt}, {rt})", "expr")
        if op == "??":
            # Both sides are evaluated eagerly only when that cannot fail or have effects.
            if right.kind != "expr":
                return _Code(f"{h}nc({lt}, {rt})", "expr")
            return _Code(f"({lt} if {h}has({lt}) else {rt})", "expr")
        if op == "???":
            if right.kind != "expr":
                return _Code(f"{h}uc({lt}, {rt})", "expr")
            return _Code(f"({lt} if {lt} is defined else {rt})", "expr")
        return _Code(f"({lt} {op} {rt})", "expr")

    def arguments(self) -> str:
        """Parse ``( ... )`` (the "(" is current) into Jinja call arguments."""
        self.expect_op("(")
        args: list[str] = []
        named = False
        while not self.at_op(")"):
            tok = self.peek()
            if tok is not None and tok.kind == "name" and self.peek(1) is not None:
                nxt = self.peek(1)
                if nxt is not None and nxt.kind == "op" and nxt.value == "=":
                    if _forbidden_attribute(tok.value) or tok.value.startswith(HELPER_PREFIX):
                        raise TemplateProblem(
                            f"Argument name '{tok.value}' is not allowed", tok.pos, security=True
                        )
                    self.i += 2
                    args.append(f"{tok.value}={self.expression().text}")
                    named = True
                    if not self.at_op(")"):
                        self.expect_op(",")
                    continue
            if named:
                raise TemplateProblem("A positional argument cannot follow a named argument", self.pos())
            args.append(self.expression().text)
            if not self.at_op(")"):
                self.expect_op(",")
        self.i += 1
        return ", ".join(args)

    def filter_call(self, left: _Code) -> _Code:
        tok = self.expect_name("a filter name")
        name = tok.value
        if name in _FORBIDDEN_FILTERS:
            raise TemplateProblem(f"The '{name}' filter is not allowed", tok.pos, security=True)
        if name not in self.filters:
            raise TemplateProblem(f"Unknown filter '{name}'", tok.pos)
        args = self.arguments() if self.at_op("(") else None
        call = name if args is None else f"{name}({args})"
        return _Code(f"({left.text}|{call})", "expr")

    def test_call(self, left: _Code) -> _Code:
        negate = False
        if self.at_name("not"):
            self.i += 1
            negate = True
        tok = self.expect_name("a test name")
        name = tok.value
        if name not in self.tests:
            raise TemplateProblem(f"Unknown test '{name}'", tok.pos)
        args = f"({self.arguments()})" if self.at_op("(") else ""
        return _Code(f"({left.text} is {'not ' if negate else ''}{name}{args})", "expr")

    def postfix(self) -> _Code:
        code = self.primary()
        while True:
            if self.at_op("."):
                self.i += 1
                tok = self.advance()
                if tok.kind == "int":
                    code = _Code(f"{code.text}[{int(tok.value)}]", code.kind)
                    continue
                if tok.kind != "name":
                    raise TemplateProblem(
                        f"Expected an attribute name after '.', found '{tok.value}'", tok.pos
                    )
                attribute = tok.value
                if _forbidden_attribute(attribute):
                    raise TemplateProblem(
                        f"access to attribute '{attribute}' is not allowed", tok.pos, security=True
                    )
                if self.in_loop and code.text == "loop" and attribute in ("index", "revindex"):
                    attribute += "0"  # Pebble's loop.index and loop.revindex count from zero
                code = _Code(f"{code.text}.{attribute}", code.kind)
            elif self.at_op("["):
                self.i += 1
                key = self.expression()
                self.expect_op("]")
                if key.kind == "lit" and key.text[:1] in "'\"" and key.text[1:3] == "__":
                    problem = f"access to item {key.text} is not allowed"
                    raise TemplateProblem(problem, self.pos(), security=True)
                kind: _Kind = "path" if code.kind != "expr" and key.kind != "expr" else "expr"
                code = _Code(f"{code.text}[{key.text}]", kind)
            elif self.at_op("("):
                code = _Code(f"{code.text}({self.arguments()})", "expr")
            else:
                return code

    def primary(self) -> _Code:
        tok = self.advance()
        if tok.kind == "int":
            return _Code(str(int(tok.value)), "lit")
        if tok.kind == "float":
            value = float(tok.value)
            if value in (float("inf"), float("-inf")):
                raise TemplateProblem(f"Number out of range: {tok.value}", tok.pos)
            return _Code(repr(value), "lit")
        if tok.kind == "str":
            if tok.parts is None:
                return _Code(repr(tok.value), "lit")
            pieces: list[str] = []
            for part in tok.parts:
                if isinstance(part, str):
                    pieces.append(repr(part))
                else:
                    sub = _Parser(
                        list(part), tok.pos, filters=self.filters, tests=self.tests, in_loop=self.in_loop
                    )
                    pieces.append(sub.expression().text)
                    sub.expect_end()
            return _Code(f"{HELPER_PREFIX}concat({', '.join(pieces)})", "expr")
        if tok.kind == "name":
            name = tok.value
            if name in _TRUE:
                return _Code("true", "lit")
            if name in _FALSE:
                return _Code("false", "lit")
            if name in _NULL:
                return _Code("none", "lit")
            if name in _RESERVED_NAMES or name.startswith("__"):
                raise TemplateProblem(f"`{name}` is not available in expressions", tok.pos, security=True)
            if name.startswith(HELPER_PREFIX):
                raise TemplateProblem(f"`{name}` is a reserved name", tok.pos)
            if name in ("not", "is", "and", "or", "in", "contains", "equals", "if", "else"):
                raise TemplateProblem(f"Unexpected '{name}'", tok.pos)
            return _Code(name, "path")
        if tok.value == "(":
            inner = self.expression()
            self.expect_op(")")
            return _Code(f"({inner.text})", inner.kind)
        if tok.value == "[":
            items: list[_Code] = []
            while not self.at_op("]"):
                items.append(self.expression())
                if not self.at_op("]"):
                    self.expect_op(",")
            self.i += 1
            kind: _Kind = "lit" if all(item.kind == "lit" for item in items) else "expr"
            return _Code(f"[{', '.join(item.text for item in items)}]", kind)
        if tok.value == "{":
            entries: list[str] = []
            all_literal = True
            while not self.at_op("}"):
                key = self.binary(0)
                self.expect_op(":")
                item = self.expression()
                all_literal = all_literal and key.kind == "lit" and item.kind == "lit"
                entries.append(f"{key.text}: {item.text}")
                if not self.at_op("}"):
                    self.expect_op(",")
            self.i += 1
            return _Code(f"{{{', '.join(entries)}}}", "lit" if all_literal else "expr")
        raise TemplateProblem(f"Unexpected '{tok.value}'", tok.pos)


# ---------------------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------------------

_DELIM_RE: Final = re.compile(r"\{[{%#]")
_RAW_START_RE: Final = re.compile(r"\{%(-?)\s*(raw|verbatim)\s*(-?)%\}")
_RAW_END_RE: Final = re.compile(r"\{%(-?)\s*end(raw|verbatim)\s*(-?)%\}")
_UNSUPPORTED_TAGS: Final = frozenset(
    {"include", "import", "from", "extends", "block", "endblock", "macro", "endmacro", "embed", "call",
     "with", "endwith", "autoescape", "do", "cache", "parallel", "flush"}
)  # fmt: skip


@dataclass(slots=True)
class _Block:
    tag: str
    pos: int
    seen_else: bool = False


class _Translator:
    def __init__(self, source: str, filters: Collection[str], tests: Collection[str]) -> None:
        self.src = source
        self.filters = filters
        self.tests = tests
        self.out: list[str] = []
        self.blocks: list[_Block] = []

    def in_loop(self) -> bool:
        return any(block.tag == "for" for block in self.blocks)

    def parser(self, tokens: list[_Tok], end: int) -> _Parser:
        return _Parser(tokens, end, filters=self.filters, tests=self.tests, in_loop=self.in_loop())

    def emit(self, open_: str, lead: bool, body: str, trail: bool, close: str, start: int, end: int) -> None:
        # Keep the source's line breaks so Jinja's line numbers match the original template.
        newlines = "\n" * self.src.count("\n", start, end)
        self.out.append(f"{open_}{'-' if lead else ''} {body} {newlines}{'-' if trail else ''}{close}")

    def run(self) -> str:
        src = self.src
        pos = 0
        while True:
            match = _DELIM_RE.search(src, pos)
            if match is None:
                self.out.append(src[pos:])
                break
            start = match.start()
            self.out.append(src[pos:start])
            delim = match.group()
            if delim == "{#":
                end = src.find("#}", match.end())
                if end < 0:
                    raise TemplateProblem("Unclosed comment", start)
                self.out.append(src[start : end + 2])
                pos = end + 2
                continue
            raw = _RAW_START_RE.match(src, start)
            if raw is not None:
                pos = self.raw_block(raw)
                continue
            body_start = match.end()
            lead = src.startswith("-", body_start)
            if lead:
                body_start += 1
            if delim == "{{":
                tokens, end, trail = _lex(src, body_start, "}}")
                if not tokens:
                    raise TemplateProblem("Empty expression", start)
                parser = self.parser(tokens, end)
                code = parser.expression()
                parser.expect_end()
                self.emit("{{", lead, code.text, trail, "}}", start, end)
            else:
                tokens, end, trail = _lex(src, body_start, "%}")
                self.tag(tokens, start, end, lead, trail)
            pos = end
        if self.blocks:
            block = self.blocks[-1]
            raise TemplateProblem(f"Unclosed '{block.tag}' tag", block.pos)
        return "".join(self.out)

    def raw_block(self, raw: re.Match[str]) -> int:
        end = _RAW_END_RE.search(self.src, raw.end())
        if end is None:
            raise TemplateProblem(f"Unclosed '{raw.group(2)}' tag", raw.start())
        self.out.append(f"{{%{raw.group(1)} raw {raw.group(3)}%}}")
        self.out.append(self.src[raw.end() : end.start()])
        self.out.append(f"{{%{end.group(1)} endraw {end.group(3)}%}}")
        return end.end()

    def tag(self, tokens: list[_Tok], start: int, end: int, lead: bool, trail: bool) -> None:
        if not tokens or tokens[0].kind != "name":
            raise TemplateProblem("Expected a tag name after '{%'", start)
        name = tokens[0].value
        rest = tokens[1:]

        def expression(tokens_: list[_Tok]) -> str:
            if not tokens_:
                raise TemplateProblem(f"The '{name}' tag needs an expression", start)
            parser = self.parser(tokens_, end)
            code = parser.expression()
            parser.expect_end()
            return code.text

        def no_arguments() -> None:
            if rest:
                raise TemplateProblem(f"Unexpected '{rest[0].value}' in the '{name}' tag", rest[0].pos)

        if name == "if":
            body = f"if {expression(rest)}"
            self.blocks.append(_Block("if", start))
        elif name in ("elseif", "elif"):
            self.require_open(("if",), name, start, allow_after_else=False)
            body = f"elif {expression(rest)}"
        elif name == "else":
            no_arguments()
            self.require_open(("if", "for"), name, start, allow_after_else=False)
            self.blocks[-1].seen_else = True
            body = "else"
        elif name == "for":
            body = self.for_tag(rest, start, end)
        elif name == "set":
            if len(rest) < 3 or rest[0].kind != "name" or not (rest[1].kind == "op" and rest[1].value == "="):
                raise TemplateProblem("Expected '{% set name = expression %}'", start)
            target = self.target(rest[0])
            body = f"set {target} = {expression(rest[2:])}"
        elif name == "filter":
            parser = self.parser(rest, end)
            chain = ""
            while True:
                tok = parser.expect_name("a filter name")
                if tok.value in _FORBIDDEN_FILTERS:
                    raise TemplateProblem(f"The '{tok.value}' filter is not allowed", tok.pos, security=True)
                if tok.value not in self.filters:
                    raise TemplateProblem(f"Unknown filter '{tok.value}'", tok.pos)
                chain += tok.value + (f"({parser.arguments()})" if parser.at_op("(") else "")
                if not parser.at_op("|"):
                    break
                parser.i += 1
                chain += "|"
            parser.expect_end()
            self.blocks.append(_Block("filter", start))
            body = f"filter {chain}"
        elif name in ("endif", "endfor", "endfilter"):
            no_arguments()
            opened = name[3:]
            if not self.blocks or self.blocks[-1].tag != opened:
                raise TemplateProblem(f"Unexpected '{name}' tag", start)
            self.blocks.pop()
            body = name
        elif name in _UNSUPPORTED_TAGS:
            raise TemplateProblem(f"The '{name}' tag is not supported", start)
        else:
            raise TemplateProblem(f"Unknown tag '{name}'", start)
        self.emit("{%", lead, body, trail, "%}", start, end)

    def require_open(self, tags: tuple[str, ...], name: str, pos: int, *, allow_after_else: bool) -> None:
        if not self.blocks or self.blocks[-1].tag not in tags:
            raise TemplateProblem(f"Unexpected '{name}' tag", pos)
        if self.blocks[-1].seen_else and not allow_after_else:
            raise TemplateProblem(f"Unexpected '{name}' tag after 'else'", pos)

    def target(self, tok: _Tok) -> str:
        name = tok.value
        if name in _RESERVED_NAMES or name == "loop" or name.startswith(("__", HELPER_PREFIX)):
            raise TemplateProblem(f"`{name}` cannot be assigned", tok.pos, security=name in _RESERVED_NAMES)
        if name in _TRUE or name in _FALSE or name in _NULL:
            raise TemplateProblem(f"`{name}` cannot be assigned", tok.pos)
        return name

    def for_tag(self, rest: list[_Tok], start: int, end: int) -> str:
        targets: list[str] = []
        i = 0
        while True:
            if i >= len(rest) or rest[i].kind != "name":
                raise TemplateProblem("Expected '{% for item in expression %}'", start)
            targets.append(self.target(rest[i]))
            i += 1
            if i < len(rest) and rest[i].kind == "op" and rest[i].value == ",":
                i += 1
                continue
            break
        if len(targets) > 2 or i >= len(rest) or not (rest[i].kind == "name" and rest[i].value == "in"):
            raise TemplateProblem("Expected '{% for item in expression %}'", start)
        parser = self.parser(rest[i + 1 :], end)
        if parser.peek() is None:
            raise TemplateProblem("The 'for' tag needs an expression", start)
        iterable = parser.expression()
        parser.expect_end()
        self.blocks.append(_Block("for", start))
        helper = "items" if len(targets) == 2 else "iter"
        return f"for {', '.join(targets)} in {HELPER_PREFIX}{helper}({iterable.text})"


def translate(source: str, filters: Collection[str], tests: Collection[str]) -> str:
    """Translate a Pebble template into an equivalent Jinja template.

    Args:
        source: The Pebble template.
        filters: The filter names the Jinja environment provides.
        tests: The test names the Jinja environment provides.

    Returns:
        Jinja source with the same line structure.

    Raises:
        TemplateProblem: The template is invalid or reaches for something forbidden.
    """
    return _Translator(source, filters, tests).run()
