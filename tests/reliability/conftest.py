"""Shared helpers for the reliability tests: real engine processes on real SQLite files, killed for real.

An engine runs as `tiercel server --port 0` (or `tiercel run`) in a subprocess; `kill9` sends SIGKILL
to it. The database is read with the sqlite3 module, as any tool would, never through the engine.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

TIERCEL = Path(sys.executable).parent / "tiercel"
TOKEN_ENV = "TIERCEL_PROCESS_TOKEN"
_READY = re.compile(r"webhooks on (http://\S+)")

# Kestra's State semantics: the states each state may move to (no self-transitions). A terminal
# state moves only through a restart or a change of status, which these tests do not use.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "CREATED": frozenset({"RUNNING", "QUEUED", "KILLING", "KILLED", "CANCELLED", "FAILED", "SKIPPED"}),
    "QUEUED": frozenset({"RUNNING", "KILLING", "KILLED", "CANCELLED", "FAILED"}),
    "RUNNING": frozenset(
        {"PAUSED", "KILLING", "RETRYING", "SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"}
    ),
    "PAUSED": frozenset({"RUNNING", "KILLING", "KILLED", "FAILED", "SUCCESS", "WARNING"}),
    "RETRYING": frozenset({"RUNNING", "KILLING", "KILLED", "FAILED"}),
    "KILLING": frozenset({"KILLED", "FAILED"}),
    "RESTARTED": frozenset({"RUNNING"}),
}
TERMINAL = frozenset({"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"})


# -- engine processes -------------------------------------------------------------------------------


@dataclass
class EngineProcess:
    """A running engine subprocess and where its stderr goes."""

    proc: subprocess.Popen[bytes]
    stderr_file: Path
    url: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")

    def kill9(self) -> None:
        """SIGKILL the engine process (not its tasks: they run in sessions of their own) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """A clean stop (SIGTERM), then SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def webhook(self, namespace: str, flow_id: str, key: str) -> dict[str, Any]:
        """POST to a flow's webhook; the answer (the execution) as JSON."""
        request = urllib.request.Request(
            f"{self.url}/api/v1/executions/webhook/{namespace}/{flow_id}/{key}", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer


def start_server(flows: Path, db: Path, *, timeout: float = 30.0) -> EngineProcess:
    """Start `tiercel server --port 0` and wait until it listens (its engine has started)."""
    log = db.with_name(f"server-{time.monotonic_ns()}.stderr")
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(TIERCEL), "server", "--flows", str(flows), "--db", str(db), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    engine = EngineProcess(proc, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _READY.search(engine.stderr())
        if found:
            engine.url = found.group(1)
            return engine
        if proc.poll() is not None:
            raise AssertionError(f"tiercel server exited with {proc.returncode}: {engine.stderr()}")
        time.sleep(0.01)
    engine.kill9()
    raise AssertionError(f"tiercel server did not start within {timeout} s: {engine.stderr()}")


@pytest.fixture
def engines() -> Iterator[list[EngineProcess]]:
    """Engine processes a test starts; any still running at the end is killed."""
    started: list[EngineProcess] = []
    yield started
    for engine in started:
        if engine.proc.poll() is None:
            engine.kill9()


# -- the database, read as any tool would -----------------------------------------------------------


def connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, timeout=30)


def integrity_check(db: Path) -> str:
    """`PRAGMA integrity_check` of the database ("ok" when sound)."""
    with contextlib.closing(connect(db)) as conn:
        return "; ".join(str(row[0]) for row in conn.execute("PRAGMA integrity_check"))


def executions(db: Path) -> dict[str, dict[str, Any]]:
    """Every stored execution in Kestra's JSON, with its taskRunList, by id."""
    with contextlib.closing(connect(db)) as conn:
        found = {row[0]: json.loads(row[1]) for row in conn.execute("SELECT id, json FROM executions")}
        for execution in found.values():
            execution["taskRunList"] = []
        for execution_id, data in conn.execute("SELECT execution_id, json FROM task_runs ORDER BY seq"):
            found[execution_id]["taskRunList"].append(json.loads(data))
    return found


def recorded_processes(db: Path) -> list[tuple[int, int, str]]:
    """(pid, start ticks, token) of every task program the store records as running (none in a
    database whose engine was killed before it made its tables)."""
    with contextlib.closing(connect(db)) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'processes'").fetchone() is None:
            return []
        rows = conn.execute("SELECT pid, start_ticks, token FROM processes").fetchall()
    return [(int(pid), int(ticks), str(token)) for pid, ticks, token in rows]


def illegal_transitions(history: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (from, to) pairs of a state history that Kestra's state semantics do not allow."""
    states = [entry["state"] for entry in history]
    return [
        (before, after)
        for before, after in itertools.pairwise(states)
        if after not in ALLOWED_TRANSITIONS.get(before, frozenset())
    ]


# -- processes ----------------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """State and start time (field 22) of a process, or None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


def alive(pid: int, start_ticks: int) -> bool:
    """Whether this very process (same pid and start time) still runs (a zombie does not)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[1] == start_ticks


def holding_tokens(tokens: Iterable[str]) -> set[int]:
    """Pids of live processes whose environment holds one of these process tokens (or token starts)."""
    needles = [f"{TOKEN_ENV}={token}".encode() for token in tokens]
    found: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _stat(int(name))
        if stat is None or stat[0] in ("Z", "X"):
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if any(needle in environ for needle in needles):
            found.add(int(name))
    return found


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def write_flow(flows: Path, name: str, source: str) -> Path:
    flows.mkdir(parents=True, exist_ok=True)
    path = flows / name
    path.write_text(source)
    return path
