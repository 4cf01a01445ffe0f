"""The store's statements, written for SQLite, as PostgreSQL runs them.

The store's parts name their statements in `sql/<group>.sql` and run them through a connection; on
PostgreSQL that connection hands each statement here first. Most statements are the same SQL in
both, bar the placeholders: SQLite's `?` and `?NNN` become psycopg's `%s` (a numbered one repeated
as often as it appears, its parameter with it), a literal `%` becomes `%%`, and an `INDEXED BY`
hint (SQLite's alone) is dropped. A statement that needs other SQL on PostgreSQL has a statement
of the same name in `postgres/sql/<group>.sql`, used in its place.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..queries import SQL_DIR, parse_queries

PG_SQL_DIR = Path(__file__).resolve().parent / "sql"
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement for psycopg: its text, and for each `%s` the index of its parameter."""

    text: str
    order: tuple[int, ...] | None  # None: the parameters in the order given

    def params(self, given: Sequence[Any]) -> Sequence[Any]:
        """The parameters in the order of the text's placeholders."""
        return given if self.order is None else [given[index] for index in self.order]


def rewrite(sql: str) -> Statement:
    """`sql` with psycopg's placeholders: see the module's docstring.

    Raises:
        StoreError: The statement mixes `?` and `?NNN`.
    """
    out: list[str] = []
    order: list[int] = []
    numbered = plain = False
    index, size = 0, len(sql)
    while index < size:
        char = sql[index]
        if char in "'\"":  # a string or a quoted name: copied as it is ('' and "" escape themselves)
            end = sql.find(char, index + 1)
            while end != -1 and end + 1 < size and sql[end + 1] == char:
                end = sql.find(char, end + 2)
            end = size if end == -1 else end + 1
            out.append(sql[index:end].replace("%", "%%"))
            index = end
        elif char == "-" and sql.startswith("--", index):
            end = sql.find("\n", index)
            end = size if end == -1 else end
            index = end  # a comment: dropped (it may hold a `?` or a `%`)
        elif char == "?":
            digits = index + 1
            while digits < size and sql[digits].isdigit():
                digits += 1
            if digits > index + 1:
                numbered = True
                order.append(int(sql[index + 1 : digits]) - 1)
            else:
                plain = True
                order.append(len(order))
            out.append("%s")
            index = digits
        elif char == "%":
            out.append("%%")
            index += 1
        else:
            out.append(char)
            index += 1
    if numbered and plain:
        raise StoreError(f"a statement mixes ? and ?NNN placeholders: {sql[:200]}")
    text = _INDEXED_BY.sub("", "".join(out))
    return Statement(text, tuple(order) if numbered else None)


@functools.cache
def _overrides() -> Mapping[str, str]:
    """SQLite statement text -> the PostgreSQL statement of the same group and name."""
    found: dict[str, str] = {}
    for path in sorted(PG_SQL_DIR.glob("*.sql")):
        sqlite_path = SQL_DIR / path.name
        try:
            ours = parse_queries(sqlite_path.read_text(encoding="utf-8"), sqlite_path.name)
            theirs = parse_queries(path.read_text(encoding="utf-8"), f"postgres/{path.name}")
        except FileNotFoundError:
            raise StoreError(
                f"the store's query file {sqlite_path} is missing: "
                "this installation of tiercel is incomplete; reinstall it"
            ) from None
        for name, text in theirs.items():
            if name not in ours:
                raise StoreError(f"postgres/{path.name}: {name!r} overrides no statement of {path.name}")
            found[ours[name]] = text
    return found


@functools.lru_cache(maxsize=4096)
def statement(sql: str) -> Statement:
    """The PostgreSQL statement for one of the store's SQLite statements (cached by its text)."""
    return rewrite(_overrides().get(sql, sql))
