"""The dashboard in a real terminal: tmux runs `tiercel ui`, keys are typed, the screen is read."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIERCEL = Path(sys.executable).parent / "tiercel"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def private(folder: Path) -> str:
    """An `env` prefix giving the dashboard its own keymap and state folders (tmux's server keeps the
    environment it started with, not the test's)."""
    return f"env XDG_CONFIG_HOME={folder / 'config'} XDG_STATE_HOME={folder / 'state'}"


@pytest.fixture
def session(tmp_path: Path) -> Iterator[str]:
    shutil.copytree(REPO / "sample_flows", tmp_path / "flows")
    name = f"tiercel-{uuid.uuid4().hex[:8]}"
    command = f"{private(tmp_path)} {TIERCEL} ui --flows {tmp_path / 'flows'} --db {tmp_path / 't.db'}"
    tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", command)
    try:
        yield name
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def screen(name: str) -> str:
    return tmux("capture-pane", "-t", name, "-p")


def wait_for(name: str, text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = screen(name)
        if text in shown:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; the screen shows:\n{screen(name)}")


def go_to_flow(name: str, flow: str) -> None:
    """Select a flow as a user would who knows its name: the command palette's Go to flow."""
    wait_for(name, "1 Namespaces")
    tmux("send-keys", "-t", name, ":")
    wait_for(name, "Search for commands")
    tmux("send-keys", "-t", name, "-l", f"go to flow {flow}")
    wait_for(name, f"Go to flow {flow}")
    tmux("send-keys", "-t", name, "Enter")


def press_until(name: str, key: str, text: str, timeout: float = 15) -> None:
    """Press a key until the text shows: a key typed while the palette's command is still being
    applied acts on the selection before it, as it would for a user typing that fast."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tmux("send-keys", "-t", name, key)
        try:
            wait_for(name, text, timeout=3)
            return
        except AssertionError:
            continue
    raise AssertionError(f"{key!r} never brought {text!r}; the screen shows:\n{screen(name)}")


def test_run_a_flow_from_the_keyboard_at_80x24(session: str) -> None:
    go_to_flow(session, "acme.hello_world")
    press_until(session, "r", "Run acme.hello_world")
    tmux("send-keys", "-t", session, "Enter")
    shown = wait_for(session, "SUCCESS")
    assert "hello_world" in shown
    wait_for(session, "Hello, world!")
    tmux("send-keys", "-t", session, "q")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0:
            return
        time.sleep(0.1)
    raise AssertionError("q did not quit the dashboard")


def test_e_opens_the_flow_in_the_editor_and_the_saved_change_shows(tmp_path: Path) -> None:
    shutil.copytree(REPO / "sample_flows", tmp_path / "flows")
    editor = tmp_path / "editor.sh"
    marker = tmp_path / "edited"
    # A stand-in for an editor: records which file it was given and renames the flow in it.
    editor.write_text(
        f'#!/bin/sh\necho "$1" > {marker}\nsed -i "s/^id: hello_world$/id: hello_edited/" "$1"\n'
    )
    editor.chmod(0o755)
    name = f"tiercel-{uuid.uuid4().hex[:8]}"
    flows, db = tmp_path / "flows", tmp_path / "t.db"
    command = f"{private(tmp_path)} EDITOR={editor} {TIERCEL} ui --flows {flows} --db {db}"
    tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", command)
    try:
        go_to_flow(name, "acme.hello_world")
        press_until(name, "e", "hello_edited")
        # The whole dashboard comes back after the editor; under load its panes may be drawn
        # a moment after the tree's new row.
        shown = wait_for(name, "1 Namespaces")
        assert "hello_edited" in shown and "hello_world" not in shown
        assert marker.read_text().strip().endswith("hello_world.yml")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def test_a_user_types_their_password_and_keys_they_may_not_use_say_why(tmp_path: Path) -> None:
    """`tiercel ui --users FILE --user NAME`: the password asked on the terminal, the dashboard as them."""
    from tiercel.app.api.users import hash_password

    shutil.copytree(REPO / "sample_flows", tmp_path / "flows")
    with (tmp_path / "flows" / "acme" / "_namespace.yaml").open("a") as declaration:
        declaration.write("permissions:\n  - username: erin\n    permission: READ\n")
    users = tmp_path / "users.yaml"
    users.write_text(f"users:\n  - name: erin\n    password: {hash_password('a secret')}\n")
    name = f"tiercel-{uuid.uuid4().hex[:8]}"
    flows, db = tmp_path / "flows", tmp_path / "t.db"
    command = f"{private(tmp_path)} {TIERCEL} ui --flows {flows} --db {db} --users {users} --user erin"
    tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", command)
    try:
        wait_for(name, "Password for erin:")
        tmux("send-keys", "-t", name, "-l", "a secret")
        wait_for(name, "Password for erin:")  # tmux has drawn what the keys made of the screen
        assert "a secret" not in screen(name)  # not echoed
        tmux("send-keys", "-t", name, "Enter")
        wait_for(name, "as erin")
        go_to_flow(name, "acme.hello_world")
        press_until(name, "r", "lacks EXECUTE on")
        assert "Run acme.hello_world" not in screen(name)  # no inputs form opened
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
