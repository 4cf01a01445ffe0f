"""Escape sequences printed by a task reach a real terminal (tmux) as text, never as commands.

A task prints a window-title sequence, a clipboard write (OSC 52) and a screen clear. Shown by the
dashboard or by `tiercel logs`, none of them may change the pane title or fill a paste buffer.
Each test runs its own tmux server (-L), with clipboard writes from applications allowed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TIERCEL = Path(sys.executable).parent / "tiercel"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

HOSTILE = r"""
id: hostile
namespace: acme
tasks:
  - id: shout
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - printf 'T\033]0;PWNED\007C\033]52;c;aGk=\007X\033[2J!END\n'
"""


class Tmux:
    """One private tmux server, so the test neither sees nor touches the user's sessions."""

    def __init__(self) -> None:
        self.socket = f"tiercel-test-{uuid.uuid4().hex[:8]}"
        self.session = "esc"

    def __call__(self, *args: str) -> str:
        command = ["tmux", "-L", self.socket, *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def start(self, command: str) -> None:
        self("-f", "/dev/null", "new-session", "-d", "-s", self.session, "-x", "160", "-y", "30", command)
        self("set-option", "-g", "set-clipboard", "on")
        self("resize-window", "-t", self.session, "-x", "160", "-y", "30")
        self("set-option", "-g", "allow-rename", "on")

    def title(self) -> str:
        return self("display-message", "-p", "-t", self.session, "#{pane_title}").strip()

    def buffers(self) -> str:
        return self("list-buffers", "-F", "#{buffer_sample}")

    def screen(self) -> str:
        return self("capture-pane", "-p", "-J", "-t", self.session)

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the screen shows:\n{self.screen()}")

    def stop(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    server = Tmux()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ran(tmp_path: Path) -> tuple[Path, Path, str]:
    """A flows folder and a database holding one ended execution of the hostile flow, and its id."""
    flows = tmp_path / "flows"
    (flows / "acme").mkdir(parents=True)
    (flows / "acme" / "hostile.yml").write_text(HOSTILE.lstrip())
    db = tmp_path / "t.db"
    env = {k: v for k, v in os.environ.items() if k != "TIERCEL_DB"}
    result = subprocess.run(
        [str(TIERCEL), "run", "--json", "--db", str(db), str(flows / "acme" / "hostile.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return flows, db, json.loads(result.stdout)["id"]


def assert_nothing_obeyed(tmux: Tmux, title_before: str) -> None:
    assert "PWNED" not in tmux.title(), tmux.title()
    assert tmux.title() == title_before
    assert tmux.buffers() == "", f"a clipboard write reached tmux: {tmux.buffers()!r}"


def test_the_dashboard_shows_a_tasks_escapes_as_text(tmux: Tmux, ran: tuple[Path, Path, str]) -> None:
    flows, db, _ = ran
    tmux.start(f"env -u COLUMNS -u LINES {TIERCEL} ui --flows {flows} --db {db}")
    tmux.wait_for("hostile")
    before = tmux.title()
    tmux("send-keys", "-t", tmux.session, "1", "Down")
    shown = tmux.wait_for("!END")
    assert "T\\x1b]0;PWNED\\x07C\\x1b]52;c;aGk=\\x07X\\x1b[2J!END" in shown
    time.sleep(0.5)  # let every frame reach the terminal
    assert_nothing_obeyed(tmux, before)
    assert "hostile" in tmux.screen()  # the screen was not cleared


def test_tiercel_logs_shows_a_tasks_escapes_as_text(tmux: Tmux, ran: tuple[Path, Path, str]) -> None:
    _, db, execution_id = ran
    tmux.start("sh")
    before = tmux.title()
    tmux(
        "send-keys",
        "-t",
        tmux.session,
        f"clear; {TIERCEL} logs --db {db} {execution_id}; echo done-$((1+1))",
        "Enter",
    )
    shown = tmux.wait_for("done-2")
    assert "T\\x1b]0;PWNED\\x07C\\x1b]52;c;aGk=\\x07X\\x1b[2J!END" in shown
    assert_nothing_obeyed(tmux, before)
