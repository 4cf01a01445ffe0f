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
import codecs
import contextlib
import errno
import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..secrets import ENV_PREFIX
from .record import ProcessRecord
from .tree import HAS_PROC, TASK_FOLDER_PREFIX, TOKEN_ENV, ProgramTree, become_subreaper, spawning

__all__ = [
    "PROCESS_WATCH",
    "TASK_FOLDER_PREFIX",
    "TOKEN_ENV",
    "ProcessError",
    "ProcessResult",
    "ProcessWatch",
    "engine_environment",
    "run_process",
]

_READ_CHUNK = 64 * 1024
# Seconds between checks while waiting for processes to exit.
_POLL = 0.02
# Seconds between checks of the program's exit status: without a pidfd, and right after it fires.
_EXIT_POLL = 0.1
_REAP_POLL = 0.0005
# Once every known process is gone, a pipe still open is held by something that escaped both the
# group and the token (e.g. ``env -i setsid``): stop reading it after this long without data ...
_PIPE_IDLE = 0.5
# ... or after this long in total, even if such a process keeps writing.
_PIPE_FINISH_LIMIT = 10.0
# The longest wait for the engine's other starts to end before orphans that may be theirs are judged.
_START_WAIT = 5.0


# The variables the engine reads secrets from, beside ``SECRET_*`` (see engine.secrets).
SECRETS_FILE_ENV = "TIERCEL_SECRETS_FILE"


def engine_environment() -> dict[str, str]:
    """The engine's environment as task programs inherit it: without the variables holding secrets.

    ``SECRET_*`` (what ``secret()`` reads) and ``TIERCEL_SECRETS_FILE`` are left out: a program that
    never asked for a secret must not be able to print one. A task's own ``env`` is added on top.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(ENV_PREFIX) and name != SECRETS_FILE_ENV
    }


class ProcessError(Exception):
    """The program cannot be started (not found, not executable, bad working directory ...)."""


@dataclass(frozen=True)
class ProcessResult:
    """How a program ended.

    Attributes:
        exit_code: The exit status; the negative signal number when a signal killed it.
        stdout_lines: Lines delivered from stdout (pieces of a split long line count one each).
        stderr_lines: Lines delivered from stderr, counted the same way.
    """

    exit_code: int
    stdout_lines: int
    stderr_lines: int


class ProcessWatch(Protocol):
    """Told of every program `run_process` starts and of the end of its process group.

    Attributes:
        token_prefix: Put before the random part of each program's token, so that programs can be
            found by what they run for (`leftovers.kill_leftovers`) even before their record is stored.
    """

    token_prefix: str

    async def started(self, record: ProcessRecord) -> None:
        """The program runs (awaited: an error stops the program and is raised by `run_process`)."""

    def ended(self, record: ProcessRecord) -> None:
        """Every process of the program is gone."""


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
    # Until its tree is registered, the new program must not pass for another program's orphan.
    with spawning() as spawn:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env={**env, TOKEN_ENV: token},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                limit=_READ_CHUNK,
            )
        except OSError as exc:
            raise ProcessError(_start_failure(argv[0], cwd, exc)) from exc
        assert proc.stdout is not None and proc.stderr is not None
        tree = ProgramTree(proc.pid, token, str(cwd), _pipe_names(proc), since=spawn.since)
    try:
        pumps = [
            _Pump(proc.stdout, False, on_line, drain, max_line_chars),
            _Pump(proc.stderr, True, on_line, drain, max_line_chars),
        ]
        stop = _Stopper(proc, tree, pumps)
        record = ProcessRecord(proc.pid, proc.pid, tree.start_ticks, token)
        try:
            return await _follow(proc, stop, pumps, kill_grace, watch, record)
        finally:
            if watch is not None:
                watch.ended(record)
    finally:
        tree.close()


def _pipe_names(proc: asyncio.subprocess.Process) -> list[str]:
    """The program's output pipes as /proc names them (``pipe:[inode]``): who holds one is its."""
    transport = getattr(proc, "_transport", None)
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


