"""A started program as engine.processes.run follows it: its pid, its two output streams, its exit.

Two kinds implement it: a child the engine spawns itself (`spawn_program`, through asyncio), and a child a
warm interpreter forks for a Python task (engine.processes.forkserver). Either way the program leads
a session and a process group of its own, so that the rest of engine.processes treats both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from .lines import READ_CHUNK
from .tree import HAS_PROC

__all__ = ["ProcessError", "Program", "Spawned", "Start", "spawn_program", "start_failure"]

# Seconds between checks of the program's exit status: without a pidfd, and right after it fires.
_EXIT_POLL = 0.1
_REAP_POLL = 0.0005
# How long asyncio's own wait may take once the pipes are read to their end.
_WAIT_LIMIT = 0.5


class ProcessError(Exception):
    """The program cannot be started (not found, not executable, bad working directory ...)."""


class Program(Protocol):
    """A running program: it leads its own session and process group."""

    @property
    def pid(self) -> int: ...

    @property
    def start_ticks(self) -> int | None:
        """Its start time (``/proc/<pid>/stat``) when its starter knows it; None to read it."""

    @property
    def returncode(self) -> int | None:
        """The exit status once known; the negative signal number when a signal killed it."""

    @property
    def stdout(self) -> asyncio.StreamReader: ...

    @property
    def stderr(self) -> asyncio.StreamReader: ...

    @property
    def start_error(self) -> str | None:
        """Why the program did not start after all (known once it has exited), or None."""

    def pipe_names(self) -> list[str]:
        """Its output pipes as /proc names them (``pipe:[inode]``): who holds one is the program's."""

    async def exited(self) -> None:
        """Return once the program itself has exited and `returncode` is set (its pipes may stay open)."""

    def stopping(self) -> None:
        """The engine is about to signal the program's processes (a kill, a timeout)."""

    def close_pipes(self) -> None:
        """Close the engine's ends of the output pipes, which an escaped process may still hold."""

    async def finish(self) -> None:
        """Let go of the program once its pipes are read to their end."""


# Starts a program with the given complete environment; None when it cannot, and `spawn` should.
Start = Callable[[Mapping[str, str]], Awaitable[Program | None]]


async def spawn_program(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Spawned:
    """Start ``argv`` as a child of the engine, in a session of its own, stdin from /dev/null."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=READ_CHUNK,
        )
    except OSError as exc:
        raise ProcessError(start_failure(argv[0], cwd, exc)) from exc
    return Spawned(proc)


def start_failure(program: str, cwd: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is not None and str(exc.filename) == str(cwd) and str(cwd) != program:
        reason = f"working directory {cwd}: {reason}"
    elif exc.errno == errno.ENOENT:
        where = "or its #! interpreter is missing" if "/" in program else "not found on PATH"
        reason = f"{reason} ({where})"
    return f"cannot start `{program}`: {reason}"


class Spawned:
    """A child of the engine started through asyncio."""

    start_ticks = None
    start_error = None  # a spawn that fails raises at once

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self._proc = proc
        self.pid = proc.pid
        self.stdout: asyncio.StreamReader = proc.stdout
        self.stderr: asyncio.StreamReader = proc.stderr
        # Process.wait() also waits for the pipes to close, which a background child can hold open
        # forever: the program's own exit is watched separately (`exited`).
        self._waiter = asyncio.ensure_future(proc.wait())

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    def pipe_names(self) -> list[str]:
        transport = getattr(self._proc, "_transport", None)
        if not HAS_PROC or not isinstance(transport, asyncio.SubprocessTransport):
            return []
        names = []
        for fd in (1, 2):
            pipe = transport.get_pipe_transport(fd)
            file = pipe.get_extra_info("pipe") if pipe is not None else None
            if file is not None:
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    names.append(f"pipe:[{os.fstat(file.fileno()).st_ino}]")
        return names

    async def exited(self) -> None:
        loop = asyncio.get_running_loop()
        pidfd = _open_pidfd(self.pid) if self._proc.returncode is None else None
        try:
            if pidfd is not None:
                readable: asyncio.Future[None] = loop.create_future()
                try:
                    loop.add_reader(pidfd, _resolve, readable)
                except (OSError, ValueError, NotImplementedError):
                    os.close(pidfd)  # a loop that cannot watch descriptors: poll instead
                    pidfd = None
                else:
                    try:
                        await readable
                    finally:
                        loop.remove_reader(pidfd)
            # With a pidfd the exit status is set by the child watcher a moment after it fires;
            # without one, polling is the only way to see an exit while the pipes stay open.
            delay = _REAP_POLL if pidfd is not None else _EXIT_POLL
            while self._proc.returncode is None:
                await asyncio.wait([self._waiter], timeout=delay)
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def stopping(self) -> None:
        pass

    def close_pipes(self) -> None:
        transport = getattr(self._proc, "_transport", None)
        if isinstance(transport, asyncio.BaseTransport):
            transport.close()

    async def finish(self) -> None:
        # The pipes are closed now, so asyncio's own wait ends at once.
        await asyncio.wait([self._waiter], timeout=_WAIT_LIMIT)
        if not self._waiter.done():
            self._waiter.cancel()
            await asyncio.gather(self._waiter, return_exceptions=True)


def _open_pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when the process exits (Linux 5.3+), or None."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:
        return None  # already reaped, or a kernel without pidfd
    return fd


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
