"""Kestra's namespace files on the local disk: <flows folder>/_files/<namespace>/<path>.

The `NamespaceFiles` service the worker gives to the namespace.* tasks. Every namespace and path
comes from flow text: a namespace is one folder name, a path is checked by `safe_relative`, and
the target, with symlinks resolved, must stay inside its namespace's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..internal_storage import StorageError, safe_relative, write_into
from ..internal_storage.folders import DIR_MODE, inside, walk_files
from ..internal_storage.names import check_segment
from .services import Conflict, NamespaceFileExistsError


class NamespaceFolder:
    """The namespace files under one root folder (the flows folder's `_files`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, namespace: str) -> Path:
        return self.root / check_segment(namespace, "Namespace")

    def _target(self, namespace: str, path: str) -> Path:
        folder = self._folder(namespace)
        target = folder.joinpath(*safe_relative(path).parts)
        if folder.exists() and not inside(target, folder.resolve()):
            raise StorageError(f"Namespace file '{path}' refused: path traversal (it resolves outside)")
        return target

    def list_files(self, namespace: str) -> list[str]:
        folder = self._folder(namespace)
        if not folder.is_dir():
            return []
        return sorted(relative.as_posix() for relative in walk_files(folder, folder.resolve()))

    def read_file(self, namespace: str, path: str) -> bytes:
        target = self._target(namespace, path)
        try:
            return target.read_bytes()
        except OSError as error:
            raise StorageError(f"Cannot read namespace file '{path}': {error.strerror}") from error

    def write_file(self, namespace: str, path: str, data: bytes, conflict: Conflict) -> bool:
        target = self._target(namespace, path)
        if target.exists():
            if conflict is Conflict.SKIP:
                return False
            if conflict is Conflict.ERROR:
                raise NamespaceFileExistsError(
                    f"File '/{path}' already exists in namespace '{namespace}' and conflict is set to ERROR"
                )
        folder = self._folder(namespace)
        if not folder.is_dir():
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            folder.mkdir(mode=DIR_MODE, exist_ok=True)
        write_into(folder, path, data)
        return True

    def delete_file(self, namespace: str, path: str) -> bool:
        target = self._target(namespace, path)
        if target.is_dir() and not target.is_symlink():
            raise StorageError(f"Namespace file '{path}' is a folder, not a file")
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            raise StorageError(f"Cannot delete namespace file '{path}': {error.strerror}") from error
        return True

    def local_path(self, namespace: str, path: str) -> Path:
        return self._target(namespace, path)

    def local_folder(self, namespace: str) -> Path | None:
        folder = self._folder(namespace)
        return folder if folder.is_dir() else None

    def delete_empty_folder(self, namespace: str, path: str) -> bool:
        target = self._target(namespace, path)
        if target.is_symlink() or not target.is_dir():
            return False
        try:
            os.rmdir(target)
        except OSError:  # not empty (or gone meanwhile)
            return False
        return True
