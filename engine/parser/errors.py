"""The errors the flow parser reports: where (file, line, column, YAML path) and what."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FlowError:
    """One problem found in a flow file.

    Attributes:
        path: The file path as given, or None for text that came without a file.
        line: 1-based line of the offending node, when known.
        column: 1-based column of the offending node, when known.
        yaml_path: Where in the document, e.g. ``tasks[2].retry.interval``; empty for the document.
        message: What is wrong and, when obvious, how to fix it.
    """

    path: str | None
    line: int | None
    column: int | None
    yaml_path: str
    message: str

    def __str__(self) -> str:
        """The compiler-style form: ``file.yml:12:5: tasks[2].retry: message``."""
        where = [str(part) for part in (self.path, self.line, self.column) if part is not None]
        parts = [":".join(where), self.yaml_path, self.message]
        return ": ".join(part for part in parts if part)

    def sort_key(self) -> tuple[int, int]:
        return (self.line or 0, self.column or 0)


class FlowParseError(Exception):
    """A flow could not be parsed; `errors` holds every problem found, in source order."""

    def __init__(self, errors: Iterable[FlowError]) -> None:
        self.errors: list[FlowError] = list(errors)
        super().__init__("\n".join(str(error) for error in self.errors))
