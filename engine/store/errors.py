"""The errors the store raises."""

from __future__ import annotations


class StoreError(Exception):
    """A store operation failed (SQLite error, full disk, read-only store, bad argument)."""


class StoreLockedError(StoreError):
    """The database is owned by another Tiercel process.

    Attributes:
        pid: The pid written in the lock file by the owner, when it could be read.
    """

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class AlreadyFiredError(Exception):
    """A trigger date that already fired: the execution of this second fire is not stored."""
