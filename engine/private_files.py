"""Files Tiercel keeps private to the user running it: the database, its companions and the socket.

A database folder may be shared with other local users (a team folder). Anything another user
placed there (a symbolic link to one of our files, a database created world-writable, a socket of
their own) must be refused before Tiercel writes to it or talks to it, with a message that says
what to do. Links are never followed: files are opened with O_NOFOLLOW and checked on the open
descriptor, so the file checked is the file used.
"""

from __future__ import annotations

import errno
import os
import pwd
import shlex
import stat
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "UnsafeFileError",
    "check_private",
    "check_private_path",
    "open_private",
    "same_file",
    "user_name",
]


class UnsafeFileError(Exception):
    """A file that must be private to this user is a link, another user's, or writable by others."""


def user_name(uid: int, *, with_uid: bool = True) -> str:
    """`name (uid N)` (or just `name`), or `uid N` for a uid without a name."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
    return f"{name} (uid {uid})" if with_uid else name


def _symlink_message(path: Path, what: str) -> str:
    return (
        f"refusing the {what} {path}: it is a symbolic link, and Tiercel never follows links for its "
        f"own files (another user may have planted it). Remove it (rm {shlex.quote(str(path))}) or "
        "give the database's real path with --db or TIERCEL_DB"
    )


def check_private(
    info: os.stat_result,
    path: Path,
    what: str,
    *,
    kind: Callable[[int], bool] = stat.S_ISREG,
    single_link: bool = True,
) -> None:
    """Refuse a file that is not of `kind`, not this user's, writable by others or hard-linked.

    Args:
        info: The file's status (from `fstat` of an open descriptor, or `lstat`).
        path: The file's path, for the message.
        what: What the file is to Tiercel ("database", "lock file" ...), for the message.
        kind: The expected file type (`stat.S_ISREG`, `stat.S_ISSOCK`).
        single_link: Refuse a file with more than one hard link (writing it would change the other).

    Raises:
        UnsafeFileError: With a message saying what is wrong and what to do.
    """
    quoted = shlex.quote(str(path))
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeFileError(_symlink_message(path, what))
    me = os.geteuid()
    if info.st_uid != me:
        raise UnsafeFileError(
            f"refusing the {what} {path}: it belongs to {user_name(info.st_uid)}, not to you "
            f"({user_name(me, with_uid=False)}), so it cannot be trusted. Use a database of your own "
            "(--db or TIERCEL_DB), or have its owner remove it"
        )
    if not kind(info.st_mode):
        raise UnsafeFileError(
            f"refusing the {what} {path}: it is not the kind of file expected; remove it (rm {quoted})"
        )
    writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable:
        who = {stat.S_IWGRP: "its group", stat.S_IWOTH: "others"}.get(writable, "group and others")
        raise UnsafeFileError(
            f"refusing the {what} {path}: it is writable by {who} "
            f"(mode {stat.S_IMODE(info.st_mode):04o}), so they could change it. If you trust its "
            f"content, make it private (chmod 600 {quoted}); otherwise remove it"
        )
    if single_link and info.st_nlink > 1:
        raise UnsafeFileError(
            f"refusing the {what} {path}: it has {info.st_nlink} hard links, so writing it would also "
            f"change another file. Remove it (rm {quoted}) or use another database"
        )


def check_private_path(path: Path, what: str, *, kind: Callable[[int], bool] = stat.S_ISREG) -> bool:
    """Check the file at `path` without following a link; False when there is none.

    Raises:
        UnsafeFileError: The file exists and is not safe (see `check_private`).
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    check_private(info, path, what, kind=kind, single_link=kind is stat.S_ISREG)
    return True


def open_private(path: Path, what: str, *, create: bool = True) -> int:
    """Open `path` read-write without following a link (creating it 0600), and check it is private.

    Returns:
        The open descriptor (close-on-exec).

    Raises:
        UnsafeFileError: The path is a link, or the file is not safe (see `check_private`).
        OSError: The file cannot be opened or created.
    """
    flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(_symlink_message(path, what)) from None
        raise
    try:
        check_private(os.fstat(fd), path, what)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def same_file(fd: int, path: Path) -> bool:
    """Whether `path` (not followed if a link) is still the file open as `fd`."""
    try:
        held, there = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)
