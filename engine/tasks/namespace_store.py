"""Kestra's namespace files in the internal storage, as Kestra keeps them: under
``kestra:///<namespace as folders>/_files/<path>``. The `NamespaceFiles` service of the machines of
a cluster, which share the storage through the store (`internal_storage.shared`); the flows folders
publish their `_files` there (engine.flows.publish). The store holds files, not folders: a folder
exists while a file is in it.
"""

from __future__ import annotations

from pathlib import Path

from ..internal_storage import Storage, StorageError, safe_relative
from ..internal_storage.uris import NAMESPACE_FILES, join_uri, namespace_files_uri, parse_uri
from .namespace_folder import NamespaceFolder
from .services import Conflict, NamespaceFileExistsError, NamespaceFiles


class StoredNamespaceFiles:
    """The namespace files of one internal storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def _uri(self, namespace: str, path: str) -> str:
        return join_uri((*parse_uri(namespace_files_uri(namespace)), *safe_relative(path).parts))

    def list_files(self, namespace: str) -> list[str]:
        base = parse_uri(namespace_files_uri(namespace))
        return sorted("/".join(parse_uri(uri)[len(base) :]) for uri in self.storage.list(join_uri(base)))

    def read_file(self, namespace: str, path: str) -> bytes:
        uri = self._uri(namespace, path)
        try:
            return self.storage.read_bytes(uri)
        except StorageError as error:
            raise StorageError(f"Cannot read namespace file '{path}': {error}") from None

    def write_file(self, namespace: str, path: str, data: bytes, conflict: Conflict) -> bool:
        uri = self._uri(namespace, path)
        if conflict is not Conflict.OVERWRITE and self.storage.path(uri).is_file():
            if conflict is Conflict.SKIP:
                return False
            raise NamespaceFileExistsError(
                f"File '/{path}' already exists in namespace '{namespace}' and conflict is set to ERROR"
            )
        *folder, name = parse_uri(uri)
        self.storage.put_bytes(join_uri(folder), name, data)
        return True

    def delete_file(self, namespace: str, path: str) -> bool:
        return self.storage.delete(self._uri(namespace, path))

    def delete_empty_folder(self, namespace: str, path: str) -> bool:
        return not self.storage.exists(self._uri(namespace, path))

    def local_path(self, namespace: str, path: str) -> Path:
        return self.storage.path(self._uri(namespace, path))

    def local_folder(self, namespace: str) -> Path | None:
        return self.storage.mirror(namespace_files_uri(namespace))


def namespace_files(storage: Storage | None, flows_dir: Path | None) -> NamespaceFiles | None:
    """Where this machine reads and writes namespace files: the internal storage when the machines
    share it through the store, else the flows folder's `_files`, when there is a flows folder."""
    if storage is not None and storage.shared is not None:
        return StoredNamespaceFiles(storage)
    return NamespaceFolder(flows_dir / NAMESPACE_FILES) if flows_dir is not None else None
