"""Why one input's value is invalid: the causes `coerce_input` wraps in Kestra's sentence.

The coercers raise these; `coerce_input` turns each cause into "Invalid value for input `x`.
Cause: ..." inside an `InputError`.
"""

from __future__ import annotations

from typing import Any

from .text_forms import echo


class Invalid(Exception):
    """A cause for one input, before it is wrapped in Kestra's "Invalid value for input" sentence."""


class InvalidItems(Exception):
    """Several causes for one input (each bad item of a MULTISELECT or an ARRAY)."""

    def __init__(self, causes: list[str]) -> None:
        super().__init__("\n".join(causes))
        self.causes = causes


def expected(kind: str, value: Any, detail: str | None = None) -> Invalid:
    """Kestra's cause for a value that does not parse as `kind`, with the parser's detail if any."""
    message = f"Expected `{kind}` but received `{echo(value)}`"
    return Invalid(f"{message}: {detail}" if detail else message)
