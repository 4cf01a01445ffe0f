"""Template syntax when a flow loads: text rendered at run time must parse as a Pebble template.

A syntax error in a template (an unclosed `{{`, an unknown tag, a broken filter pipe) would
otherwise surface only when its task runs, maybe hours later or on a branch rarely taken. Each
string is put through the renderer's own first step, the translation to Jinja, with the renderer's
filter and test names, so what passes here is what the renderer accepts.
"""

from __future__ import annotations

from typing import Any

from ..expressions.library import FILTERS, TESTS
from ..expressions.syntax import TemplateProblem, translate
from .context import Context, is_expression
from .loader import YamlPath

# The longest excerpt of a template quoted in a message.
EXCERPT_CHARS = 80
# The renderer's own names: a filter or test it does not have fails the template.
_FILTERS = frozenset(FILTERS)
_TESTS = frozenset(TESTS)


def template_problem(text: str) -> str | None:
    """What is wrong with the syntax of a template, or None when it parses (or holds no expression)."""
    if not is_expression(text):
        return None
    try:
        translate(text, _FILTERS, _TESTS)
    except TemplateProblem as problem:
        if problem.security:
            return None  # not a syntax error: the renderer refuses it when run, and nothing runs
        pos = min(problem.pos, len(text) - 1)  # a problem at the very end is shown on the last character
        return f"Invalid expression `{_excerpt(text, pos)}`: {problem.reason} ({_where(text, pos)})"
    except RecursionError:
        return f"Invalid expression `{_excerpt(text, 0)}`: the expression is nested too deeply"
    return None


def check_templates(ctx: Context, value: Any, path: YamlPath, *, note: str = "") -> None:
    """Report the first syntax problem of every string inside `value` (mapping keys too, as they are
    rendered alike) where it is written; `note` ends each message (where the value came from)."""
    pending: list[tuple[Any, YamlPath, bool]] = [(value, path, False)]
    while pending:
        item, where, is_key = pending.pop()
        if isinstance(item, str):
            problem = template_problem(item)
            if problem is not None:
                ctx.error(where, problem + note, key=is_key)
        elif isinstance(item, dict):
            for key, inner in reversed(item.items()):
                pending.append((inner, (*where, key), False))
                pending.append((key, (*where, key), True))
        elif isinstance(item, list):
            pending.extend(
                (inner, (*where, index), False) for index, inner in reversed(list(enumerate(item)))
            )


def _where(text: str, pos: int) -> str:
    """Where in the value a problem is: its column, and its line when the value has several."""
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    if "\n" in text:
        return f"line {line}, column {column} of the value"
    return f"column {column} of the value"


def _excerpt(text: str, pos: int) -> str:
    """The line of `text` holding `pos`, shortened around it when long."""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start : end if end >= 0 else len(text)]
    column = pos - start
    if len(line) <= EXCERPT_CHARS:
        return line.strip()
    left = max(0, min(column - EXCERPT_CHARS // 2, len(line) - EXCERPT_CHARS))
    shown = line[left : left + EXCERPT_CHARS]
    return f"{'...' if left else ''}{shown.strip()}{'...' if left + EXCERPT_CHARS < len(line) else ''}"
