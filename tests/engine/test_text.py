"""visible(): control characters of untrusted text shown as \\xNN, everything else kept."""

from __future__ import annotations

import pytest

from tiercel.engine import visible


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]52;c;aGk=\x1b\\", "\\x1b]52;c;aGk=\\x1b\\"),  # clipboard write
        ("\x1b]0;PWNED\x07", "\\x1b]0;PWNED\\x07"),  # window title
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear screen
        ("\x9b2J", "\\x9b2J"),  # C1 CSI
        ("\x00\x08\x7f", "\\x00\\x08\\x7f"),
        ("progress 10%\rprogress 99%", "progress 10%\\x0dprogress 99%"),  # a lone CR overwrites
        ("a\x0bb\x0cc", "a\\x0bb\\x0cc"),
    ],
)
def test_control_characters_are_shown_as_escapes(raw: str, shown: str) -> None:
    assert visible(raw) == shown


@pytest.mark.parametrize(
    "text",
    ["plain", "tab\there", "two\nlines", "crlf\r\nline", "zürich ✔ 日本", "[red]x[/] \\x1b", ""],
)
def test_printable_text_newlines_and_tabs_are_kept_as_they_are(text: str) -> None:
    assert visible(text) == text


def test_the_result_holds_no_control_character() -> None:
    every = "".join(chr(code) for code in range(0x100))
    shown = visible(every)
    assert {c for c in shown if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F} == {"\t", "\n"}
