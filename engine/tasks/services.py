"""What task handlers (plugins too) may use of the store: small protocols, one per need.

A handler never receives the Store: the KV tasks see a `KeyValueStore`, log.Fetch a `LogReader`.
The SQLite store satisfies both structurally; another backend only has to provide these methods.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from ..model import LogEntry


class KeyValueStore(Protocol):
    """JSON values by namespace and key, with an optional time to live.

    Failures (a key that exists with `overwrite=False`, a full disk) raise `StoreError`
    (tiercel.engine.store).
    """

    async def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        ttl: timedelta | None = None,
        overwrite: bool = True,
    ) -> None:
        """Set a key; with `overwrite` False, fail if the key holds a value that has not expired."""
        ...

    async def kv_get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """The value of a key as (found, value); an expired key is not found."""
        ...

    async def kv_delete(self, namespace: str, key: str) -> bool:
        """Delete a key; return whether it held a value that had not expired."""
        ...

    async def kv_keys(self, namespace: str, prefix: str | None = None) -> list[str]:
        """The keys of a namespace that have not expired, sorted, optionally only those with a prefix."""
        ...


class LogReader(Protocol):
    """The stored log lines of executions."""

    async def flush(self) -> None:
        """Wait until every line written so far can be read."""
        ...

    async def logs(self, execution_id: str, *, level: str | None = None) -> list[tuple[int, LogEntry]]:
        """The lines of an execution at `level` or above, oldest first, as (row id, entry)."""
        ...
