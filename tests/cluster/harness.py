"""A cluster on this machine for tests: `tiercel server` and `tiercel worker` as real processes on
one PostgreSQL store (a schema of the test server's database), driven through the control channel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

TIERCEL = Path(sys.executable).parent / "tiercel"
HEARTBEAT_TIMEOUT = 3.0
HEARTBEAT = 0.5  # six to a timeout: a busy machine does not make a live worker look gone


class Cluster:
    """Servers and workers started by a test, all stopped by `close`."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder
        self.flows = folder / "flows"
        self.flows.mkdir(exist_ok=True)
        self.processes: list[subprocess.Popen[str]] = []
        self._count = 0

    def flow(self, name: str, text: str) -> None:
        (self.flows / f"{name}.yml").write_text(text)

    def _start(self, args: list[str], ready: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        process = self._launch(args, env)
        self._ready(process, ready)
        return process

    def _launch(self, args: list[str], env: dict[str, str] | None) -> subprocess.Popen[str]:
        self._count += 1
        log = (self.folder / f"process-{self._count}.log").open("w")
        process = subprocess.Popen(
            [str(TIERCEL), *args, "--db", self.url],
            cwd=self.folder,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a kill -9 of it leaves its task programs, as on a real machine
        )
        self.processes.append(process)
        return process

    def _ready(self, process: subprocess.Popen[str], ready: str) -> None:
        log_file = self.folder / f"process-{self.processes.index(process) + 1}.log"
        deadline = time.monotonic() + 60
        while ready not in log_file.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{process.args} did not start: {log_file.read_text()}")
            time.sleep(0.05)

    def servers_at_once(self, *machines: str) -> list[subprocess.Popen[str]]:
        """Servers started together, one per machine, none waiting for another."""
        started = [self._launch(self._server_args(False, ()), self.machine(name)) for name in machines]
        for process in started:
            self._ready(process, "tiercel server:")
        return started

    def server(self, *extra: str, worker: bool = False, machine: str | None = None) -> subprocess.Popen[str]:
        """A server; with `machine`, as if on a machine of that name (its own local folder)."""
        args = self._server_args(worker, extra)
        return self._start(args, "tiercel server:", self.machine(machine) if machine else None)

    def _server_args(self, worker: bool, extra: tuple[str, ...]) -> list[str]:
        args = ["server", "--flows", str(self.flows), "--port", "0"]
        args += ["--heartbeat-timeout", str(HEARTBEAT_TIMEOUT), *extra]
        return args if worker else [*args, "--no-worker"]

    def machine(self, name: str) -> dict[str, str]:
        """The environment of a process as if on machine `name`: its own local folder (control
        socket, process records, its copies of the files of executions, which machines share
        through the store)."""
        return {"XDG_DATA_HOME": str(self.folder / name)}

    def webhooks_of(self, server: subprocess.Popen[str]) -> str:
        """The address of a server's webhooks, as its first line says."""
        index = self.processes.index(server) + 1
        lines = (self.folder / f"process-{index}.log").read_text().splitlines()
        ready = next(line for line in lines if "webhooks on " in line)  # warnings may come first
        return ready.rsplit("webhooks on ", 1)[1].strip()

    def worker(self, *extra: str, home: str | None = None) -> subprocess.Popen[str]:
        """A worker; with `home`, its local folder is that one (as on another machine)."""
        env = {"XDG_DATA_HOME": str(self.folder / home)} if home else None
        return self._start(["worker", "--heartbeat", str(HEARTBEAT), *extra], "tiercel worker ", env)

    def cli(self, *args: str, machine: str | None = None) -> str:
        """A one-off command on the cluster's store (on `machine`); its output (it must succeed)."""
        done = self.command(*args, machine=machine)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def command(self, *args: str, machine: str | None = None) -> subprocess.CompletedProcess[str]:
        """A one-off command on the cluster's store (on `machine`), as it ended."""
        return subprocess.run(
            [str(TIERCEL), *args, "--db", self.url],
            cwd=self.folder,
            env={**os.environ, **(self.machine(machine) if machine else {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def sql(self, statement: str, params: Any = ()) -> list[Any]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description is not None else []

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def pid_alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead and not reaped yet, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
