"""The engine's side of one child a forkserver forked (see forkserver.py): its status pipe, and the
`Program` that `run_process` follows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from ..model.resources import ResourceUsage
from .program import start_failure
from .tree import read_stat

__all__ = ["Forked", "Status", "abandon"]

# Seconds between looks at a child whose forkserver is gone.
_POLL = 0.02


class Status:
    """The status pipe of one forked child: ``pid``, maybe ``fail``, then ``exit`` (see the server)."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd = fd
        self._loop = loop
        self._buffer = b""
        self._waiters: list[asyncio.Future[None]] = []
        self.pid: int | None = None
        self.ticks = 0
        self.failure: OSError | None = None
        self.status: int | None = None
        self.usage: ResourceUsage | None = None
        self.closed = False
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            *lines, self._buffer = (self._buffer + data).split(b"\n")
            for line in lines:
                self._line(line.decode("utf-8", "replace").split(" ", 2))
        else:
            self.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def _line(self, words: list[str]) -> None:
        if words[0] == "pid" and len(words) == 3:
            self.pid, self.ticks = int(words[1]), int(words[2])
        elif words[0] == "fail" and len(words) == 3:
            self.failure = OSError(int(words[1]), words[2])
        elif words[0] == "usage" and len(words) == 3:  # user and system CPU seconds, ru_maxrss
            utime, stime, maxrss = words[1], *words[2].split(" ", 1)
            self.usage = ResourceUsage.parse(utime, stime, maxrss)
        elif words[0] == "exit" and len(words) == 2:
            self.status = int(words[1])

    async def until(self, done: Callable[[], bool]) -> None:
        while not (done() or self.closed):
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            await waiter

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._loop.remove_reader(self._fd)
            os.close(self._fd)


class Forked:
    """A task's program forked by a forkserver (a `Program`)."""

    def __init__(
        self,
        status: Status,
        streams: tuple[asyncio.StreamReader, asyncio.StreamReader],
        transports: list[asyncio.BaseTransport],
        pipes: list[str],
        tell: Callable[[bytes], None],
        start: tuple[str, Path],
    ) -> None:
        assert status.pid is not None
        self._tell = tell  # to the forkserver
        self._start = start  # what a spawn would have started, and where: for a start error
        self.start_error: str | None = None
        self.pid = status.pid
        self.start_ticks = status.ticks or None
        self.stdout, self.stderr = streams
        self._status = status
        self._transports = transports
        self._pipes = pipes
        self.returncode: int | None = None

    @property
    def usage(self) -> ResourceUsage | None:
        return self._status.usage

    def pipe_names(self) -> list[str]:
        return self._pipes

    async def exited(self) -> None:
        status = self._status
        await status.until(lambda: status.status is not None)
        if status.status is None:
            # The forkserver died first: the child came to the engine (the subreaper) or is gone.
            status.status = await _orphan_exit(self.pid, self.start_ticks)
        if status.failure is not None:
            program, cwd = self._start
            failure = OSError(status.failure.errno, status.failure.strerror, str(cwd))
            self.start_error = start_failure(program, cwd, failure)
        # As /bin/sh reports a command that a signal ended: 128 + the signal.
        if os.WIFSIGNALED(status.status):
            self.returncode = 128 + os.WTERMSIG(status.status)
        else:
            self.returncode = os.waitstatus_to_exitcode(status.status)

    def stopping(self) -> None:
        # /bin/sh, killed with its command, would not say how the command ended: nor does the server.
        if self._status.status is None:
            self._tell(f"quiet\0{self.pid}".encode())

    def close_pipes(self) -> None:
        for transport in self._transports:
            transport.close()

    async def finish(self) -> None:
        self._status.close()


async def _orphan_exit(pid: int, start: int | None) -> int:
    """The wait status of a child whose forkserver is gone, once it has exited."""
    while True:
        try:
            found, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            current = read_stat(pid)
            if current is None or current.dead or (start is not None and current.start != start):
                return signal.SIGKILL  # its status went with the forkserver
        else:
            if found == pid:
                return status
        await asyncio.sleep(_POLL)


async def abandon(status: Status, *pipes: int) -> None:
    """Kill a child whose start was cancelled, once its pid is known, and let go of it."""
    await status.until(lambda: status.pid is not None)
    if status.pid is not None:
        # Before its setup ends the child is not yet a group leader: it is killed by pid too.
        for kill in (os.kill, os.killpg):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(status.pid, signal.SIGKILL)
        await status.until(lambda: status.status is not None)
    status.close()
    for fd in pipes:
        os.close(fd)
