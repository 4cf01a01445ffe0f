"""The PostgreSQL writer: the SQLite writer's group commit over a psycopg connection.

`PostgresWriter.run_batch` runs the requests queued so far in one transaction, each in its own
savepoint so that one failing request does not take the others down, and commits once: a request's
awaitable resolves after that commit, as on SQLite.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from ..errors import StoreError, StoreLockedError
from ..writer import Outcome, WriteFn
from .connection import SyncConnection

#: How long a lost writer connection is tried again before its writes fail.
RECONNECT_SECONDS = 30.0


def failure(exc: BaseException) -> Outcome:
    if isinstance(exc, psycopg.Error):
        return (False, StoreError(str(exc).strip()))
    return (False, exc)


class PostgresWriter:
    """The writer connection and the thread it lives on; every method runs on that thread.

    A lost connection (the server restarted, a network cut) is opened again, with growing pauses
    for up to `RECONNECT_SECONDS`, taking the owner's lock again, and the batch runs again, unless
    the connection went down during its COMMIT and the server says that transaction committed.
    """

    def __init__(self, conn: SyncConnection, reconnect: Callable[[], SyncConnection]) -> None:
        self.conn = conn
        self.commits = 0
        self._reconnect_fn = reconnect
        # (transaction id, outcomes) of the batch being committed, until its COMMIT returns.
        self._committing: tuple[int, list[Outcome]] | None = None

    def run_batch(self, fns: Sequence[WriteFn]) -> list[Outcome]:
        """Run the requests in one transaction, each in a savepoint; commit once."""
        while True:
            if self.conn.raw.closed:
                try:
                    self._reconnect()
                except StoreError as exc:
                    self._committing = None
                    return [(False, exc)] * len(fns)
                done = self._committed_before_the_loss()
                if done is not None:
                    self.commits += 1
                    return done
            try:
                outcomes = self._transaction(fns)
            except psycopg.Error as exc:
                self._rollback()
                if self.conn.raw.closed:
                    continue  # the connection went down: open it again and run the batch again
                if len(fns) == 1:
                    return [failure(exc)]
                # Something failed the whole batch: each request alone, so that only the requests
                # that cannot be stored fail.
                return [self.run_batch([fn])[0] for fn in fns]
            self.commits += 1
            return outcomes

    def _transaction(self, fns: Sequence[WriteFn]) -> list[Outcome]:
        conn = self.conn
        conn.run("BEGIN")
        txid = int(conn.raw.execute("SELECT txid_current()").fetchone()[0])
        outcomes: list[Outcome] = []
        for fn in fns:
            conn.run("SAVEPOINT request")
            try:
                result: Any = fn(conn)  # type: ignore[arg-type]
            except Exception as exc:
                if conn.raw.closed:
                    raise
                conn.run("ROLLBACK TO SAVEPOINT request")
                conn.run("RELEASE SAVEPOINT request")
                outcomes.append(failure(exc))
            else:
                conn.run("RELEASE SAVEPOINT request")
                outcomes.append((True, result))
        self._committing = (txid, outcomes)
        conn.run("COMMIT")
        self._committing = None
        return outcomes

    def _committed_before_the_loss(self) -> list[Outcome] | None:
        """The outcomes of the batch whose COMMIT the lost connection cut, when the server did
        commit it (so it must not run again); None when it did not, or no COMMIT was cut."""
        if self._committing is None:
            return None
        (txid, outcomes), self._committing = self._committing, None
        status = self.conn.raw.execute("SELECT txid_status(%s)", [txid]).fetchone()[0]
        return outcomes if status == "committed" else None

    def _reconnect(self) -> None:
        """A new writer connection, retried with growing pauses; StoreError when it cannot be had."""
        deadline = time.monotonic() + RECONNECT_SECONDS
        pause = 0.1
        while True:
            try:
                self.conn = self._reconnect_fn()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() + pause > deadline:
                    raise StoreError(f"lost the connection to the store: {str(exc).strip()}") from exc
            except StoreLockedError as exc:
                # The server may not have ended this engine's lost session yet, which holds the lock:
                # wait for it. Another engine holding it took the store over: this one has lost it.
                if exc.pid != os.getpid():
                    raise StoreError(f"this engine lost the store to another one: {exc}") from exc
                if time.monotonic() + pause > deadline:
                    raise StoreError(f"the store's lock is still held by a lost connection: {exc}") from exc
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _rollback(self) -> None:
        try:
            if not self.conn.raw.closed and self.conn.in_transaction:
                self.conn.run("ROLLBACK")
        except psycopg.Error:
            pass

    def close(self) -> None:
        # Let go of the owner's lock before the connection ends: the server ends a closed session a
        # moment later, and an engine opening the store meanwhile would find it still held.
        if not self.conn.raw.closed:
            with contextlib.suppress(psycopg.Error):
                self.conn.run("SELECT pg_advisory_unlock_all()")
        self.conn.close()
