"""Kestra's internal storage on a private local folder: the files of executions."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from .folders import DIR_MODE, inside, make_parents, open_new_file, walk_files, write_fd
from .names import StorageError, safe_relative, segment_problem
from .shared import SCRATCH_PREFIX, SharedFiles, refresh, settle, store_file
from .uris import check_readable, execution_uri, input_uri, join_uri, parse_uri, task_uri

DEFAULT_MAX_BYTES = 100 * 1024 * 1024


STORAGE_VARIABLE = "TIERCEL_STORAGE"


def storage_root(path: Path) -> Path:
    """The folder of the `kestra://` files of the store named after `path` (`Store.path`):
    TIERCEL_STORAGE when set (a folder shared by the machines of a PostgreSQL store, say), else
    `storage/` beside the store's local files."""
    shared = os.environ.get(STORAGE_VARIABLE, "").strip()
    return Path(shared).expanduser().absolute() if shared else path.parent / "storage"


def open_storage(path: Path, shared: SharedFiles | None) -> Storage:
    """The internal storage of the store named after `path`: TIERCEL_STORAGE's folder when it is set
    (a folder the machines share themselves), else the folder beside the store, this machine's copy
    of the store's `shared` files when it shares them (a PostgreSQL store)."""
    given = bool(os.environ.get(STORAGE_VARIABLE, "").strip())
    return Storage(storage_root(path), shared=None if given else shared)


def _local_files(segments: tuple[str, ...], target: Path, real_root: Path) -> list[str]:
    """The URIs of the files of the storage folder at or under `target`, symlinks left out."""
    if target.is_file() and not target.is_symlink():
        return [join_uri(segments)]
    if not target.is_dir():
        return []
    uris: list[str] = []
    for relative in walk_files(target, real_root):
        if (target / relative).is_symlink() or relative.name.startswith(SCRATCH_PREFIX):
            continue  # (a scratch file is a shared file being fetched or stored)
        parts = (*segments, *relative.parts)
        if all(segment_problem(part) is None for part in parts):
            uris.append(join_uri(parts))
    return uris


