"""Translating a whole Pebble template: text, comments, raw blocks, ``{{ }}`` and the tags."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from .parser import (
    FALSE_NAMES,
    FORBIDDEN_FILTERS,
    HELPER_PREFIX,
    NULL_NAMES,
    RESERVED_NAMES,
    SUBS_NAME,
    TRUE_NAMES,
    Parser,
)
from .tokens import TemplateProblem, Tok, lex

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
        self.subs: list[str] = []

    def in_loop(self) -> bool:
        return any(block.tag == "for" for block in self.blocks)

    def parser(self, tokens: list[Tok], end: int) -> Parser:
        return Parser(
            tokens, end, filters=self.filters, tests=self.tests, in_loop=self.in_loop(), subs=self.subs
        )

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
                tokens, end, trail = lex(src, body_start, "}}")
                if not tokens:
                    raise TemplateProblem("Empty expression", start)
                parser = self.parser(tokens, end)
                code = parser.expression()
                parser.expect_end()
                self.emit("{{", lead, code.text, trail, "}}", start, end)
            else:
                tokens, end, trail = lex(src, body_start, "%}")
                self.tag(tokens, start, end, lead, trail)
            pos = end
        if self.blocks:
            block = self.blocks[-1]
            raise TemplateProblem(f"Unclosed '{block.tag}' tag", block.pos)
        if self.subs:
            # Defined first, on the first line, so that every scope of the template sees it.
            items = "".join(f"{sub!r}, " for sub in self.subs)
            self.out.insert(0, f"{{% set {SUBS_NAME} = ({items}) %}}")
        return "".join(self.out)

    def raw_block(self, raw: re.Match[str]) -> int:
        end = _RAW_END_RE.search(self.src, raw.end())
        if end is None:
            raise TemplateProblem(f"Unclosed '{raw.group(2)}' tag", raw.start())
        self.out.append(f"{{%{raw.group(1)} raw {raw.group(3)}%}}")
        self.out.append(self.src[raw.end() : end.start()])
        self.out.append(f"{{%{end.group(1)} endraw {end.group(3)}%}}")
        return end.end()

    def tag(self, tokens: list[Tok], start: int, end: int, lead: bool, trail: bool) -> None:
        if not tokens or tokens[0].kind != "name":
            raise TemplateProblem("Expected a tag name after '{%'", start)
        name = tokens[0].value
        rest = tokens[1:]

        def expression(tokens_: list[Tok]) -> str:
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
                if tok.value in FORBIDDEN_FILTERS:
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

    def target(self, tok: Tok) -> str:
        name = tok.value
        if name in RESERVED_NAMES or name == "loop" or name.startswith(("__", HELPER_PREFIX)):
            raise TemplateProblem(f"`{name}` cannot be assigned", tok.pos, security=name in RESERVED_NAMES)
        if name in TRUE_NAMES or name in FALSE_NAMES or name in NULL_NAMES:
            raise TemplateProblem(f"`{name}` cannot be assigned", tok.pos)
        return name

    def for_tag(self, rest: list[Tok], start: int, end: int) -> str:
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
