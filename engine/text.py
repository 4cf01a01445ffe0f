"""Untrusted text made safe to print on a terminal.

Log lines, outputs, ids and request bodies come from tasks and webhook clients. Printed raw, an
escape sequence among them can write the user's clipboard (``ESC ] 52``), change the window title
(``ESC ] 0``) or clear the screen (``ESC [ 2 J``). :func:`visible` shows every such control character
as a Python-style ``\\xNN`` escape instead, so it reads as text and does nothing; the stored data is
never changed, only what is printed.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, and the C1 controls (0x80-0x9f, which some terminals
# obey like ESC-prefixed sequences). A carriage return is shown too unless it ends a line (CRLF):
# alone it moves the cursor back and lets the rest of the line overwrite what came before.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")
# One character class, CR included: scanned several times faster than the alternation above, so
# the common line without any control character costs only this scan.
_ANY_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _shown(match: re.Match[str]) -> str:
    return f"\\x{ord(match[0]):02x}"


def visible(text: str) -> str:
    """Return `text` with its control characters written as ``\\xNN`` escapes.

    Tab, newline and a carriage return just before a newline are kept; every other C0 control
    character, DEL and the C1 controls become four printable characters (ESC is ``\\x1b``). Text
    without control characters is returned as it is, so the common case costs one regex scan.

    Args:
        text: Text that may come from a task, a webhook request or a flow file.

    Returns:
        The text, safe to write to a terminal.
    """
    if _ANY_CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_shown, text)
