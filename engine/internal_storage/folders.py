"""Files inside a folder, never escaping it: writing through checked parents, and walking.

Every name is checked lexically (:mod:`.names`) and physically: the path, with every symlink
resolved, must stay inside its folder.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .names import StorageError, safe_relative

DIR_MODE = 0o700
FILE_MODE = 0o600

_COPY_CHUNK = 1024 * 1024


def inside(path: Path, real_base: Path) -> bool:
    """Whether `path`, with every symlink resolved, stays inside `real_base` (a resolved folder)."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False
    return resolved.is_relative_to(real_base)


def open_new_file(base: Path, real_base: Path, parts: Sequence[str], label: str) -> int:
    """Create the parents of base/parts inside real_base and open the file for writing.

    Every existing parent is checked before it is used, so a symlinked folder pointing outside is
    refused before anything is created through it.
    """
    target = make_parents(base, real_base, parts, label)
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


def make_parents(base: Path, real_base: Path, parts: Sequence[str], label: str) -> Path:
    """Create the missing parents of base/parts (private), each existing one checked first; the
    target's path, which stays inside real_base."""
    current = base
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            if not inside(current, real_base) or not current.is_dir():
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
    if not inside(target, real_base):
        raise StorageError(f"{label} refused: path traversal (it resolves outside its folder)")
    return target


def write_fd(fd: int, data: bytes | BinaryIO, label: str) -> None:
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
    fd = open_new_file(directory, real_base, relative.parts, label)
    write_fd(fd, payload, label)
    return directory.joinpath(*relative.parts)


def walk_files(directory: Path, real_base: Path) -> Iterable[PurePosixPath]:
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
                if not inside(full, real_base) or not full.is_file():
                    continue
            elif not stat.S_ISREG(info.st_mode):
                continue
            yield relative_folder / file_name
