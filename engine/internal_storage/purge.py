"""Deleting every file of an execution and naming what went, as Kestra's storage answers it."""

from __future__ import annotations

from .storage import Storage
from .uris import join_uri, parse_uri


def purge_execution(storage: Storage, namespace: str, flow_id: str, execution_id: str) -> list[str]:
    """Delete the execution's files; return the URIs of every file and folder deleted.

    As Kestra's local storage (``deleteByPrefix``): the execution folder itself and everything below
    it that holds a file, in reverse path order (a folder after its contents); nothing for an
    execution without files.

    Raises:
        StorageError: For an unsafe namespace, flow or execution id, or a failed delete.
    """
    uri = storage.execution_uri(namespace, flow_id, execution_id)
    base = parse_uri(uri)
    found: set[tuple[str, ...]] = set()
    for file in storage.list(uri):
        parts = parse_uri(file)[len(base) :]
        found.update(parts[:end] for end in range(len(parts) + 1))  # the file and its folders
    if not found:
        return []
    storage.delete_execution(namespace, flow_id, execution_id)
    return [join_uri((*base, *parts)) for parts in sorted(found, key="/".join, reverse=True)]
