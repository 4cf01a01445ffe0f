"""One engine per database: the `<db>.lock` file, and the database files opened as private files.

`acquire_lock` takes an exclusive `flock` on `<db>.lock` and writes our pid there. The database, its
-wal and -shm files and the lock are opened without following links and must belong to the user and
be writable by nobody else (see `private_files`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..private_files import UnsafeFileError, check_private_path, open_private, same_file
from .errors import StoreError, StoreLockedError

#: The files SQLite keeps beside a WAL database.
_COMPANIONS = ("-wal", "-shm")


def lock_path(db: Path) -> Path:
    return db.with_name(db.name + ".lock")


def acquire_lock(db: Path) -> int:
    """Take the exclusive lock on `<db>.lock` and write our pid into it; return its descriptor.

    The lock file is opened without following a link and must be this user's and private: it is
    truncated, so a link planted there must never lead to another file.
    """
    path = lock_path(db)
    try:
        fd = open_private(path, "lock file")
    except UnsafeFileError as exc:
        raise StoreError(str(exc)) from exc
    except OSError as exc:
        raise StoreError(f"cannot open lock file {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        pid = _read_pid(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            owner = f"pid {pid}" if pid is not None else "pid unknown"
            raise StoreLockedError(
                f"database {db} is in use by another Tiercel process ({owner})", pid=pid
            ) from None
        raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def open_database_files(db: Path) -> list[tuple[int, Path]]:
    """Open (creating) the database and its -wal and -shm files as private files; return them.

    SQLite opens these files again by name and follows links: opening them first, without following
    links, means a link planted by someone else is refused before SQLite writes through it. A leftover
    -journal is checked too, as SQLite would roll it into the database.
    """
    held: list[tuple[int, Path]] = []
    try:
        held.append((open_private(db, "database"), db))
        for suffix in _COMPANIONS:
            companion = db.with_name(db.name + suffix)
            held.append((open_private(companion, f"database's {suffix} file"), companion))
        check_private_path(db.with_name(db.name + "-journal"), "database's -journal file")
    except BaseException:
        for fd, _ in held:
            os.close(fd)
        raise
    return held


def check_database_files(held: Sequence[tuple[int, Path]]) -> None:
    """After SQLite opened the files: the database is still the file checked, its companions private.

    SQLite may replace an empty -wal of an empty database with its own, so companions are checked
    again by path rather than compared with the descriptors held.
    """
    (db_fd, db), *companions = held
    if not same_file(db_fd, db):
        raise UnsafeFileError(f"the database {db} was replaced while Tiercel opened it; try again")
    for _, companion in companions:
        check_private_path(companion, f"database's {companion.name[len(db.name) :]} file")


def close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)
