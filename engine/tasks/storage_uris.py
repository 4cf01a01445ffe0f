"""Internal-storage URIs in a script's program, made local files of its working folder.

As Kestra's script tasks do (ScriptService.replaceInternalStorage), every `kestra://` URI left in
the rendered commands or script is copied into the task's working folder and replaced by that
copy's absolute path, so that `cat {{ outputs.x.uri }}` reads the file. Each distinct URI is copied
once per task run. The copy keeps the stored file's extension (Kestra's is a random `.tmp` name):
tools that look at extensions read it the same way, and nothing that works on Kestra breaks.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath

from ..internal_storage import StorageError
from .base import TaskContext, TaskFailure

# Kestra's pattern: the scheme, then letters and digits of any script, and `-._+~#=/` (and `%`).
STORAGE_URI = re.compile(r"kestra://[-\w.+~#=/%]*")


def copy_stored_file(context: TaskContext, uri: str, target: Path) -> None:
    """Copy a stored file this execution may read to `target` (streamed, not held in memory).

    Raises:
        TaskFailure: For a malformed URI, a file of an execution this one may not read, a missing
            file or a folder.
    """
    storage = context.require_storage()
    try:
        storage.check_readable(uri, context.execution.namespace, context.execution.trigger)
        source = storage.path(uri)
        try:
            if not stat.S_ISREG(source.stat().st_mode):
                raise StorageError(f"'{uri}' is a folder, not a file")
        except FileNotFoundError:
            raise StorageError(f"File '{uri}' does not exist in the internal storage") from None
        shutil.copyfile(source, target)
    except StorageError as error:
        raise TaskFailure(str(error)) from None
    except OSError as error:
        raise TaskFailure(f"Cannot copy '{uri}' into the working folder: {error.strerror}") from None


class LocalCopies:
    """The local copies of one task run's URIs, in its working folder."""

    def __init__(self, context: TaskContext, folder: Path) -> None:
        self._context = context
        self._folder = folder
        self._copies: dict[str, str] = {}

    def replace(self, text: str) -> str:
        """`text` with each internal-storage URI replaced by the path of a local copy."""
        return STORAGE_URI.sub(lambda match: self._local(match.group()), text)

    def _local(self, uri: str) -> str:
        known = self._copies.get(uri)
        if known is not None:
            return known
        suffix = PurePosixPath(uri).suffix
        suffix = suffix if len(suffix) <= 16 else ""
        handle, name = tempfile.mkstemp(prefix="kestra-", suffix=suffix, dir=self._folder)
        os.close(handle)  # a unique name in the folder; the copy fills it
        copy_stored_file(self._context, uri, Path(name))
        self._copies[uri] = name
        return name
