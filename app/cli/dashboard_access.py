"""Who the dashboard acts for: the machine's owner, a user of a users file, and either read-only.

`tiercel ui --users FILE --user NAME` asks NAME's password on the terminal (or reads the first line
of stdin when it is not one) before the dashboard opens; the dashboard then offers what NAME's
namespace permissions grant, and shows only what they may read. `--read-only` holds whoever it is
to READ. A wrong password, or a user not in the file, stops the command with a usage error.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from .common import UsageError

if TYPE_CHECKING:  # the engine loads when the dashboard opens, not for every command's parser
    from tiercel.engine import Principal

    from ..api.users import Users


def add_access_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="see everything, change nothing (no run, kill, restart, resume, replay, edit, trigger "
        "or cache command)",
    )
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="act as this user of the --users file (their password is asked), with their namespace "
        "permissions",
    )


def dashboard_principal(args: argparse.Namespace, users: Users | None) -> Principal:
    """Who the dashboard acts for, from `--user`, `--users` and `--read-only`.

    Raises:
        UsageError: `--user` without a users file, or a name and password that do not match.
    """
    from tiercel.engine import OWNER, Permission

    name: str | None = getattr(args, "user", None)  # `tiercel` alone has no such option
    most = Permission.READ if getattr(args, "read_only", False) else Permission.OWNER
    if name is None:
        return replace(OWNER, name=_login_name(), most=most)
    if users is None:
        raise UsageError("--user: name the users file it is in with --users FILE")
    password = _password(f"Password for {name}: ")
    principal = users.login(name, password)
    if principal is None:
        raise UsageError(f"--user: wrong name or password for `{name}`")
    return replace(principal, most=min(most, principal.most))


def _password(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\n")


def _login_name() -> str:
    """The machine's user, as a read-only dashboard's refusals name them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME
        return "owner"
