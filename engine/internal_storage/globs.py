"""The files of a working folder that Kestra ``outputFiles`` globs select."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from .folders import walk_files
from .names import StorageError


@functools.lru_cache(maxsize=256)
def glob_regex(pattern: str, what: str = "outputFiles pattern") -> re.Pattern[str]:
    """Translate a glob with Java's ``PathMatcher`` semantics, which Kestra uses for outputFiles.

    ``*`` and ``?`` stay within one folder, ``**`` crosses folders, ``[...]`` (``[!...]`` negated)
    never matches ``/``, ``{a,b}`` is an alternation and ``\\`` escapes. So ``**/*.csv`` needs at
    least one folder, as on Kestra; ``**.csv`` matches at any depth.
    """
    out: list[str] = []
    in_group = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise StorageError(f"{what} '{pattern}' is invalid: it ends with '\\'")
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                raise StorageError(f"{what} '{pattern}' is invalid: '[' is never closed")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            body = "".join("\\" + c if c in "\\^[]" else c for c in body if c != "/")
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = end + 1
            continue
        elif char == "{":
            if in_group:
                raise StorageError(f"{what} '{pattern}' is invalid: '{{' groups cannot nest")
            out.append("(?:")
            in_group = True
        elif char == "}" and in_group:
            out.append(")")
            in_group = False
        elif char == "," and in_group:
            out.append("|")
        else:
            out.append(re.escape(char))
        i += 1
    if in_group:
        raise StorageError(f"{what} '{pattern}' is invalid: '{{' is never closed")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as error:
        raise StorageError(f"{what} '{pattern}' is invalid: {error}") from error


def files_matching(directory: Path, patterns: Sequence[str]) -> list[PurePosixPath]:
    """Find the files of a working folder that Kestra ``outputFiles`` globs select.

    Args:
        directory: The task working folder.
        patterns: Globs relative to ``directory`` such as ``*.csv``, ``out/**`` or ``report.txt``
            (Java ``PathMatcher`` semantics, see :func:`glob_regex`); a leading ``./`` is ignored.

    Returns:
        Sorted, distinct relative paths of regular files (and of symlinks to regular files that stay
        inside ``directory``) matching any pattern.

    Raises:
        StorageError: For a malformed pattern.
    """
    regexes = []
    for pattern in patterns:
        cleaned = pattern
        while cleaned.startswith("./"):
            cleaned = cleaned[2:]
        regexes.append(glob_regex(cleaned))
    if not regexes or not directory.is_dir():
        return []
    real_base = directory.resolve()
    found = {
        relative
        for relative in walk_files(directory, real_base)
        if any(regex.fullmatch(relative.as_posix()) for regex in regexes)
    }
    return sorted(found)
