"""A started program as engine.processes.run follows it: its pid, its two output streams, its exit.

Two kinds implement it: a child the engine spawns itself (`spawn_program`, through asyncio), and a child a
warm interpreter forks for a Python task (engine.processes.forkserver). Either way the program leads
a session and a process group of its own, so that the rest of engine.processes treats both alike.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from ..model.resources import ResourceUsage
from .lines import READ_CHUNK
from .peaks import PeakSampler, own_peak
from .tree import HAS_PROC

__all__ = ["ProcessError", "Program", "Spawned", "Start", "pipe_reader", "spawn_program", "start_failure"]

# Seconds between checks of the program's exit status: without a pidfd, and right after it fires.
_EXIT_POLL = 0.1
_REAP_POLL = 0.0005


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
    def usage(self) -> ResourceUsage | None:
        """What the program and the descendants it waited for used, once it has exited; None if unknown."""

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


async def spawn_program(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], prepare: Callable[[], None] | None = None
) -> Spawned:
    """Start ``argv`` as a child of the engine, in a session of its own, stdin from /dev/null.

    ``prepare`` runs in the child before the program replaces it (resource limits, a cgroup): it
    must only make system calls, as the child of a threaded process may not take any lock.
    """
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pipes = [f"pipe:[{os.fstat(fd).st_ino}]" for fd in (out_r, err_r)] if HAS_PROC else []
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    try:
        # The readers first: from the spawn on, nothing may wait (a cancellation there would leave
        # the program running before the caller follows it).
        stdout, out_transport = await pipe_reader(loop, out_r)
        transports.append(out_transport)
        stderr, err_transport = await pipe_reader(loop, err_r)
        transports.append(err_transport)
        # Not asyncio's subprocess: its child watcher reaps the program and keeps no rusage of it.
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out_w,
            stderr=err_w,
            start_new_session=True,
            preexec_fn=prepare,  # only system calls, see above
        )
    except BaseException as exc:
        for transport in transports:
            transport.close()
        for fd in (out_r, err_r)[len(transports) :]:
            os.close(fd)
        if isinstance(exc, OSError):
            raise ProcessError(start_failure(argv[0], cwd, exc)) from exc
        if isinstance(exc, subprocess.SubprocessError | ValueError):  # `prepare` failed; a NUL in env
            raise ProcessError(f"cannot start `{argv[0]}`: {exc}") from exc
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    # The engine's own peak: the program's ru_maxrss starts from it (see ResourceUsage.of).
    return Spawned(popen, (stdout, stderr), transports, pipes, own_peak())


async def pipe_reader(
    loop: asyncio.AbstractEventLoop, fd: int
) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A stream over the reading end of a pipe; the transport owns the descriptor and closes it."""
    reader = asyncio.StreamReader(limit=READ_CHUNK, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.connect_read_pipe(lambda: protocol, open(fd, "rb", buffering=0))  # noqa: SIM115
    return reader, transport


def start_failure(program: str, cwd: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is not None and str(exc.filename) == str(cwd) and str(cwd) != program:
        reason = f"working directory {cwd}: {reason}"
    elif exc.errno == errno.ENOENT:
        where = "or its #! interpreter is missing" if "/" in program else "not found on PATH"
        reason = f"{reason} ({where})"
    return f"cannot start `{program}`: {reason}"


class Spawned:
    """A child of the engine, waited for here (`os.wait4`) so that its rusage is known."""

    start_ticks = None
    start_error = None  # a spawn that fails raises at once

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        streams: tuple[asyncio.StreamReader, asyncio.StreamReader],
        transports: list[asyncio.BaseTransport],
        pipes: list[str],
        baseline: int,
    ) -> None:
        self._popen = popen
        self._baseline = baseline
        self.pid = popen.pid
        self.stdout, self.stderr = streams
        self._transports = transports
        self._pipes = pipes
        self.returncode: int | None = None
        self.usage: ResourceUsage | None = None
        # Its ru_maxrss says nothing below `baseline`: its peak is also sampled while it runs.
        self._sampler = PeakSampler(self.pid)

    def pipe_names(self) -> list[str]:
        return self._pipes

    async def exited(self) -> None:
        if self._reaped():
            return
        loop = asyncio.get_running_loop()
        pidfd = _open_pidfd(self.pid)
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
            # Without a pidfd, polling is the only way to see an exit while the pipes stay open.
            while not self._reaped():
                await asyncio.sleep(_REAP_POLL if pidfd is not None else _EXIT_POLL)
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def _reaped(self) -> bool:
        """Wait for the program if it has exited; whether it has."""
        if self.returncode is not None:
            return True
        try:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:  # waited for elsewhere: its status is lost
            self.returncode = -signal.SIGKILL
        else:
            if pid == 0:
                return False
            self.returncode = os.waitstatus_to_exitcode(status)
            self.usage = ResourceUsage.of(rusage, self._baseline).with_peak(self._sampler.stop())
        self._sampler.stop()
        self._popen.returncode = self.returncode  # Popen must not wait for it again
        return True

    def stopping(self) -> None:
        pass

    def close_pipes(self) -> None:
        for transport in self._transports:
            transport.close()

    async def finish(self) -> None:
        await self.exited()


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