class Storage:
    """Kestra's internal storage kept in a private local folder.

    Attributes:
        root: The storage folder (absolute); created with mode 0700, files are written 0600.
        shared: Where the machines of a cluster share the files, when they do: the folder then
            holds this machine's copies of them (see `shared.py`).
    """

    def __init__(self, root: Path, shared: SharedFiles | None = None) -> None:
        """Create (or reuse) the storage folder.

        Args:
            root: The folder, usually beside the database.
            shared: The store the files are shared through, if any.
        """
        self.root: Path = Path(os.path.abspath(root))
        self.shared = shared
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, DIR_MODE)  # explicit, because mkdir's mode is filtered by the umask
            self._real_root = self.root.resolve(strict=True)
        except OSError as error:
            raise StorageError(f"Cannot create the storage folder '{self.root}': {error.strerror}") from error

    # URIs -------------------------------------------------------------------------------------------

    # A URI does not depend on the folder: the scheme and the reading rules live in uris.py.

    def execution_uri(self, namespace: str, flow_id: str, execution_id: str) -> str:
        """The folder URI of an execution: ``kestra:///<ns as folders>/<flowId>/executions/<id>``."""
        return execution_uri(namespace, flow_id, execution_id)

    def task_uri(
        self, namespace: str, flow_id: str, execution_id: str, task_id: str, task_run_id: str
    ) -> str:
        """The folder URI of a task run: ``<execution>/tasks/<taskId>/<taskRunId>``."""
        return task_uri(namespace, flow_id, execution_id, task_id, task_run_id)

    def input_uri(self, namespace: str, flow_id: str, execution_id: str, input_id: str) -> str:
        """The folder URI of a FILE input: ``<execution>/inputs/<inputId>``."""
        return input_uri(namespace, flow_id, execution_id, input_id)

    def check_readable(self, uri: str, namespace: str, trigger: Mapping[str, Any] | None = None) -> None:
        """Refuse a file that an execution of `namespace` may not read (see :func:`.uris.check_readable`).

        Raises:
            StorageError: For a malformed URI or a file outside what the execution may read.
        """
        check_readable(uri, namespace, trigger)

    def _locate(self, uri: str) -> tuple[tuple[str, ...], Path]:
        segments = parse_uri(uri)
        target = self.root.joinpath(*segments)
        if not inside(target, self._real_root):
            raise StorageError(
                f"Storage URI '{uri}' refused: path traversal (it resolves outside the storage folder)"
            )
        return segments, target

    def path(self, uri: str) -> Path:
        """The local path of a URI; it must resolve inside :attr:`root` but may not exist yet. A
        shared file is first copied there, unless the copy there is current.

        Raises:
            StorageError: For another scheme, a malformed URI or any path traversal, or a shared
                file that cannot be fetched.
        """
        segments, target = self._locate(uri)
        if self.shared is not None and segments and not target.is_dir():
            refresh(self.shared, join_uri(segments), target, self._parents(segments))
        return target

    def _parents(self, segments: tuple[str, ...]) -> Callable[[], object]:
        """What makes the parent folders of a local copy, when one is fetched."""
        return lambda: make_parents(
            self.root, self._real_root, segments, f"Storage URI '{join_uri(segments)}'"
        )

    # writing ----------------------------------------------------------------------------------------

    def _put(self, base_uri: str, name: str, data: bytes | BinaryIO) -> str:
        parts = (*parse_uri(base_uri), *safe_relative(name).parts)
        uri = join_uri(parts)
        self._locate(uri)  # refuses a target that resolves outside through symlinks
        label = f"Storage URI '{uri}'"
        if self.shared is not None:
            target = make_parents(self.root, self._real_root, parts, label)
            store_file(self.shared, uri, target, data, label)
            return uri
        write_fd(open_new_file(self.root, self._real_root, parts, label), data, label)
        return uri

    def put_bytes(self, base_uri: str, name: str, data: bytes) -> str:
        """Store bytes as ``base_uri/name`` and return the file's ``kestra:///`` URI.

        Raises:
            StorageError: For an unsafe URI or name, or when writing fails.
        """
        return self._put(base_uri, name, data)

    def put_file(self, base_uri: str, name: str, source: Path) -> str:
        """Copy a local file to ``base_uri/name`` and return the file's ``kestra:///`` URI.

        Raises:
            StorageError: For an unsafe URI or name, a missing source or a failed copy.
        """
        try:
            handle = open(source, "rb")  # noqa: SIM115 - closed below, opened first to fail early
        except OSError as error:
            raise StorageError(f"Cannot store '{source}' as '{name}': {error.strerror}") from error
        with handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise StorageError(f"Cannot store '{source}' as '{name}': it is not a regular file")
            return self._put(base_uri, name, handle)

    # reading ----------------------------------------------------------------------------------------

    def exists(self, uri: str) -> bool:
        """Whether a file or folder exists at the URI (traversal attempts raise, they do not hide)."""
        target = self.path(uri)
        if self.shared is None:
            return target.exists()
        return target.is_file() or bool(self.shared.files(join_uri(parse_uri(uri))))  # files, not folders

    def size(self, uri: str) -> int:
        """The size of a stored file in bytes.

        Raises:
            StorageError: When the file is missing or is a folder.
        """
        target = self.path(uri)
        try:
            info = target.stat()
        except FileNotFoundError:
            raise StorageError(f"File '{uri}' does not exist in the internal storage") from None
        if not stat.S_ISREG(info.st_mode):
            raise StorageError(f"'{uri}' is a folder, not a file")
        return info.st_size

    def read_bytes(self, uri: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """Read a stored file, refusing files larger than ``max_bytes``.

        Raises:
            StorageError: When the file is missing, is a folder or is over the cap.
        """
        target = self.path(uri)
        try:
            with open(target, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > max_bytes:
                    raise StorageError(
                        f"File '{uri}' is {size} bytes, over the read limit of {max_bytes} bytes"
                    )
                data = handle.read(max_bytes + 1)  # the file may grow after fstat
        except FileNotFoundError:
            raise StorageError(f"File '{uri}' does not exist in the internal storage") from None
        except IsADirectoryError:
            raise StorageError(f"'{uri}' is a folder, not a file") from None
        except OSError as error:
            raise StorageError(f"Cannot read '{uri}': {error.strerror}") from error
        if len(data) > max_bytes:
            raise StorageError(f"File '{uri}' is over the read limit of {max_bytes} bytes")
        return data

    def read_text(self, uri: str, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
        """Read a stored file as UTF-8 text.

        Raises:
            StorageError: As :meth:`read_bytes`, or when the content is not UTF-8.
        """
        data = self.read_bytes(uri, max_bytes)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise StorageError(f"File '{uri}' is not UTF-8 text (byte {error.start})") from None

    def list(self, base_uri: str) -> list[str]:
        """The URIs of the files under a prefix, sorted; a file URI lists itself, a missing one nothing.

        Symlinks are skipped: the storage never creates them.
        """
        segments, target = self._locate(base_uri)
        if self.shared is not None:
            return list(self.shared.files(join_uri(segments)))
        return sorted(_local_files(segments, target, self._real_root))

    def mirror(self, base_uri: str) -> Path | None:
        """The local folder of a folder URI, holding its files as they are stored: each shared file
        fetched when its copy is missing or stale, the copies of deleted ones dropped. None when
        the folder holds no file.

        Raises:
            StorageError: As :meth:`path`.
        """
        segments, target = self._locate(base_uri)
        if self.shared is not None:
            stored = self.shared.files(join_uri(segments))
            for uri in {*_local_files(segments, target, self._real_root), *stored}:
                found, path = self._locate(uri)
                settle(self.shared, uri, path, self._parents(found), stored.get(uri))
        return target if target.is_dir() and _local_files(segments, target, self._real_root) else None

    # deleting ---------------------------------------------------------------------------------------

    def delete(self, uri: str) -> bool:
        """Delete one stored file; return False when it did not exist.

        Raises:
            StorageError: For a folder (use :meth:`delete_execution`) or a failed delete.
        """
        segments, target = self._locate(uri)
        if not segments:
            raise StorageError(f"Storage URI '{uri}' refused: cannot delete the storage folder")
        if target.is_dir() and not target.is_symlink():
            raise StorageError(f"'{uri}' is a folder, not a file")
        shared = False
        if self.shared is not None:
            exact = join_uri(segments)
            if any(found != exact for found in self.shared.files(exact)):
                raise StorageError(f"'{uri}' is a folder, not a file")
            shared = self.shared.delete(exact) > 0
        try:
            target.unlink()
        except FileNotFoundError:
            return shared
        except OSError as error:
            raise StorageError(f"Cannot delete '{uri}': {error.strerror}") from error
        return True

    def delete_execution(self, namespace: str, flow_id: str, execution_id: str) -> int:
        """Delete every file of an execution (task outputs and inputs); return how many were removed.

        Empty namespace and flow folders are left in place so concurrent writers never lose a parent.
        """
        uri = self.execution_uri(namespace, flow_id, execution_id)
        shared = self.shared.delete(uri) if self.shared is not None else 0
        target = self._locate(uri)[1]
        if target.is_symlink() or not target.is_dir():
            return shared
        count = 0
        for folder, dirs, files in os.walk(target, followlinks=False):
            count += len(files)
            count += sum(1 for name in dirs if os.path.islink(os.path.join(folder, name)))
        try:
            shutil.rmtree(target)
        except OSError as error:
            raise StorageError(f"Cannot delete '{uri}': {error.strerror}") from error
        return max(count, shared)
