"""The warm interpreter behind Python script tasks: it forks one fresh child per task.

engine.processes.forkserver starts it as ``python <this file> <fd>``, with the interpreter and the
start-up environment the task's own ``python script.py`` would have had, stdin from /dev/null and
pipes for stdout and stderr (so that the standard streams are set up as a task's are). It runs in
whatever Python the tasks use, so it needs only the standard library and Python 3.8 (and imports
nothing a child would keep: hence no ``from __future__`` import, and quoted annotations).

Protocol, on the control socket (a SOCK_SEQPACKET Unix socket, fd given as argument):

* to the engine, once: ``hello`` and this interpreter's environment after its start-up (Python may
  add ``LC_CTYPE`` when it coerces the C locale: a task's own interpreter would do the same);
* from the engine, per task: ``run``, the working folder, the program name (``python``), the
  argument count, the arguments (the script first), then ``NAME=value`` pairs, NUL-separated, with
  three descriptors: the task's stdout and stderr, and a status pipe. On the status pipe the server
  writes ``pid <pid> <start ticks>`` at once, and ``usage <user CPU s> <system CPU s> <ru_maxrss>``
  then ``exit <wait status>`` when it has waited for the child; a child that cannot enter the
  working folder writes ``fail <errno> <message>`` first.

The server reaps its children on SIGCHLD (through a wakeup pipe) and exits once the control socket is
closed and no child is left whose status someone still reads: it never outlives its engine for long.

A child becomes what ``python script.py`` in the task folder would be: a session and process group of
its own, the task's pipes as fds 1 and 2, no other descriptor of the server, the signal dispositions
the interpreter started with, the task's environment, ``sys.argv``, ``sys.path[0]``, no module the
server imported, and a fresh ``__main__`` module. It then leaves the server's loop and runs the
script as the interpreter runs one: an uncaught exception, ``sys.exit`` and a KeyboardInterrupt end
it with the same output and status (the traceback without the server's frames), and what the
interpreter's shutdown does that a script can see is done (`_finalize`).
"""

import os
import sys

# What the interpreter holds before the server imports anything: the child gives back the rest.
_STARTUP_MODULES = frozenset(sys.modules)

# After the look at what the interpreter holds (the child keeps its own references to these, and
# a script importing one gets a module object of its own, as in a fresh interpreter).
import atexit  # noqa: E402
import gc  # noqa: E402
import signal  # noqa: E402

_CONTROL_FD = int(sys.argv[1]) if __name__ == "__main__" else -1
_OWN_FOLDER = os.path.dirname(os.path.realpath(__file__))
_FDS_PER_REQUEST = 3
_MAX_REQUEST = 4 << 20


class _Job:
    """What a child runs, decoded from a request."""

    def __init__(self, fields: "list[bytes]") -> None:
        self.cwd = fields[1]
        self.program = os.fsdecode(fields[2])
        count = int(fields[3])
        self.args = [os.fsdecode(arg) for arg in fields[4 : 4 + count]]
        self.env = [pair.partition(b"=") for pair in fields[4 + count :] if pair]


def _noop(signum: int, frame: object) -> None:
    """SIGCHLD wakes the loop through the wakeup pipe; the handler itself has nothing to do."""


def _write(fd: int, text: str) -> None:
    try:  # noqa: SIM105 (contextlib is not imported here: the child would inherit it)
        os.write(fd, text.encode("utf-8", "replace"))
    except OSError:
        pass  # nobody reads the status any more


