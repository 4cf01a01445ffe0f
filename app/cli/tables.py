"""Plain-text tables for the listing commands: columns as wide as their widest cell, no box drawing.

Widths are measured on the text as the terminal shows it: control characters as `say` prints them
(``\\xNN``), wide East Asian characters as two columns, combining marks as none.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from tiercel.engine import visible

Align = Literal["<", ">"]
# Colours a cell (made visible, padded) given its text.
Painter = Callable[[str, str], str]
GAP = "  "


def width(text: str) -> int:
    """The columns `text` takes on a terminal once printed through `say`."""
    shown = visible(_one_line(text))
    if shown.isascii():
        return len(shown)
    return sum(_char_width(char) for char in shown)


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _one_line(cell: str) -> str:
    """A cell on one line: the tabs and newlines `say` keeps in log lines would break the columns."""
    return cell.replace("\t", "\\t").replace("\n", "\\n")


def table(
    rows: Sequence[Sequence[str]], align: Sequence[Align] = (), paint: Mapping[int, Painter] | None = None
) -> list[str]:
    """The rows as lines of aligned columns (left-aligned unless `align` says `>` for a column).

    The last column is not padded, so no line ends in spaces; rows may be shorter than others. With
    `paint`, the lines are made visible here (print them as they are) and the cells of the columns
    it names are coloured, padding included, by its painter given the cell's text.
    """
    widths: list[int] = []
    for row in rows:
        for index, cell in enumerate(row):
            if index == len(widths):
                widths.append(0)
            widths[index] = max(widths[index], width(cell))
    lines = []
    for row in rows:
        cells = []
        for index, text in enumerate(row):
            cell = _one_line(text)
            pad = " " * (widths[index] - width(cell))
            right = index < len(align) and align[index] == ">"
            last = index == len(row) - 1
            shown = pad + cell if right else cell if last else cell + pad
            if paint is not None:
                painter = paint.get(index)
                shown = painter(visible(shown), text) if painter else visible(shown)
            cells.append(shown)
        lines.append(GAP.join(cells))
    return lines
