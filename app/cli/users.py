"""`tiercel users hash`: the line a users file keeps for a password (see tiercel.app.api.users).

The password is read from the terminal without echo, or from the first line of stdin when it is not
a terminal (never from the command line, which `ps` shows to every local user).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from .common import EXIT_OK, EXIT_USAGE, command, say


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "users",
        "make the password hash of a users file's entry (`tiercel server --users FILE`)",
        ["tiercel users hash", "printf '%s\\n' \"$PASSWORD\" | tiercel users hash"],
    )
    parser.add_argument("action", choices=["hash"], help="what to do")


def cmd_users(args: argparse.Namespace) -> int:
    from ..api.users import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            say("tiercel: the two passwords differ", err=True)
            return EXIT_USAGE
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        say("tiercel: an empty password", err=True)
        return EXIT_USAGE
    say(hash_password(password))
    return EXIT_OK
