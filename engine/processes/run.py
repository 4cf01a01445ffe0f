"""Run a task's program as a subprocess: stream its lines in bounded memory, and kill all it started.

The program runs in a session (and process group) of its own, with stdin from /dev/null and an extra
environment variable ``TIERCEL_PROCESS_TOKEN`` holding a random token. On Linux the engine is a child
subreaper, so descendants that leave the group, shed the token and lose their parent are re-parented
to the engine rather than to init, where `engine.processes.tree` finds them (by what they hold, or else by
when they started); elsewhere only the group (and session) can be reached.

Stopping follows Kestra's task semantics:

* Cancellation of the calling task (how kill and timeout reach a process): SIGTERM to the group and
  every process of the program, up to ``kill_grace`` seconds for them to exit, then SIGKILL until
  none is left; the pipes are read to the end and only then is ``CancelledError`` re-raised.
* Normal exit of the program: the task is finished, so any background process it left behind is
  killed at once with SIGKILL, before the result is returned. Its output up to that point is still
  delivered.

While a program runs, the ``ProcessWatch`` set in ``PROCESS_WATCH`` (if any) holds a ``ProcessRecord``
of it (engine.processes.record): its group, the start time of its leader and its token. The engine keeps
these records in its store, so that after a crash the next engine kills what is left
(engine.processes.leftovers) without ever hitting an unrelated process that reuses a pid.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..model.resources import ResourceUsage
from .lines import Pump
from .program import ProcessError, Program, Start, spawn_program
from .record import ProcessRecord
from .tree import TASK_FOLDER_PREFIX, TOKEN_ENV, ProgramTree, become_subreaper, spawning

__all__ = [
    "PROCESS_WATCH",
    "TASK_FOLDER_PREFIX",
    "TOKEN_ENV",
    "ProcessError",
    "ProcessResult",
    "ProcessWatch",
    "run_process",
]

# Seconds between checks while waiting for processes to exit.
_POLL = 0.02
# Once every known process is gone, a pipe still open is held by something that escaped both the
# group and the token (e.g. ``env -i setsid``): stop reading it after this long without data ...
_PIPE_IDLE = 0.5
# ... or after this long in total, even if such a process keeps writing.
_PIPE_FINISH_LIMIT = 10.0
# The longest wait for the engine's other starts to end before orphans that may be theirs are judged.
_START_WAIT = 5.0


@dataclass(frozen=True)
class ProcessResult:
    """How a program ended.

    Attributes:
        exit_code: The exit status; the negative signal number when a signal killed it.
        stdout_lines: Lines delivered from stdout (pieces of a split long line count one each).
        stderr_lines: Lines delivered from stderr, counted the same way.
        usage: What the program and its processes used (see `ResourceUsage`), when it is known.
    """

    exit_code: int
    stdout_lines: int
    stderr_lines: int
    usage: ResourceUsage | None = None


class ProcessWatch(Protocol):
    """Told of every program `run_process` starts and of the end of its process group.

    Attributes:
        token_prefix: Put before the random part of each program's token, so that programs can be
            found by what they run for (`leftovers.kill_leftovers`) even before their record is stored.
    """

    token_prefix: str

    async def started(self, record: ProcessRecord) -> None:
        """The program runs (awaited: an error stops the program and is raised by `run_process`)."""

    def ended(self, record: ProcessRecord, usage: ResourceUsage | None) -> None:
        """Every process of the program is gone; what they used, when it is known."""


# The watch of the programs started in the current context. The runner sets it for each attempt, so
# that task handlers need not pass it down to `run_process`.
PROCESS_WATCH: ContextVar[ProcessWatch | None] = ContextVar("tiercel_process_watch", default=None)


def prefer_pidfd_child_watcher() -> None:
    """On Python 3.11, watch children through pidfds instead of a thread per child.

    The default watcher there starts a thread that waits for each child and hands its exit back to
    the loop across the GIL: about 2 ms per process. Python 3.12 uses pidfds by itself.
    """
    if sys.version_info >= (3, 12) or not hasattr(asyncio, "PidfdChildWatcher"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return  # kernel older than 5.3, or not Linux
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    on_line: Callable[[str, bool], None],
    drain: Callable[[], Awaitable[None]] | None = None,
    kill_grace: float = 5.0,
    max_line_chars: int = 64 * 1024,
    start: Start | None = None,
    prepare: Callable[[], None] | None = None,
) -> ProcessResult:
    """Run a program to its end, streaming its output line by line.

    Args:
        argv: The program and its arguments (no shell is involved).
        cwd: The working directory of the program.
        env: The complete environment of the program; ``TIERCEL_PROCESS_TOKEN`` is added to it.
        on_line: Called with each line (without its line ending) and whether it came from stderr,
            in order for each stream. Lines are decoded as UTF-8, invalid bytes replaced; a line
            longer than ``max_line_chars`` is delivered as consecutive pieces of that size.
        drain: Awaited after each chunk of lines a stream delivers; while it waits, that stream is
            not read, so a slow log store slows the program down instead of growing memory.
        kill_grace: Seconds between SIGTERM and SIGKILL when the call is cancelled.
        max_line_chars: The longest piece of a line delivered at once.
        start: Starts the program another way than spawning ``argv`` (a warm interpreter forks
            it, see engine.processes.forkserver); when it returns None, ``argv`` is spawned.
        prepare: Run in the spawned child before it starts the program (see `spawn_program`).

    Returns:
        The exit code and the number of lines delivered per stream.

    Raises:
        ProcessError: The program cannot be started.
        asyncio.CancelledError: The call was cancelled; every process is gone when it is raised.
    """
    if not argv:
        raise ProcessError("cannot start an empty command")
    if max_line_chars < 1:
        raise ValueError(f"max_line_chars must be at least 1, not {max_line_chars}")
    watch = PROCESS_WATCH.get()
    token = (watch.token_prefix if watch is not None else "") + secrets.token_hex(16)
    # Before the first program starts: its orphans must come to the engine, not to init.
    become_subreaper()
    environment = {**env, TOKEN_ENV: token}
    # Until its tree is registered, the new program must not pass for another program's orphan.
    with spawning() as spawn:
        program = await start(environment) if start is not None else None
        if program is None:
            program = await spawn_program(argv, cwd, environment, prepare)
        tree = ProgramTree(
            program.pid, token, str(cwd), program.pipe_names(), since=spawn.since, start=program.start_ticks
        )
    try:
        pumps = [
            Pump(program.stdout, False, on_line, drain, max_line_chars),
            Pump(program.stderr, True, on_line, drain, max_line_chars),
        ]
        stop = _Stopper(program, tree, pumps)
        record = ProcessRecord(program.pid, program.pid, tree.start_ticks, token)
        usage: ResourceUsage | None = None
        try:
            result = await _follow(program, stop, pumps, kill_grace, watch, record)
        finally:
            if program.usage is not None:
                usage = program.usage + tree.adopted_usage
            if watch is not None:
                watch.ended(record, usage)
        return dataclasses.replace(result, usage=usage)
    finally:
        tree.close()


async def _follow(
    program: Program,
    stop: _Stopper,
    pumps: list[Pump],
    kill_grace: float,
    watch: ProcessWatch | None,
    record: ProcessRecord,
) -> ProcessResult:
    """Wait for a started program to end and stop whatever it left; every process is gone on return."""
    try:
        if watch is not None:
            await watch.started(record)
        failure = await stop.wait_exit()
    except asyncio.CancelledError:
        await _uninterruptible(stop.shutdown(kill_grace))
        raise
    except Exception:  # the watch could not record the program: it must not run unrecorded
        await _uninterruptible(stop.shutdown(0.0))
        raise
    if failure is not None:
        # on_line or drain failed: the program cannot be followed any more.
        await _uninterruptible(stop.shutdown(kill_grace))
        raise failure
    await _uninterruptible(stop.shutdown(0.0))
    failure = stop.reader_failure()
    if failure is not None:
        raise failure
    if program.start_error is not None:
        raise ProcessError(program.start_error)
    exit_code = program.returncode
    assert exit_code is not None
    return ProcessResult(exit_code, pumps[0].lines, pumps[1].lines)


async def _uninterruptible(coro: Coroutine[Any, Any, None]) -> None:
    """Run cleanup to its end even if the caller is cancelled again meanwhile; then re-raise that."""
    task = asyncio.ensure_future(coro)
    interrupted = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            interrupted = True
    task.result()
    if interrupted:
        raise asyncio.CancelledError


class _Stopper:
    """Waits for the program and stops whatever is left of it."""

    def __init__(self, program: Program, tree: ProgramTree, pumps: list[Pump]) -> None:
        self._program = program
        self._tree = tree
        self._pumps = pumps
        self._readers = [asyncio.create_task(pump.run()) for pump in pumps]
        self._exited = asyncio.create_task(program.exited())

    async def wait_exit(self) -> BaseException | None:
        """Wait until the program exits; return the error of a failed reader instead, if any."""
        while not self._exited.done():
            waiting: list[asyncio.Future[Any]] = [self._exited, *(r for r in self._readers if not r.done())]
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            failure = self.reader_failure()
            if failure is not None:
                return failure
        self._exited.result()
        return None

    def reader_failure(self) -> BaseException | None:
        """The error raised by ``on_line`` or ``drain`` in a reader that has ended, if any."""
        for reader in self._readers:
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                return reader.exception()
        return None

    async def shutdown(self, grace: float) -> None:
        """Stop every remaining process (SIGTERM and ``grace`` first if positive), then finish reading."""
        loop = asyncio.get_running_loop()
        tree = self._tree
        # The usual end (the program exited and left nothing) is shown without reading every process;
        # then no orphan waits either, and nothing runs until the second look: it is skipped.
        gone = tree.gone()
        live = set() if gone else tree.live()
        if live:
            self._program.stopping()
        if live and grace > 0:
            tree.signal(signal.SIGTERM, live, once=True)
            # A stopped process acts on SIGTERM only once continued.
            tree.signal(signal.SIGCONT, live, once=True)
            deadline = loop.time() + grace
            while live and loop.time() < deadline:
                await asyncio.sleep(_POLL)
                live = tree.live()
                # Processes forked meanwhile get their SIGTERM too, each only once.
                tree.signal(signal.SIGTERM, live, once=True)
                tree.signal(signal.SIGCONT, live, once=True)
        await self._kill(tree, live)
        # Nothing of the program is left. Orphans that started while it and others ran, and that
        # waited for it, are its now if those others are done: finish and look again in one step.
        tree.finish()
        live = set() if gone else tree.live()
        waited_until = loop.time() + _START_WAIT
        while True:
            await self._kill(tree, live)
            if not (tree.waiting and loop.time() < waited_until):
                break
            await asyncio.sleep(_POLL)
            live = tree.live()
        await self._exited
        await self._finish_reading(loop)
        await self._program.finish()

    @staticmethod
    async def _kill(tree: ProgramTree, live: set[int]) -> None:
        """SIGKILL ``live`` and what the program still has until none is left."""
        while live:
            tree.signal(signal.SIGKILL, live, once=False)
            await asyncio.sleep(_POLL)
            live = tree.live()

    async def _finish_reading(self, loop: asyncio.AbstractEventLoop) -> None:
        started = loop.time()
        while True:
            pending = [reader for reader in self._readers if not reader.done()]
            if not pending:
                break
            await asyncio.wait(pending, timeout=_PIPE_IDLE / 5)
            now = loop.time()
            open_pumps = [
                pump for pump, reader in zip(self._pumps, self._readers, strict=True) if not reader.done()
            ]
            idle = all(pump.idle_for(now) >= _PIPE_IDLE for pump in open_pumps)
            if open_pumps and (idle or now - started >= _PIPE_FINISH_LIMIT):
                for reader in pending:
                    reader.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                # Close our ends of the pipes an escaped process still holds.
                self._program.close_pipes()
                break
