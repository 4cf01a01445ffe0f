"""Deleting every file of an execution and naming what went, as Kestra's storage answers it."""

from __future__ import annotations

import os
from pathlib import Path

from .storage import Storage
from .uris import join_uri, parse_uri


def purge_execution(storage: Storage, namespace: str, flow_id: str, execution_id: str) -> list[str]:
    """Delete the execution's folder; return the URIs of every file and folder deleted.

    As Kestra's local storage (``deleteByPrefix``): the execution folder itself and everything below
    it, in reverse path order (a folder after its contents); nothing for an execution without files.

    Raises:
        StorageError: For an unsafe namespace, flow or execution id, or a failed delete.
    """
    uri = storage.execution_uri(namespace, flow_id, execution_id)
    root = storage.path(uri)
    if root.is_symlink() or not root.is_dir():
        return []
    base = parse_uri(uri)
    found: list[tuple[str, ...]] = [()]
    for folder, dirs, files in os.walk(root, followlinks=False):
        relative = Path(folder).relative_to(root).parts
        found.extend((*relative, name) for name in (*dirs, *files))
    found.sort(key="/".join, reverse=True)
    uris = [join_uri((*base, *parts)) for parts in found]
    storage.delete_execution(namespace, flow_id, execution_id)
    return uris
