"""Kestra's internal storage on a local folder, and safe file names inside task working folders.

Kestra addresses execution files with URIs such as
``kestra:///company/team/my_flow/executions/<executionId>/tasks/<taskId>/<taskRunId>/out.csv``
(the namespace's dots become folders). :class:`Storage` maps those URIs onto a private folder beside the
database; :func:`safe_relative`, :func:`write_into` and :func:`files_matching` handle the relative
names a flow gives for ``inputFiles`` and ``outputFiles``.

Every name and URI comes from flow text, so each one is checked twice: lexically (no ``..``, ``.``,
empty segment, backslash or control character) and physically (the path, with every symlink
resolved, must stay inside its folder). The threat is a flow reaching outside its folder by name;
processes running as the same user can touch the files anyway, so no effort is spent on races
against them.

URI form: only ``kestra:///path`` with three slashes, as Kestra writes them. The two-slash form
``kestra://a/b`` is refused rather than normalised, because Java's ``URI`` reads ``a`` as a host
and Kestra would silently drop it: the same flow must not address different files here and there.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

SCHEME = "kestra"
URI_PREFIX = "kestra:///"
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DIR_MODE = 0o700
FILE_MODE = 0o600

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 3986 sub-delims plus ':' and '@' may stay raw in a path segment; quote() keeps letters,
# digits and '_.-~' anyway, and encodes spaces, '%', '?', '#' and non-ASCII characters.
_SEGMENT_SAFE = "!$&'()*+,;=:@"
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_COPY_CHUNK = 1024 * 1024


class StorageError(Exception):
    """A storage operation failed or was refused; the message names the URI or file name."""


# --- names ------------------------------------------------------------------------------------------


def _segment_problem(segment: str) -> str | None:
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


def _check_segment(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise StorageError(f"{what} must be text, not {type(value).__name__}")
    problem = _segment_problem(value)
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


# --- writing inside a folder ------------------------------------------------------------------------


def _execution_file_of(segments: Sequence[str], namespace: Sequence[str]) -> bool:
    """Whether the URI segments name a file inside an execution of `namespace` (any flow)."""
    size = len(namespace)
    return (
        len(segments) > size + 3
        and tuple(segments[:size]) == tuple(namespace)
        and segments[size + 1] == "executions"
    )


def _inside(path: Path, real_base: Path) -> bool:
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False
    return resolved.is_relative_to(real_base)


def _open_new_file(base: Path, real_base: Path, parts: Sequence[str], label: str) -> int:
    """Create the parents of base/parts inside real_base and open the file for writing.

    Every existing parent is checked before it is used, so a symlinked folder pointing outside is
    refused before anything is created through it.
    """
    current = base
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            if not _inside(current, real_base) or not current.is_dir():
                raise StorageError(
                    f"{label} refused: path traversal (folder '{part}' is a symlink leaving it)"
                )
            continue
        try:
            current.mkdir(mode=DIR_MODE)
            os.chmod(current, DIR_MODE)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            if not current.is_dir():
                raise StorageError(f"{label} refused: '{part}' exists and is not a folder") from None
    target = current / parts[-1]
    if not _inside(target, real_base):
        raise StorageError(f"{label} refused: path traversal (it resolves outside its folder)")
    if target.is_symlink():
        raise StorageError(f"{label} refused: refusing to write through a symlink")
    if target.is_dir():
        raise StorageError(f"{label} refused: a folder already has that name")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, FILE_MODE)
    except OSError as error:
        # ELOOP here means a symlink appeared after the checks above.
        raise StorageError(f"{label}: cannot write the file ({error.strerror})") from error
    os.fchmod(fd, FILE_MODE)  # os.open's mode is filtered by the umask; an old file keeps its mode
    return fd


def _write_fd(fd: int, data: bytes | BinaryIO, label: str) -> None:
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, bytes):
                out.write(data)
            else:
                shutil.copyfileobj(data, out, _COPY_CHUNK)
    except OSError as error:
        raise StorageError(f"{label}: cannot write the file ({error.strerror})") from error


def write_into(directory: Path, name: str, data: bytes | str) -> Path:
    """Write a file inside ``directory``, creating parent folders, never escaping it.

    The name goes through :func:`safe_relative`; then the target, with symlinks resolved (existing
    symlinked parent folders included), must stay inside ``directory``. An existing symlink at the
    target is refused rather than followed. Files are written with mode 0600 because ``inputFiles``
    often hold rendered secrets.

    Args:
        directory: The folder to write into (a task working folder); it must exist.
        name: The relative file name from the flow.
        data: The content; text is encoded as UTF-8.

    Returns:
        The path written (``directory / name``, not resolved).

    Raises:
        StorageError: When the name is unsafe, the target leaves ``directory`` or writing fails.
    """
    relative = safe_relative(name)
    label = f"File name '{name}'"
    try:
        real_base = directory.resolve(strict=True)
    except (OSError, RuntimeError) as error:
        raise StorageError(f"{label}: folder '{directory}' does not exist") from error
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = _open_new_file(directory, real_base, relative.parts, label)
    _write_fd(fd, payload, label)
    return directory.joinpath(*relative.parts)


# --- outputFiles globs ------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
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
                raise StorageError(f"outputFiles pattern '{pattern}' is invalid: it ends with '\\'")
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                raise StorageError(f"outputFiles pattern '{pattern}' is invalid: '[' is never closed")
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
                raise StorageError(f"outputFiles pattern '{pattern}' is invalid: '{{' groups cannot nest")
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
        raise StorageError(f"outputFiles pattern '{pattern}' is invalid: '{{' is never closed")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as error:
        raise StorageError(f"outputFiles pattern '{pattern}' is invalid: {error}") from error


def _walk_files(directory: Path, real_base: Path) -> Iterable[PurePosixPath]:
    """Relative paths of regular files under directory; symlinked folders are not entered."""
    for current, _dirs, files in os.walk(directory, followlinks=False):
        folder = Path(current)
        relative_folder = PurePosixPath(folder.relative_to(directory).as_posix())
        for file_name in files:
            full = folder / file_name
            try:
                info = full.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                if not _inside(full, real_base) or not full.is_file():
                    continue
            elif not stat.S_ISREG(info.st_mode):
                continue
            yield relative_folder / file_name


def files_matching(directory: Path, patterns: Sequence[str]) -> list[PurePosixPath]:
    """Find the files of a working folder that Kestra ``outputFiles`` globs select.

    Args:
        directory: The task working folder.
        patterns: Globs relative to ``directory`` such as ``*.csv``, ``out/**`` or ``report.txt``
            (Java ``PathMatcher`` semantics, see :func:`_glob_regex`); a leading ``./`` is ignored.

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
        regexes.append(_glob_regex(cleaned))
    if not regexes or not directory.is_dir():
        return []
    real_base = directory.resolve()
    found = {
        relative
        for relative in _walk_files(directory, real_base)
        if any(regex.fullmatch(relative.as_posix()) for regex in regexes)
    }
    return sorted(found)


# --- the storage ------------------------------------------------------------------------------------


class Storage:
    """Kestra's internal storage kept in a private local folder.

    Attributes:
        root: The storage folder (absolute); created with mode 0700, files are written 0600.
    """

    def __init__(self, root: Path) -> None:
        """Create (or reuse) the storage folder.

        Args:
            root: The folder, usually beside the database.
        """
        self.root: Path = Path(os.path.abspath(root))
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            os.chmod(self.root, DIR_MODE)  # explicit, because mkdir's mode is filtered by the umask
            self._real_root = self.root.resolve(strict=True)
        except OSError as error:
            raise StorageError(f"Cannot create the storage folder '{self.root}': {error.strerror}") from error

    # URIs -------------------------------------------------------------------------------------------

    @staticmethod
    def _uri(parts: Sequence[str]) -> str:
        return URI_PREFIX + "/".join(quote(part, safe=_SEGMENT_SAFE) for part in parts)

    def execution_uri(self, namespace: str, flow_id: str, execution_id: str) -> str:
        """The folder URI of an execution: ``kestra:///<ns as folders>/<flowId>/executions/<id>``."""
        if not isinstance(namespace, str):
            raise StorageError(f"Namespace must be text, not {type(namespace).__name__}")
        parts = [_check_segment(part, f"Namespace '{namespace}' segment") for part in namespace.split(".")]
        parts.append(_check_segment(flow_id, "Flow id"))
        parts.append("executions")
        parts.append(_check_segment(execution_id, "Execution id"))
        return self._uri(parts)

    def task_uri(
        self, namespace: str, flow_id: str, execution_id: str, task_id: str, task_run_id: str
    ) -> str:
        """The folder URI of a task run: ``<execution>/tasks/<taskId>/<taskRunId>``."""
        base = self.execution_uri(namespace, flow_id, execution_id)
        task = quote(_check_segment(task_id, "Task id"), safe=_SEGMENT_SAFE)
        run = quote(_check_segment(task_run_id, "Task run id"), safe=_SEGMENT_SAFE)
        return f"{base}/tasks/{task}/{run}"

    def input_uri(self, namespace: str, flow_id: str, execution_id: str, input_id: str) -> str:
        """The folder URI of a FILE input: ``<execution>/inputs/<inputId>``."""
        base = self.execution_uri(namespace, flow_id, execution_id)
        return f"{base}/inputs/{quote(_check_segment(input_id, 'Input id'), safe=_SEGMENT_SAFE)}"

    def _parse(self, uri: str) -> tuple[str, ...]:
        """Split a ``kestra:///`` URI into checked, percent-decoded path segments."""
        if not isinstance(uri, str):
            raise StorageError(f"Storage URI must be text, not {type(uri).__name__}")
        scheme, colon, rest = uri.partition(":")
        if not colon or scheme.lower() != SCHEME:
            raise StorageError(
                f"Storage URI '{uri}' refused: only kestra:/// URIs are supported, not '{scheme}:'"
                if colon
                else f"Storage URI '{uri}' refused: expected kestra:///<path>"
            )
        if not rest.startswith("///"):
            if rest.startswith("//"):
                raise StorageError(
                    f"Storage URI '{uri}' refused: write three slashes (kestra:///{rest[2:]}); "
                    "with two, Kestra reads the first name as a host and drops it"
                )
            raise StorageError(f"Storage URI '{uri}' refused: expected kestra:///<path>")
        raw = rest[3:]
        if "?" in raw or "#" in raw:
            raise StorageError(f"Storage URI '{uri}' refused: a query or fragment is not allowed")
        if "\\" in raw:
            raise StorageError(f"Storage URI '{uri}' refused: path traversal (backslash)")
        try:
            # Decoded exactly once: '%252e' stays the literal name '%2e', never '.'.
            path = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise StorageError(f"Storage URI '{uri}' refused: invalid percent-encoding") from None
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]  # a folder URI may end with a slash
        if path == "":
            return ()
        segments = tuple(path.split("/"))
        for segment in segments:
            problem = _segment_problem(segment)
            if problem is not None:
                raise StorageError(f"Storage URI '{uri}' refused: {problem}")
        return segments

    def _locate(self, uri: str) -> tuple[tuple[str, ...], Path]:
        segments = self._parse(uri)
        target = self.root.joinpath(*segments)
        if not _inside(target, self._real_root):
            raise StorageError(
                f"Storage URI '{uri}' refused: path traversal (it resolves outside the storage folder)"
            )
        return segments, target

    def path(self, uri: str) -> Path:
        """The local path of a URI; it must resolve inside :attr:`root` but may not exist yet.

        Raises:
            StorageError: For another scheme, a malformed URI or any path traversal.
        """
        return self._locate(uri)[1]

    def check_readable(self, uri: str, namespace: str, trigger: Mapping[str, Any] | None = None) -> None:
        """Refuse a file that an execution of `namespace` may not read.

        An execution reads the execution files of its own namespace and of its parent namespaces
        (`company.team` reads those of `company.team` and `company`), and those of the execution
        that started it (a Subflow's parent, a Flow trigger's upstream execution: the trigger's
        `namespace`, `flowId` and `executionId` variables), as Kestra does. A webhook supplying
        a URI of another namespace's execution can thus not read its files.

        Raises:
            StorageError: For a malformed URI or a file outside what the execution may read.
        """
        segments = self._parse(uri)
        own = tuple(str(namespace).split("."))
        for size in range(len(own), 0, -1):
            if _execution_file_of(segments, own[:size]):
                return
        upstream = self._upstream(trigger)
        if upstream is not None and len(segments) > len(upstream) and segments[: len(upstream)] == upstream:
            return
        owner = next(
            (
                ".".join(segments[:index])
                for index in range(1, len(segments) - 3)
                if segments[index + 1] == "executions"
            ),
            None,
        )
        whose = f"it belongs to namespace `{owner}`" if owner else "it is not an execution file"
        allowed = "its own namespace and its parent namespaces"
        if upstream is not None:
            allowed += ", and of the execution that started it"
        raise StorageError(
            f"File '{uri}' refused: {whose}; an execution of `{namespace}` reads only the execution "
            f"files of {allowed}"
        )

    def _upstream(self, trigger: Mapping[str, Any] | None) -> tuple[str, ...] | None:
        """The folder of the execution that started this one, as path segments, if any."""
        variables = (trigger or {}).get("variables")
        if not isinstance(variables, Mapping):
            return None
        named = [variables.get(key) for key in ("namespace", "flowId", "executionId")]
        if not all(isinstance(value, str) and value for value in named):
            return None
        try:
            return self._parse(self.execution_uri(*(str(value) for value in named)))
        except StorageError:
            return None

    # writing ----------------------------------------------------------------------------------------

    def _put(self, base_uri: str, name: str, data: bytes | BinaryIO) -> str:
        parts = (*self._parse(base_uri), *safe_relative(name).parts)
        uri = self._uri(parts)
        self._locate(uri)  # refuses a target that resolves outside through symlinks
        fd = _open_new_file(self.root, self._real_root, parts, f"Storage URI '{uri}'")
        _write_fd(fd, data, f"Storage URI '{uri}'")
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
        return self.path(uri).exists()

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
        if target.is_file() and not target.is_symlink():
            return [self._uri(segments)]
        if not target.is_dir():
            return []
        uris: list[str] = []
        for relative in _walk_files(target, self._real_root):
            if (target / relative).is_symlink():
                continue
            parts = (*segments, *relative.parts)
            if all(_segment_problem(part) is None for part in parts):
                uris.append(self._uri(parts))
        return sorted(uris)

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
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        except OSError as error:
            raise StorageError(f"Cannot delete '{uri}': {error.strerror}") from error
        return True

    def delete_execution(self, namespace: str, flow_id: str, execution_id: str) -> int:
        """Delete every file of an execution (task outputs and inputs); return how many were removed.

        Empty namespace and flow folders are left in place so concurrent writers never lose a parent.
        """
        uri = self.execution_uri(namespace, flow_id, execution_id)
        target = self.path(uri)
        if target.is_symlink() or not target.is_dir():
            return 0
        count = 0
        for folder, dirs, files in os.walk(target, followlinks=False):
            count += len(files)
            count += sum(1 for name in dirs if os.path.islink(os.path.join(folder, name)))
        try:
            shutil.rmtree(target)
        except OSError as error:
            raise StorageError(f"Cannot delete '{uri}': {error.strerror}") from error
        return count
