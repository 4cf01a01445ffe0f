"""Templates made only of text and plain variable paths, rendered without Jinja.

Most Kestra expressions are lookups such as `{{ inputs.name }}` or `{{ outputs['t'].value }}`.
Compiling a Jinja template costs about a millisecond, which dominates a flow of trivial tasks;
walking the path through the context's dicts and lists gives the same text in microseconds. Anything
else (filters, operators, a missing key, a value that is not a dict or a list) returns None, and the
caller renders the template with Jinja, which also produces the proper error messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from .core import to_text

_PATH = (
    r"[A-Za-z_][A-Za-z0-9_]*(?:\s*(?:\.\s*[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:'[^'\\]*'|\"[^\"\\]*\"|\d+)\s*\]))*"
)
_SEGMENT = re.compile(r"\{\{-?\s*(" + _PATH + r")\s*-?\}\}")
_STEP = re.compile(r"\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*(?:'([^'\\]*)'|\"([^\"\\]*)\"|(\d+))\s*\]")
_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Step = str | int
Plan = tuple[tuple[str, tuple[Step, ...] | None], ...]  # (literal text, path or None) pairs


@lru_cache(maxsize=4096)
def plan(template: str) -> Plan | None:
    """Split a template into literal text and paths, or None when it holds anything else."""
    if "{%" in template or "{#" in template or "{{-" in template or "-}}" in template:
        return None
    parts: list[tuple[str, tuple[Step, ...] | None]] = []
    position = 0
    for match in _SEGMENT.finditer(template):
        parts.append((template[position : match.start()], None))
        parts.append(("", _steps(match.group(1))))
        position = match.end()
    parts.append((template[position:], None))
    literal = "".join(text for text, path in parts if path is None)
    if "{{" in literal or "}}" in literal:
        return None
    return tuple(parts)


def _steps(path: str) -> tuple[Step, ...]:
    root = _ROOT.match(path)
    assert root is not None
    steps: list[Step] = [root.group(0)]
    for step in _STEP.finditer(path, root.end()):
        name, single, double, index = step.groups()
        steps.append(int(index) if index is not None else name or single or double or "")
    return tuple(steps)


def render(template: str, context: Mapping[str, Any]) -> str | None:
    """The rendered text, or None when Jinja must render this template."""
    parts = plan(template)
    if parts is None:
        return None
    out: list[str] = []
    for text, path in parts:
        if path is None:
            out.append(text)
            continue
        value: Any = context
        for step in path:
            if isinstance(step, int):
                if not isinstance(value, list) or step >= len(value):
                    return None
                value = value[step]
            elif isinstance(value, Mapping) and step in value:
                value = value[step]
            else:
                return None
        if callable(value):
            return None
        out.append(to_text(value))
    return "".join(out)
