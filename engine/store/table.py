"""The base of the store's parts: each part owns a group of tables and their queries."""

from __future__ import annotations

from .database import Database


class Table:
    """A group of tables over one open database; its queries are in `sql/<group>.sql`."""

    def __init__(self, db: Database) -> None:
        self._db = db
