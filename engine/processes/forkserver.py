"""Python tasks forked from a warm interpreter instead of a fresh one: the interpreter's start-up
(25-35 ms, far longer than a short script) is paid once per worker, not once per task.

A Python Script or Commands task is, as in Kestra, ``/bin/sh -c`` running ``python script.py``. When
that command is plainly the toolbox's ``python`` running one ``.py`` file, the worker asks a
forkserver (forkserver_main.py, started with that very interpreter and the start-up environment the
task would give it) to fork a child that becomes that ``python script.py``: its own session and
process group, the task folder as working directory, the task's environment (with ``PWD`` as
/bin/sh exports it), stdin from /dev/null, its own stdout and stderr pipes, the same ``sys.argv``,
``sys.path``, ``__main__``, exit status, tracebacks and shutdown (threads joined, atexit handlers,
streams flushed), and the line /bin/sh prints when a signal ends its command. It is followed,
recorded and killed exactly as a spawned program (engine.processes.run); as the engine is a
subreaper, what the child leaves behind comes back to the engine as before. Its exit status reaches
the engine through a pipe of its own. The first Python task of a worker is spawned while its
forkserver starts (as quick as waiting for it); the next ones are forked. `tiercel run` starts the
forkserver of a flow file's Python tasks as it reads the file (`start_early`): its first one is
forked too.

What a script can still tell: its parent is the forkserver, not /bin/sh (and it leads its session);
the forkserver's frame calls the script's (``sys._getframe(1)``); the children of one forkserver
share its hash seed and its start-up (site, .pth files, run once); the interpreter's start-up
objects are frozen (``gc.get_freeze_count()``); ``/proc/<pid>/cmdline`` and ``environ`` show the
forkserver's, while ``os.environ`` and whatever the script starts have the task's environment; at
exit, C-level atexit handlers and C stdio buffers are not run nor flushed (the child ends with
``os._exit`` once Python's own shutdown steps are done).

Anything else is spawned as before (`python_start` and `ForkServers.start` return None): another
shell than dash as /bin/sh (its exported variables differ), another ``python`` first on the task's
PATH (a virtual environment), an interpreter that is not an executable binary (a version manager's
shim, a wrapper script), options before the script (``-m``, ``-u``, ...), several commands or
any shell syntax, a script that is not a ``.py`` file, an interactive interpreter
(``PYTHONINSPECT``), an interpreter whose forkserver fails to start, a request too large. Each worker
keeps its own forkservers (`FORKSERVERS`) and closes them when it stops; a forkserver also exits by
itself once its control socket closes, so none outlives a killed engine.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import functools
import logging
import os
import socket
import stat
import subprocess
import threading
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from .forked import Forked, Status, abandon
from .program import Program, Start, pipe_reader
from .tree import HAS_PROC, spawning

__all__ = ["FORKSERVERS", "ForkServers", "Forked", "python_start", "start_early", "usable"]

_log = logging.getLogger(__name__)

SERVER = Path(__file__).with_name("forkserver_main.py")
# Variables an interpreter reads while it starts (or its dynamic loader, locale or site does): tasks
# differing in one of them get different forkservers. The others are set for each child.
_STARTUP_PREFIXES = ("PYTHON", "LC_", "LD_", "MALLOC_")
_STARTUP_NAMES = frozenset(
    {"LANG", "LANGUAGE", "HOME", "PATH", "TZ", "TMPDIR", "TEMP", "TMP", "GLIBC_TUNABLES"}
)
# A request travels as one datagram: beyond this, the task is spawned instead.
_MAX_REQUEST = 192 * 1024
# Seconds an interpreter may take to start and say hello; and to exit once told to.
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 5.0
# Forkservers one worker keeps at most (one per interpreter and start-up environment).
_MAX_SERVERS = 4
# A forkserver that died is started again this many times before its interpreter is spawned instead.
_MAX_RESTARTS = 3


def _startup_env(env: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in env.items()
        if name.startswith(_STARTUP_PREFIXES) or name in _STARTUP_NAMES
    }


@functools.cache
def _shell_is_dash() -> bool:
    """Whether /bin/sh is dash, whose only change to the environment it passes on is PWD."""
    return os.path.basename(os.path.realpath("/bin/sh")) == "dash"


def usable() -> bool:
    """Whether tasks can be forked here at all (Linux with /proc and fork, dash as /bin/sh)."""
    return HAS_PROC and hasattr(os, "fork") and _shell_is_dash()


@functools.lru_cache(maxsize=32)
def _is_binary(path: str, identity: tuple[int, int, int]) -> bool:
    """Whether the file is an ELF executable (not a script, such as a version manager's shim)."""
    try:
        with open(path, "rb") as file:
            return file.read(4) == b"\x7fELF"
    except OSError:
        return False


def _which(program: str, path: str) -> str | None:
    """The file /bin/sh runs for `program`: the first executable of that name on `path`.

    None when a relative or empty entry comes first (it would depend on the working directory).
    """
    for folder in path.split(os.pathsep):
        if not folder.startswith("/"):
            return None
        candidate = f"{folder.rstrip('/')}/{program}"
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class _Key:
    python: str  # as found on PATH, what sys.executable will be
    real: str
    identity: tuple[int, int, int]  # of the real file: a replaced interpreter gets a new forkserver
    program: str  # argv[0], as the shell passes it
    startup: tuple[tuple[str, str], ...]


def _key(program: str, interpreter: str, env: Mapping[str, str]) -> _Key | None:
    found = _which(program, env.get("PATH", ""))
    if found != interpreter or env.get("PYTHONINSPECT"):
        return None  # another interpreter (a venv first on PATH ...), or an interactive one
    real = os.path.realpath(found)
    try:
        info = os.stat(real)
    except OSError:
        return None
    identity = (info.st_dev, info.st_ino, info.st_mtime_ns)
    if not _is_binary(real, identity):
        return None
    return _Key(found, real, identity, program, tuple(sorted(_startup_env(env).items())))


class _Server:
    """One warm interpreter and its control socket."""

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.additions: dict[str, str] = {}
        self._diag = -1

    def spawn(self, umask: int = -1) -> bool:
        """Start the interpreter (`greeted` waits for it to be ready), with `umask` if one is given
        (else the engine's); False (logged) if it cannot."""
        key = self.key
        startup = dict(key.startup)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        diag_r, diag_w = os.pipe()
        self.sock, self._diag = ours, diag_r
        try:
            with theirs, spawning() as spawn:
                # Its own process group, so that the terminal's Ctrl+C is the engine's alone to
                # handle; the engine's session, so that it is never taken for a task's orphan.
                self.proc = subprocess.Popen(
                    [key.program, str(SERVER), str(theirs.fileno())],
                    executable=key.python,
                    stdin=subprocess.DEVNULL,
                    stdout=diag_w,
                    stderr=diag_w,
                    pass_fds=(theirs.fileno(),),
                    env=startup,
                    cwd="/",
                    process_group=0,
                    umask=umask,
                )
                spawn.started(self.proc.pid)
        except OSError as error:
            _log.warning("cannot start a Python forkserver with %s: %s", key.python, error)
            return False
        finally:
            os.close(diag_w)
        ours.setblocking(False)
        return True

    async def greeted(self) -> bool:
        """Wait for the started interpreter's hello; False (logged) if it does not come."""
        loop = asyncio.get_running_loop()
        key, startup = self.key, dict(self.key.startup)
        if self.sock is None:
            return False
        try:
            hello = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 20), _START_TIMEOUT)
        except (TimeoutError, OSError):
            hello = b""
        if not hello.startswith(b"hello\0"):
            problem = self._diagnostics() or "no output"
            _log.warning("the Python forkserver of %s did not start: %s", key.python, problem)
            return False
        seen = dict(pair.partition(b"=")[::2] for pair in hello.split(b"\0")[1:] if pair)
        # What the interpreter added to its own environment while starting (LC_CTYPE, when it
        # coerces the C locale): a task's own interpreter would add it too.
        self.additions = {
            os.fsdecode(name): os.fsdecode(value)
            for name, value in seen.items()
            if startup.get(os.fsdecode(name)) != os.fsdecode(value)
        }
        return True

    def _diagnostics(self) -> str:
        if self._diag < 0:
            return ""
        os.set_blocking(self._diag, False)
        with contextlib.suppress(OSError):
            return os.read(self._diag, 4000).decode("utf-8", "replace").strip()
        return ""

    def tell(self, message: bytes) -> None:
        """Send a short message without descriptors, if the forkserver can take it now."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.send(message)

    async def request(self, payload: bytes, fds: Sequence[int]) -> bool:
        """Hand a request over, waiting while the forkserver's queue is full; False if it cannot."""
        loop = asyncio.get_running_loop()
        while True:
            if self.sock is None or len(payload) > _MAX_REQUEST:
                return False
            try:
                self.sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()
                fd = self.sock.fileno()
                loop.add_writer(fd, _resolve, writable)
                try:
                    await asyncio.wait_for(writable, _START_TIMEOUT)
                except TimeoutError:
                    return False
                finally:
                    loop.remove_writer(fd)
            except OSError:
                return False
            else:
                return True

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        """Close the control socket: the forkserver exits once its children are done."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self._diag >= 0:
            os.close(self._diag)
            self._diag = -1

    async def stopped(self) -> None:
        """Wait for the closed forkserver to exit; kill it if it takes too long."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            await asyncio.to_thread(proc.wait, _STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)


