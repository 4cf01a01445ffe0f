"""The PostgreSQL writer: the SQLite writer's group commit over a psycopg connection.

`PostgresWriter.run_batch` runs the requests queued so far in one transaction, each in its own
savepoint so that one failing request does not take the others down, and commits once: a request's
awaitable resolves after that commit, as on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from ..errors import StoreError
from ..writer import Outcome, WriteFn
from .connection import SyncConnection


def failure(exc: BaseException) -> Outcome:
    if isinstance(exc, psycopg.Error):
        return (False, StoreError(str(exc).strip()))
    return (False, exc)


class PostgresWriter:
    """The writer connection and the thread it lives on; every method runs on that thread."""

    def __init__(self, conn: SyncConnection) -> None:
        self.conn = conn
        self.commits = 0

    def run_batch(self, fns: Sequence[WriteFn]) -> list[Outcome]:
        """Run the requests in one transaction, each in a savepoint; commit once."""
        conn = self.conn
        try:
            conn.run("BEGIN")
            outcomes: list[Outcome] = []
            for fn in fns:
                conn.run("SAVEPOINT request")
                try:
                    result: Any = fn(conn)  # type: ignore[arg-type]
                except Exception as exc:
                    conn.run("ROLLBACK TO SAVEPOINT request")
                    conn.run("RELEASE SAVEPOINT request")
                    outcomes.append(failure(exc))
                else:
                    conn.run("RELEASE SAVEPOINT request")
                    outcomes.append((True, result))
            conn.run("COMMIT")
        except psycopg.Error as exc:
            self._rollback()
            if len(fns) == 1:
                return [failure(exc)]
            # Something failed the whole batch (a lost connection): each request alone, so that
            # only the requests that cannot be stored fail.
            return [self.run_batch([fn])[0] for fn in fns]
        self.commits += 1
        return outcomes

    def _rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.run("ROLLBACK")
        except psycopg.Error:
            pass

    def close(self) -> None:
        self.conn.close()