def _ticks(pid: int) -> int:
    """The start time of a process in clock ticks (``/proc/<pid>/stat``), 0 if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
        return int(data[data.rfind(b")") + 2 :].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


class _Child:
    """A running child, as the server keeps it until it has waited for it."""

    def __init__(self, status: int, stderr: int) -> None:
        self.status: int | None = status  # None once nobody reads it any more
        self.stderr = stderr
        self.quiet = False  # the engine is killing it: its end is not reported on stderr


def _serve() -> "tuple[_Job, int]":
    """Serve requests until the engine is gone; return (in a child only) its job and status pipe."""
    import _socket
    import select

    control = _socket.socket(fileno=_CONTROL_FD)
    control.setblocking(False)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    chld = signal.SIGCHLD
    original = signal.getsignal(chld)
    signal.signal(chld, _noop)
    signal.set_wakeup_fd(wake_w)
    hello = [b"hello"] + [name + b"=" + value for name, value in os.environb.items()]
    control.sendall(b"\0".join(hello))
    # The interpreter's objects stay out of the children's collections: their pages stay shared.
    gc.freeze()
    poller = select.poll()
    poller.register(_CONTROL_FD, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    children: dict[int, _Child] = {}
    statuses: dict[int, int] = {}  # status pipe -> pid
    listening = True
    space = _socket.CMSG_SPACE(_FDS_PER_REQUEST * 4)
    while listening or any(child.status is not None for child in children.values()):
        for fd, events in poller.poll(None if listening else 200):
            if fd in statuses and events & (select.POLLERR | select.POLLHUP):
                # The engine closed its end: the child's end will be reported to nobody.
                poller.unregister(fd)
                children[statuses.pop(fd)].status = None
                os.close(fd)
        try:
            while os.read(wake_r, 512):
                pass
        except OSError:
            pass  # empty (it does not block)
        # Requests first: a `quiet` sent before a kill is seen before the exit it causes.
        while listening:
            try:
                data, ancillary, _flags, _address = control.recvmsg(
                    _MAX_REQUEST, space, _socket.MSG_CMSG_CLOEXEC
                )
            except BlockingIOError:
                break
            except OSError:
                data, ancillary = b"", []
            fds = _descriptors(ancillary)
            if not data:
                listening = False
                poller.unregister(_CONTROL_FD)
            elif data.startswith(b"quiet\0"):
                child = children.get(int(data[6:]))
                if child is not None:
                    child.quiet = True
            elif len(fds) == _FDS_PER_REQUEST and data.startswith(b"run\0"):
                job = _Job(data.split(b"\0"))
                _set_environment(job.env)
                pid = os.fork()
                if pid == 0:
                    # The child: nothing of the server's may stay with it.
                    signal.set_wakeup_fd(-1)
                    signal.signal(chld, original)
                    control.detach()
                    own = [_CONTROL_FD, wake_r, wake_w, *statuses]
                    own += [child.stderr for child in children.values()]
                    for fd in own:
                        os.close(fd)
                    return job, _child_streams(fds)
                os.close(fds[0])
                children[pid] = _Child(fds[2], fds[1])
                statuses[fds[2]] = pid
                poller.register(fds[2], 0)
                _write(fds[2], f"pid {pid} {_ticks(pid)}\n")
                continue
            for fd in fds:
                os.close(fd)
        # Reaped here only, between requests: a child is registered before its exit can be seen.
        while children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            child = children.pop(pid)
            _ended(child, status)
            if child.status is not None:
                figures = f"{usage.ru_utime} {usage.ru_stime} {usage.ru_maxrss}"
                _write(child.status, f"usage {figures}\nexit {status}\n")
                poller.unregister(child.status)
                del statuses[child.status]
                os.close(child.status)
    os._exit(0)


def _ended(child: _Child, status: int) -> None:
    """Say on the child's stderr how a signal ended it, as /bin/sh (dash) says it of its commands."""
    if os.WIFSIGNALED(status) and not child.quiet:
        number = os.WTERMSIG(status)
        if number not in (signal.SIGINT, signal.SIGPIPE):
            text = signal.strsignal(number) or f"Signal {number}"
            _write(child.stderr, text + (" (core dumped)" if os.WCOREDUMP(status) else "") + "\n")
    os.close(child.stderr)


def _descriptors(ancillary: "list[tuple[int, int, bytes]]") -> "list[int]":
    import _socket

    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds += [int.from_bytes(data[i : i + 4], sys.byteorder) for i in range(0, usable, 4)]
    return fds


def _child_streams(fds: "list[int]") -> int:
    """Make the task's pipes fds 1 and 2 and close them elsewhere; return the status pipe."""
    stdout, stderr, status = fds
    os.setsid()
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    for fd in (stdout, stderr):
        if fd > 2:
            os.close(fd)
    return status


def _become(job: _Job, status: int) -> "tuple[str, dict[str, object]]":
    """Turn this child into the task's interpreter; return the script's file name and globals."""
    try:
        os.chdir(job.cwd)
    except OSError as error:
        _write(status, f"fail {error.errno or 0} {error.strerror or error}\n")
        os._exit(127)
    os.close(status)  # nothing can fail from here on
    _set_pwd()
    script = job.args[0]
    # As the interpreter computes them (3.9+): an absolute file name, sys.path[0] its real folder.
    filename = script if os.path.isabs(script) else os.path.join(os.getcwd(), script)
    sys.argv[:] = job.args
    if hasattr(sys, "orig_argv"):
        sys.orig_argv[:] = [job.program, *job.args]
    if sys.path and sys.path[0] == _OWN_FOLDER and not getattr(sys.flags, "safe_path", False):
        sys.path[0] = os.path.dirname(os.path.realpath(filename))
    for module in set(sys.modules) - _STARTUP_MODULES:
        del sys.modules[module]
    main = type(sys)("__main__")
    namespace = main.__dict__
    namespace["__annotations__"] = {}
    namespace["__builtins__"] = sys.modules["builtins"]
    namespace["__loader__"] = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", filename)
    namespace["__file__"] = filename
    namespace["__cached__"] = None
    sys.modules["__main__"] = main
    return filename, namespace


