"""The files of executions shared by the machines of a cluster, with a local copy on each.

A store that several machines use (PostgreSQL) keeps each file written to the internal storage
(`SharedFiles`), and is the truth about them; the local folder holds copies: a file is written
there and to the shared store, and a machine reads its local copy once it is the stored one,
fetching it first when it is missing or stale, and dropping it when the stored file was deleted. A
stored file carries a stamp (when it was written, in nanoseconds), given to the local copy as its
modification time, so that one look at the stored stamp tells whether the copy is current.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from .folders import FILE_MODE, write_fd
from .names import StorageError

# A shared file being fetched or stored is written beside its place under this prefix, then renamed
# to it.
SCRATCH_PREFIX = ".fetch-"


class SharedFiles(Protocol):
    """Files by their normalised ``kestra:///`` URI, in a store every machine reaches.

    Each call raises StorageError when the store cannot be reached.
    """

    def put(self, uri: str, source: BinaryIO) -> int:
        """Store (or replace) the file read from `source`; its new stamp."""
        ...

    def stamp(self, uri: str) -> int | None:
        """The stamp of the stored file, None when there is none."""
        ...

    def fetch(self, uri: str, target: BinaryIO) -> int | None:
        """Write the stored file into `target`; its stamp, None (and nothing written) when there is
        none."""
        ...

    def files(self, uri: str) -> dict[str, int]:
        """The stored file at `uri` or the files under it (a folder), sorted, with their stamps."""
        ...

    def delete(self, uri: str) -> int:
        """Delete the stored file at `uri` or the files under it; how many there were."""
        ...


# Makes the parent folders of a local copy, as private as the storage folder's.
MakeParents = Callable[[], object]


def refresh(shared: SharedFiles, uri: str, target: Path, parents: MakeParents) -> None:
    """Make the local file `target` the stored file `uri`: fetched into a new file beside it (then
    renamed over it) unless it already is the stored one, removed when there is no stored one.

    Raises:
        StorageError: When the store cannot be reached or the local file cannot be written.
    """
    settle(shared, uri, target, parents, shared.stamp(uri))


def settle(shared: SharedFiles, uri: str, target: Path, parents: MakeParents, stamp: int | None) -> None:
    """`refresh` for a file whose stored stamp was just read (None: not stored)."""
    try:
        local = target.lstat()
    except FileNotFoundError:
        local = None
    except OSError as error:
        raise StorageError(f"Cannot read '{uri}': {error.strerror}") from error
    if local is not None and stat.S_ISREG(local.st_mode) and local.st_mtime_ns == stamp:
        return
    if stamp is None:
        if local is not None and stat.S_ISREG(local.st_mode):
            _drop(target, uri)
        return
    try:
        parents()
        fd, scratch = tempfile.mkstemp(prefix=SCRATCH_PREFIX, dir=target.parent)
    except OSError as error:
        raise StorageError(f"Cannot fetch '{uri}' into the storage folder: {error.strerror}") from error
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            found = shared.fetch(uri, out)
        if found is None:  # deleted since its stamp was read
            if local is not None and stat.S_ISREG(local.st_mode):
                _drop(target, uri)
            return
        os.utime(scratch, ns=(found, found))
        os.replace(scratch, target)
        scratch = ""
    except OSError as error:
        raise StorageError(f"Cannot fetch '{uri}' into the storage folder: {error.strerror}") from error
    finally:
        if scratch:
            with contextlib.suppress(OSError):
                os.unlink(scratch)


def _drop(target: Path, uri: str) -> None:
    """Remove the local copy of a file no longer stored."""
    try:
        target.unlink(missing_ok=True)
    except OSError as error:
        raise StorageError(f"Cannot remove the copy of '{uri}': {error.strerror}") from error


def store_file(shared: SharedFiles, uri: str, target: Path, data: bytes | BinaryIO, label: str) -> None:
    """Write `data` as the stored file `uri` and as its local copy `target` (whose parent exists):
    written into a new file beside it, stored, stamped, then renamed over it, so that a reader of
    the copy meanwhile finds the old one or the new one, never a mix, and a fetch of the old one
    cannot end up stamped as the new.

    Raises:
        StorageError: When the store cannot be reached or the local file cannot be written.
    """
    if target.is_symlink():
        raise StorageError(f"{label} refused: refusing to write through a symlink")
    if target.is_dir():
        raise StorageError(f"{label} refused: a folder already has that name")
    try:
        fd, scratch = tempfile.mkstemp(prefix=SCRATCH_PREFIX, dir=target.parent)
    except OSError as error:
        raise StorageError(f"{label}: cannot write the file ({error.strerror})") from error
    try:
        os.fchmod(fd, FILE_MODE)
        write_fd(fd, data, label)
        with open(scratch, "rb") as handle:
            stamp = shared.put(uri, handle)
        os.utime(scratch, ns=(stamp, stamp))
        os.replace(scratch, target)
        scratch = ""
    except OSError as error:
        raise StorageError(f"Cannot store '{uri}': {error.strerror}") from error
    finally:
        if scratch:
            with contextlib.suppress(OSError):
                os.unlink(scratch)
