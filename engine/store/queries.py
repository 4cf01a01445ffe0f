"""Named SQL statements, read from the package's `sql/*.sql` files.

Each statement follows a `-- name: <name>` line and ends with the first line ending in `;` (as
procrastinate keeps its queries.sql): the files stay plain SQL a reader can run in `sqlite3`, and the
Python modules refer to statements by name. Comments between statements document them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from .errors import StoreError

SQL_DIR = Path(__file__).resolve().parent / "sql"

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$")


def parse_queries(text: str, source: str) -> dict[str, str]:
    """The statements of one SQL file by name, without their final `;`.

    Raises:
        StoreError: A name appears twice or a statement does not end with `;`.
    """
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        match = _NAME.match(line.strip())
        if name is None:
            if match:
                name, lines = match.group(1), []
                if name in queries:
                    raise StoreError(f"{source}: the query {name!r} is defined twice")
            continue
        if match:
            raise StoreError(f"{source}: the query {name!r} does not end with ';'")
        lines.append(line)
        if line.rstrip().endswith(";"):
            queries[name] = "\n".join(lines).rstrip()[:-1]
            name = None
    if name is not None:
        raise StoreError(f"{source}: the query {name!r} does not end with ';'")
    return queries


@functools.cache
def queries(group: str) -> Mapping[str, str]:
    """The statements of `sql/<group>.sql` by name.

    Raises:
        StoreError: The file is missing (an incomplete installation) or malformed.
    """
    path = SQL_DIR / f"{group}.sql"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreError(
            f"the store's query file {path} is missing: "
            "this installation of tiercel is incomplete; reinstall it"
        ) from None
    return MappingProxyType(parse_queries(text, path.name))


class Queries:
    """The statements of one `sql/<group>.sql` file, read on first use (not at import, so that a
    missing file is a StoreError where the store is used)."""

    def __init__(self, group: str) -> None:
        self.group = group

    def __getitem__(self, name: str) -> str:
        return queries(self.group)[name]