async def _follow(
    proc: asyncio.subprocess.Process,
    stop: _Stopper,
    pumps: list[_Pump],
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
    exit_code = proc.returncode
    assert exit_code is not None
    return ProcessResult(exit_code, pumps[0].lines, pumps[1].lines)


def _start_failure(program: str, cwd: Path, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is not None and str(exc.filename) == str(cwd) and str(cwd) != program:
        reason = f"working directory {cwd}: {reason}"
    elif exc.errno == errno.ENOENT:
        where = "or its #! interpreter is missing" if "/" in program else "not found on PATH"
        reason = f"{reason} ({where})"
    return f"cannot start `{program}`: {reason}"


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


#: Lines of Kestra's output protocol (``::{"outputs": ...}::``) are data, not log text: they may be
#: this long before they are cut into pieces like any other long line.
MAX_PROTOCOL_LINE_CHARS = 16 * 1024 * 1024


class _LineSplitter:
    """Bytes in, lines out, holding at most ``max_chars + 1`` characters of an unfinished line.

    A line that starts as Kestra's output protocol (``::{``) may grow to ``max_protocol_chars``.
    """

    def __init__(
        self, emit: Callable[[str], None], max_chars: int, max_protocol_chars: int = MAX_PROTOCOL_LINE_CHARS
    ) -> None:
        self._emit = emit
        self._max = max_chars
        self._max_protocol = max(max_chars, max_protocol_chars)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> None:
        self._push(self._decoder.decode(data))

    def close(self) -> None:
        """Deliver what is left: a final line without a newline, an incomplete UTF-8 sequence."""
        self._push(self._decoder.decode(b"", final=True))
        rest, self._pending = self._pending.removesuffix("\r"), ""
        if rest:
            self._emit_pieces(rest)

    def _push(self, text: str) -> None:
        if "\n" in text:
            parts = text.split("\n")
            self._emit_pieces((self._pending + parts[0]).removesuffix("\r"))
            for part in parts[1:-1]:
                self._emit_pieces(part.removesuffix("\r"))
            self._pending = parts[-1]
        else:
            self._pending += text
        size = len(self._pending)
        if self._pending.startswith("::{") and size <= self._max_protocol + 1:
            return
        # Keep one character more than a piece: a "\r" waiting for its "\n" must not become content.
        if size > self._max + 1:
            count = (size - 2) // self._max
            for start in range(0, count * self._max, self._max):
                self._emit(self._pending[start : start + self._max])
            self._pending = self._pending[count * self._max :]

    def _emit_pieces(self, line: str) -> None:
        if len(line) <= self._max or (line.startswith("::{") and len(line) <= self._max_protocol):
            self._emit(line)
            return
        for start in range(0, len(line), self._max):
            self._emit(line[start : start + self._max])


class _Pump:
    """Reads one pipe in bounded chunks and delivers its lines."""

    def __init__(
        self,
        stream: asyncio.StreamReader,
        is_stderr: bool,
        on_line: Callable[[str, bool], None],
        drain: Callable[[], Awaitable[None]] | None,
        max_chars: int,
    ) -> None:
        self.stream = stream
        self.is_stderr = is_stderr
        self.lines = 0
        self._on_line = on_line
        self._drain = drain
        self._max_chars = max_chars
        # Since when the pump has been waiting on the pipe; None while it delivers or drains.
        self.waiting_since: float | None = None

    def idle_for(self, now: float) -> float:
        """Seconds the pump has been waiting on its pipe; 0 while it delivers lines or drains."""
        return 0.0 if self.waiting_since is None else now - self.waiting_since

    def _emit(self, line: str) -> None:
        self.lines += 1
        self._on_line(line, self.is_stderr)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        splitter = _LineSplitter(self._emit, self._max_chars)
        try:
            while True:
                self.waiting_since = loop.time()
                data = await self.stream.read(_READ_CHUNK)
                self.waiting_since = None
                if not data:
                    break
                before = self.lines
                splitter.feed(data)
                if self._drain is not None and self.lines != before:
                    await self._drain()
        except asyncio.CancelledError:
            # The pipe is abandoned: still deliver the unfinished last line.
            splitter.close()
            raise
        splitter.close()


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


class _Stopper:
    """Waits for the program and stops whatever is left of it."""

    def __init__(self, proc: asyncio.subprocess.Process, tree: ProgramTree, pumps: list[_Pump]) -> None:
        self._proc = proc
        self._tree = tree
        self._pumps = pumps
        self._readers = [asyncio.create_task(pump.run()) for pump in pumps]
        # Process.wait() also waits for the pipes to close, which a background child can hold open
        # forever: the program's own exit is watched separately.
        self._waiter = asyncio.create_task(proc.wait())
        self._exited = asyncio.create_task(self._watch_exit())

    async def _watch_exit(self) -> None:
        """Return once the program itself has exited and been reaped."""
        loop = asyncio.get_running_loop()
        pidfd = _open_pidfd(self._proc.pid) if self._proc.returncode is None else None
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
        live = tree.live()
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
        live = tree.live()
        waited_until = loop.time() + _START_WAIT
        while True:
            await self._kill(tree, live)
            if not (tree.waiting and loop.time() < waited_until):
                break
            await asyncio.sleep(_POLL)
            live = tree.live()
        await self._exited
        await self._finish_reading(loop)
        # The pipes are closed now, so asyncio's own wait ends at once.
        await asyncio.wait([self._waiter], timeout=_PIPE_IDLE)
        if not self._waiter.done():
            self._waiter.cancel()
            await asyncio.gather(self._waiter, return_exceptions=True)

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
                transport = getattr(self._proc, "_transport", None)
                if isinstance(transport, asyncio.BaseTransport):
                    transport.close()
                break