def _set_environment(pairs: "list[tuple[bytes, bytes, bytes]]") -> None:
    """Make this process's environment exactly the task's, for the child to inherit.

    Set here rather than in the child, and only what differs from the previous task's: that is
    usually all but the process token. (What the interpreter read of its environment as it started
    is the same: the engine starts one server per start-up environment.)
    """
    wanted = {name: value for name, _equals, value in pairs}
    environ = os.environb
    for name in [name for name in environ if name not in wanted]:
        del environ[name]
    for name, value in wanted.items():
        if environ.get(name) != value:
            environ[name] = value


def _set_pwd() -> None:
    """PWD as /bin/sh (dash) exports it to the commands it runs: kept if it names this folder."""
    pwd = os.environ.get("PWD", "")
    if pwd.startswith("/"):
        try:
            here, there = os.stat("."), os.stat(pwd)
        except OSError:
            pass  # not this folder
        else:
            if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino):
                return
    try:  # noqa: SIM105 (contextlib is not imported here: the child would inherit it)
        os.environ["PWD"] = os.getcwd()
    except OSError:
        pass  # the folder was deleted meanwhile


def _run(program: str, filename: str, namespace: "dict[str, object]") -> int:
    """Run the script as ``python`` runs one; return its exit status."""
    try:
        with open(filename, "rb") as file:
            source = file.read()
    except OSError as error:
        sys.stderr.write(f"{program}: can't open file {filename!r}: [Errno {error.errno}] {error.strerror}\n")
        return _finalize(2)
    try:
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)
    except SystemExit as stop:
        return _finalize(_exit_code(stop))
    except BaseException as error:
        _print_uncaught(error)
        code = _finalize(1)
        if isinstance(error, KeyboardInterrupt):
            # An interpreter ended by an uncaught KeyboardInterrupt kills itself with SIGINT.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        return code
    return _finalize(0)


def _exit_code(stop: SystemExit) -> int:
    """The status `sys.exit(code)` ends the interpreter with: an int as is, None 0, else printed and 1."""
    code = stop.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    try:  # noqa: SIM105 (contextlib is not imported here: the child would inherit it)
        sys.stderr.write(f"{code}\n")
    except Exception:
        pass  # as the interpreter, which has no better place to say it
    return 1


def _print_uncaught(error: BaseException) -> None:
    """Print an uncaught exception of the script as the interpreter does, without this file's frame."""
    trace = error.__traceback__.tb_next if error.__traceback__ is not None else None
    error.__traceback__ = trace
    sys.last_type, sys.last_value, sys.last_traceback = type(error), error, trace
    if sys.version_info >= (3, 12):
        sys.last_exc = error
    try:
        sys.excepthook(type(error), error, trace)
    except BaseException as hook_error:
        sys.stderr.write("Error in sys.excepthook:\n")
        sys.__excepthook__(type(hook_error), hook_error, hook_error.__traceback__)
        sys.stderr.write("\nOriginal exception was:\n")
        sys.__excepthook__(type(error), error, trace)


def _finalize(code: int) -> int:
    """What the interpreter's shutdown does that a script can see, in its order, for what it made.

    Non-daemon threads are joined, atexit handlers run, the standard streams flushed (120 if stdout
    cannot be, as Python does), then the modules the script imported and its ``__main__`` cleared
    (so that what only they held is finalized, as an unclosed file is flushed) and cycles collected.
    The rest of a full shutdown would only tear down the forkserver's own objects, each page copied
    for nothing: the child then ends with `os._exit`.
    """
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    atexit._run_exitfuncs()
    if not _flush_std_files():
        code = 120
    if threading is None or threading.active_count() <= 1:
        # Daemon threads still running would see the modules emptied under them: then left alone.
        for name, module in reversed(list(sys.modules.items())):
            if name == "__main__" or name not in _STARTUP_MODULES:
                _clear(vars(module))
        gc.collect()
    _flush_std_files()
    return code


def _flush_std_files() -> bool:
    """Flush sys.stdout and sys.stderr as the interpreter does at exit; False if stdout failed."""
    flushed = True
    for stream in (sys.stdout, sys.stderr):
        if stream is None or getattr(stream, "closed", False):
            continue
        try:
            stream.flush()
        except Exception as error:
            if stream is sys.stdout:
                flushed = False
                with_module = type(error).__module__ not in ("builtins", "__main__")
                name = (
                    f"{type(error).__module__}.{type(error).__qualname__}"
                    if with_module
                    else type(error).__qualname__
                )
                _write(2, f"Exception ignored in: {stream!r}\n{name}: {error}\n")
    return flushed


def _clear(namespace: "dict[str, object]") -> None:
    """Empty a module's namespace as the interpreter does at shutdown (underscored names first)."""
    for first in (True, False):
        for name in list(namespace):
            if name != "__builtins__" and name.startswith("_") == first:
                namespace[name] = None


if __name__ == "__main__":
    _job, _status = _serve()
    _filename, _globals = _become(_job, _status)
    os._exit(_run(_job.program, _filename, _globals) & 0xFF)
