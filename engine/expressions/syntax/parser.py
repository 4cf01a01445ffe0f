"""Parsing a Pebble expression with Pebble's grammar and writing it back as a Jinja expression.

The output is fully parenthesized and calls the ``_pb_*`` helpers wherever Pebble's semantics differ
from Jinja's (``??``, ``contains``, ``a..b``, ``~`` ...); names, attributes and filters the sandbox
forbids are refused here, before Jinja sees them.

Kestra's ``a ?? b`` and ``a ??? b`` catch a missing variable or attribute met anywhere while evaluating
``a``, and ``a`` can be a whole expression (``'p-' ~ x ?? 'none'`` reads ``('p-' ~ x) ?? 'none'``).
Jinja has no way to catch an error inside an expression, so such a left side is written as a separate
Jinja expression in the template's list of sub-expressions, ``_pb_subs``, which a helper evaluates with
the variables it names, catching the missing variable. A literal or a variable path cannot fail and stays
inline.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal

from .tokens import TemplateProblem, Tok

HELPER_PREFIX: Final = "_pb_"

# Kind of an emitted expression: literals and plain variable paths are safe to evaluate eagerly.
_Kind = Literal["lit", "path", "expr"]


@dataclass(frozen=True, slots=True)
class _Code:
    text: str
    kind: _Kind


# Pebble's binary operators and precedences (higher binds tighter), with those Kestra's extension adds
# ("??", "???", "isIn" and its own "<", "<=", ">", ">=", all at 30 since Kestra PR #16127); "**" and "//"
# are Jinja extras. All are left-associative except "**".
_BINARY: Final = {
    "or": 10, "and": 15,
    "is": 20, "contains": 20, "in": 20, "not in": 20,
    "==": 30, "equals": 30, "!=": 30, "<": 30, ">": 30, "<=": 30, ">=": 30, "isIn": 30,
    "??": 30, "???": 30,
    "+": 40, "-": 40,
    "*": 60, "/": 60, "%": 60, "//": 60,
    "**": 65,
    "|": 100, "~": 110, "..": 120,
}  # fmt: skip
_COALESCING: Final = frozenset({"??", "???"})
# The template's sub-expressions (left sides of ?? and ??? that are more than a variable path).
SUBS_NAME: Final = f"{HELPER_PREFIX}subs"
_WORD_OPS: Final = frozenset({"or", "and", "is", "contains", "in", "isIn", "equals"})
_COMPARISONS: Final = frozenset({"<", "<=", ">", ">="})
TRUE_NAMES: Final = frozenset({"true", "True", "TRUE"})
FALSE_NAMES: Final = frozenset({"false", "False", "FALSE"})
NULL_NAMES: Final = frozenset({"null", "none", "None", "NULL"})
# Names whose meaning in Jinja is not a context variable.
RESERVED_NAMES: Final = frozenset({"self", "caller", "varargs", "kwargs"})
FORBIDDEN_FILTERS: Final = frozenset({"attr", "map", "select", "reject", "selectattr", "rejectattr"})


def _forbidden_attribute(name: str) -> bool:
    return name.startswith("__")


class Parser:
    """Pebble's grammar by recursive descent over one expression's tokens; each rule returns Jinja code."""

    def __init__(
        self,
        tokens: list[Tok],
        end_pos: int,
        *,
        filters: Collection[str],
        tests: Collection[str],
        in_loop: bool,
        subs: list[str] | None = None,
    ) -> None:
        self.tokens = tokens
        self.i = 0
        self.end_pos = end_pos
        self.filters = filters
        self.tests = tests
        self.in_loop = in_loop
        # Sub-expressions, shared by every parser of one template (see the module's docstring).
        self.subs: list[str] = [] if subs is None else subs
        # The variable names read so far, in order, so that a sub-expression knows the ones it needs.
        self.names: list[str] = []

    # -- token helpers ---------------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> Tok | None:
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

    def advance(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise TemplateProblem("Unexpected end of expression", self.end_pos)
        self.i += 1
        return tok

    def expect_op(self, value: str) -> None:
        if not self.at_op(value):
            raise TemplateProblem(f"Expected '{value}' but found {self.describe()}", self.pos())
        self.i += 1

    def expect_name(self, what: str) -> Tok:
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
        first_name = len(self.names)
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
            elif op in _COALESCING:
                right = self.binary(prec + 1)
                left = self.coalesce(op, left, right, self.names[first_name:])
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
        if op == "in" or op == "isIn":
            return _Code(f"{h}in({lt}, {rt})", "expr")
        if op in _COMPARISONS:
            return _Code(f"{h}cmp('{op}', {lt}, {rt})", "expr")
        if op == "not in":
            return _Code(f"(not {h}in({lt}, {rt}))", "expr")
        if op == "equals":
            return _Code(f"({lt} == {rt})", "expr")
        if op == "~":
            return _Code(f"{h}concat({lt}, {rt})", "expr")
        if op == "..":
            return _Code(f"{h}range({lt}, {rt})", "expr")
        return _Code(f"({lt} {op} {rt})", "expr")

    def coalesce(self, op: str, left: _Code, right: _Code, names: list[str]) -> _Code:
        """``left ?? right`` (null or missing) or ``left ??? right`` (missing only).

        ``names`` are the variables both sides read. A side is evaluated eagerly only when that cannot
        fail or have effects (a literal or a variable path), and the right side only when it is needed.
        """
        h = HELPER_PREFIX
        lt, rt = left.text, right.text
        pick = f"{h}nc" if op == "??" else f"{h}uc"
        if left.kind != "expr":
            if right.kind != "expr":
                return _Code(f"{pick}({lt}, {rt})", "expr")
            test = f"{h}has({lt})" if op == "??" else f"{lt} is defined"
            return _Code(f"({lt} if {test} else {rt})", "expr")
        scope = "{" + ", ".join(f"{name!r}: {name}" for name in dict.fromkeys(names)) + "}"
        first = self.sub(left)
        if right.kind != "expr":
            return _Code(f"{pick}({h}try({SUBS_NAME}, {first}, {scope}), {rt})", "expr")
        return _Code(f"{h}coalesce({op!r}, {SUBS_NAME}, {first}, {self.sub(right)}, {scope})", "expr")

    def sub(self, code: _Code) -> int:
        """Index of ``code`` among the template's sub-expressions."""
        try:
            return self.subs.index(code.text)
        except ValueError:
            self.subs.append(code.text)
            return len(self.subs) - 1

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
        if name in FORBIDDEN_FILTERS:
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
                # A computed key can fail (``m[missing]``), so only a literal key keeps a path.
                kind: _Kind = "path" if code.kind != "expr" and key.kind == "lit" else "expr"
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
                    sub = Parser(
                        list(part),
                        tok.pos,
                        filters=self.filters,
                        tests=self.tests,
                        in_loop=self.in_loop,
                        subs=self.subs,
                    )
                    pieces.append(sub.expression().text)
                    sub.expect_end()
                    self.names.extend(sub.names)
            return _Code(f"{HELPER_PREFIX}concat({', '.join(pieces)})", "expr")
        if tok.kind == "name":
            name = tok.value
            if name in TRUE_NAMES:
                return _Code("true", "lit")
            if name in FALSE_NAMES:
                return _Code("false", "lit")
            if name in NULL_NAMES:
                return _Code("none", "lit")
            if name in RESERVED_NAMES or name.startswith("__"):
                raise TemplateProblem(f"`{name}` is not available in expressions", tok.pos, security=True)
            if name.startswith(HELPER_PREFIX):
                raise TemplateProblem(f"`{name}` is a reserved name", tok.pos)
            if name in ("not", "is", "and", "or", "in", "contains", "equals", "if", "else"):
                raise TemplateProblem(f"Unexpected '{name}'", tok.pos)
            self.names.append(name)
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