# Forkservers started ahead of the first task that needs one (`start_early`), until a worker takes it.
_EARLY: dict[_Key, _Server] = {}
_EARLY_LOCK = threading.Lock()


def start_early(program: str, interpreter: str, env: Mapping[str, str], umask: int) -> None:
    """Start now the forkserver that a task running ``program script.py`` with `env` would start
    (see `python_start`), so that the first such task forks instead of waiting for an interpreter.

    Any thread may call it; the forkserver gets `umask` (the engine's own may be another for a
    moment). A worker's `ForkServers` takes the forkserver on its first task with the same
    interpreter and start-up environment, or closes it when it stops if no such task came.
    """
    key = _key(program, interpreter, env) if usable() else None
    if key is None:
        return
    with _EARLY_LOCK:
        if key not in _EARLY:
            server = _Server(key)
            if server.spawn(umask):
                _EARLY[key] = server
            else:
                server.close()


def _take_early(key: _Key) -> _Server | None:
    with _EARLY_LOCK:
        return _EARLY.pop(key, None)


def _unclaimed_early() -> list[_Server]:
    with _EARLY_LOCK:
        servers = list(_EARLY.values())
        _EARLY.clear()
    return servers


class ForkServers:
    """The forkservers of one worker, by interpreter and start-up environment, started on first use."""

    def __init__(self) -> None:
        self._servers: dict[_Key, asyncio.Task[_Server | None]] = {}
        self._retired: list[_Server] = []
        self._restarts: dict[_Key, int] = {}
        self._closed = False

    async def _server(self, key: _Key) -> _Server | None:
        """The forkserver for `key`; None for the task that starts it (it is spawned meanwhile, as
        fast as waiting for the new interpreter would be) and when there can be none."""
        task = self._servers.get(key)
        if task is not None and task.done():
            server = task.result()
            if server is not None and not server.alive:
                self._retire(key, server)
                task = None
        if task is None:
            if self._closed or self._restarts.get(key, 0) > _MAX_RESTARTS:
                return None
            self._restarts[key] = self._restarts.get(key, 0) + 1
            early = _take_early(key)
            task = asyncio.ensure_future(self._launch(key, early))
            self._servers[key] = task
            self._evict()
            if early is None:
                return None
        else:  # most recently used last
            self._servers[key] = self._servers.pop(key)
        return await asyncio.shield(task)

    async def _launch(self, key: _Key, early: _Server | None) -> _Server | None:
        server = early or _Server(key)
        try:
            # One started early is spawned already.
            started = (early is not None or server.spawn()) and await server.greeted()
        except asyncio.CancelledError:
            self._retired.append(server)
            server.close()
            raise
        except Exception as error:  # tasks are spawned then, as without a forkserver
            _log.warning("cannot start a Python forkserver with %s: %s", key.python, error)
            started = False
        if not started:
            self._restarts[key] = _MAX_RESTARTS + 1
            self._retired.append(server)
            server.close()
            return None
        return server

    def _retire(self, key: _Key, server: _Server) -> None:
        del self._servers[key]
        server.close()
        self._retired.append(server)

    def _evict(self) -> None:
        while len(self._servers) > _MAX_SERVERS:
            key = next(iter(self._servers))
            task = self._servers[key]
            if not task.done():
                break
            server = task.result()
            del self._servers[key]
            if server is not None:
                server.close()
                self._retired.append(server)

    async def start(
        self,
        words: Sequence[str],
        cwd: Path,
        argv: Sequence[str],
        interpreter: str,
        env: Mapping[str, str],
    ) -> Program | None:
        """Fork ``words`` (``python script.py args``) in `cwd` with `env`; None if it must be spawned.

        The child is forked only if `interpreter` is what the shell would run for ``words[0]``.

        A child that cannot enter `cwd` exits at once, with a `start_error` (as a spawn of `argv`
        would fail).
        """
        key = _key(words[0], interpreter, env)
        script = words[1] if len(words) > 1 else ""
        if key is None or not script.endswith(".py") or not (cwd / script).is_file():
            return None
        server = await self._server(key)
        if server is None:
            return None
        env = {**env, **server.additions}
        fields = [b"run", os.fsencode(cwd), os.fsencode(words[0]), str(len(words) - 1).encode()]
        fields += [os.fsencode(word) for word in words[1:]]
        fields += [os.fsencode(name) + b"=" + os.fsencode(value) for name, value in env.items()]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            sent = await server.request(b"\0".join(fields), (out_w, err_w, status_w))
        except BaseException:
            for fd in (out_r, err_r, status_r):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w, status_w):
                os.close(fd)
        if not sent:
            for fd in (out_r, err_r, status_r):
                os.close(fd)
            return None
        loop = asyncio.get_running_loop()
        status = Status(status_r, loop)
        try:
            # The child sets itself up meanwhile: if it cannot enter `cwd` it says so and exits,
            # and `run_process` raises the start error once it has followed it to its end.
            await status.until(lambda: status.pid is not None)
        except asyncio.CancelledError:
            await asyncio.shield(abandon(status, out_r, err_r))
            raise
        if status.pid is None:
            # The forkserver died before it forked: nothing started.
            status.close()
            os.close(out_r)
            os.close(err_r)
            return None
        pipes = [f"pipe:[{os.fstat(fd).st_ino}]" for fd in (out_r, err_r)]
        stdout, out_transport = await pipe_reader(loop, out_r)
        stderr, err_transport = await pipe_reader(loop, err_r)
        return Forked(
            status, (stdout, stderr), [out_transport, err_transport], pipes, server.tell, (argv[0], cwd)
        )

    async def close(self) -> None:
        """Close every forkserver and wait for it to exit (the worker's programs are gone by then)."""
        self._closed = True
        tasks = list(self._servers.values())
        self._servers.clear()
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                server = await task
                if server is not None:
                    server.close()
                    self._retired.append(server)
        # Started ahead for this process's tasks and taken by none: no later task will take one.
        retired, self._retired = [*self._retired, *_unclaimed_early()], []
        for server in retired:
            server.close()
        await asyncio.gather(*(server.stopped() for server in retired))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# The forkservers of the worker running the current task; None: every program is spawned.
FORKSERVERS: ContextVar[ForkServers | None] = ContextVar("tiercel_forkservers", default=None)


def python_start(words: Sequence[str], cwd: Path, argv: Sequence[str], interpreter: str) -> Start | None:
    """How `run_process` can start ``words`` (``python script.py ...``) from a forkserver.

    ``argv`` is what would be spawned instead (it names the program in start errors); `interpreter`
    the one ``python`` that may be forked: the task is spawned when its PATH finds another. None when
    this worker keeps no forkservers or tasks cannot be forked here.
    """
    servers = FORKSERVERS.get()
    if servers is None or not usable() or len(words) < 2 or words[0] != "python":
        return None
    if words[1].startswith("-"):
        return None  # options (-m, -u, -c ...): spawned
    return functools.partial(servers.start, tuple(words), cwd, tuple(argv), interpreter)
