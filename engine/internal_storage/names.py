"""The lexical checks every storage URI segment and working-folder file name goes through.

A name is refused for an empty or ``.``/``..`` segment, an absolute path, a backslash, a NUL or
another control character: each could reach outside its folder or deceive someone reading it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class StorageError(Exception):
    """A storage operation failed or was refused; the message names the URI or file name."""


def segment_problem(segment: str) -> str | None:
    """Why a single path segment is unsafe, or None when it is fine."""
    if segment == "":
        return "path traversal (empty segment)"
    if segment in (".", ".."):
        return f"path traversal ('{segment}' segment)"
    if "\\" in segment:
        return "path traversal (backslash)"
    if "/" in segment:
        return "path traversal ('/' inside a name)"
    if "\x00" in segment:
        return "path traversal (NUL character)"
    if _CONTROL.search(segment):
        return "control character in a name"
    return None


def check_segment(value: str, what: str) -> str:
    """Return `value` when it is a safe single segment; `what` names it in the error."""
    if not isinstance(value, str):
        raise StorageError(f"{what} must be text, not {type(value).__name__}")
    problem = segment_problem(value)
    if problem is not None:
        raise StorageError(f"{what} '{value}' refused: {problem}")
    return value


def safe_relative(name: str) -> PurePosixPath:
    """Check a relative file name taken from a flow and return it normalised.

    Used for ``inputFiles`` keys, ``outputFiles`` matches and file names given to the storage.
    ``./a`` and ``a//b/`` are normalised to ``a`` and ``a/b``.

    Args:
        name: The relative name, with ``/`` as separator.

    Returns:
        The normalised relative path.

    Raises:
        StorageError: For an empty name, an absolute path (including a Windows drive), a ``..``
            segment, a backslash, a NUL or another control character.
    """
    if not isinstance(name, str):
        raise StorageError(f"File name must be text, not {type(name).__name__}")
    if name == "":
        raise StorageError("File name '' refused: the name is empty")
    if name.startswith("/") or _WINDOWS_DRIVE.match(name):
        raise StorageError(f"File name '{name}' refused: path traversal (absolute path)")
    if "\\" in name:
        # On Windows '..\\x' climbs; on POSIX it is a confusing literal name. Refuse both.
        raise StorageError(f"File name '{name}' refused: path traversal (backslash)")
    if "\x00" in name:
        raise StorageError(f"File name '{name}' refused: path traversal (NUL character)")
    if _CONTROL.search(name):
        raise StorageError(f"File name '{name!r}' refused: control character in a name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise StorageError(f"File name '{name}' refused: path traversal ('..' segment)")
    if not parts:
        raise StorageError(f"File name '{name}' refused: it names the folder itself, not a file")
    return PurePosixPath(*parts)
