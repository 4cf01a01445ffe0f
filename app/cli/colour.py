"""Colour on a terminal, never elsewhere: states and log levels, as `run`, `logs` and `executions`
print them. None reaches a file or a pipe, nor a terminal when NO_COLOR is set (https://no-color.org)
or TERM is dumb.

Colours wrap text already made visible (`tiercel.engine.visible`), so that an escape sequence a
flow wrote is shown as text and only these are obeyed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TextIO

from tiercel.engine import visible

if TYPE_CHECKING:
    from tiercel.engine import LogEntry

_CODES = {
    "SUCCESS": "32",
    "WARNING": "33",
    "FAILED": "31",
    "KILLED": "31",
    "CANCELLED": "31",
    "RUNNING": "36",
    "PAUSED": "34",
    "RETRYING": "33",
    "ERROR": "31",
    "WARN": "33",
    "DEBUG": "2",
    "TRACE": "2",
}


def is_terminal(stream: TextIO) -> bool:
    """Whether escape sequences may be written to `stream`: a terminal that is not a dumb one."""
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def colours(stream: TextIO) -> bool:
    """Whether what is written to `stream` is coloured."""
    return is_terminal(stream) and not os.environ.get("NO_COLOR")


def paint(shown: str, key: str, stream: TextIO) -> str:
    """`shown` (visible text) in the colour of `key` (a state or a level), when `stream` takes colour."""
    code = _CODES.get(key)
    return f"\x1b[{code}m{shown}\x1b[0m" if code and colours(stream) else shown


def coloured_log(entry: LogEntry, stream: TextIO) -> str:
    """A log line as `run` and `logs` print it, made visible, its level coloured for `stream`."""
    level = paint(f"{entry.level:<5}", entry.level, stream)
    return f"{entry.stamp} {level} {visible(entry.task_id or '-'):<20} {visible(entry.message)}"
