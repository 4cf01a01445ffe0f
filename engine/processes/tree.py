"""Find every process a task program started, wherever it went, and reap those the engine adopts.

A program runs in a session and process group of its own, with a random token in its environment.
Its descendants can leave the group (``setsid``), shed the token (``env -i``) and lose their parent
(a double fork). What they cannot leave, on Linux, is the engine's own process tree: the engine is
made a child subreaper (``PR_SET_CHILD_SUBREAPER``), so an orphan is re-parented to the engine rather
than to init. A program's processes are then:

* the program and its descendants (parent links, ``/proc/<pid>/stat``);
* processes in its group or session, and holders of its token (as before the subreaper);
* orphans the engine adopted that show where they come from: the program's working folder as their
  working directory, the program's output pipes among their descendants, or its token; and
  everything below them;
* orphans the engine adopted that show nothing (they moved to ``/``, closed their output and cleared
  their environment), by their start time, and everything below them.

The last rule rests on two facts. The engine registers every child it starts itself (`spawning`), so
any other child of the engine outside its own session was adopted: it descends from a task program.
And a process starts while its ancestors live, so it descends from one of the programs whose tree was
alive when it started. Each program has a window of clock ticks, from its start until the moment
none of its processes is left (`ProgramTree.finish`). An adopted orphan whose start lies in the
window of one program only is that program's; one that started while several programs ran is
claimed once all of them have finished, by the last to finish (finishing and looking again happen in
one step of the event loop, so two programs ending together cannot both leave it to the other).
While the engine is starting a child, an unregistered child that started since then may be that one:
it is not judged until the start is over.

Adopted orphans become the engine's children, and their exit must be waited for or they stay
zombies. Only processes known to belong to a program are reaped (never ``waitpid(-1)``), so the
exit status of a child someone else waits for (asyncio's watcher, ``subprocess``) is never taken.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ..model.resources import ResourceUsage

__all__ = [
    "HAS_PROC",
    "TASK_FOLDER_PREFIX",
    "TOKEN_ENV",
    "ProcStat",
    "ProgramTree",
    "Spawn",
    "become_subreaper",
    "holds",
    "leftovers",
    "now_ticks",
    "read_stat",
    "snapshot",
    "spawning",
]

TOKEN_ENV = "TIERCEL_PROCESS_TOKEN"
# Task working folders start with this, then the token prefix of their attempt (see leftovers.py).
TASK_FOLDER_PREFIX = "tiercel-task-"
PROC = "/proc"
HAS_PROC = sys.platform.startswith("linux") and os.path.isdir(f"{PROC}/self")
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37

_subreaper: bool | None = None
# The programs being followed now, by pid: their own exit is asyncio's to wait for.
_TREES: dict[int, ProgramTree] = {}
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# Children the engine started itself (pid -> start): never claimed, never waited for here. Guarded by
# _LOCK, as children are also started from threads.
_LOCK = threading.Lock()
_OWN_CHILDREN: dict[int, int] = {}
# Starts under way: id -> a tick no later than the child's start.
_STARTING: dict[int, int] = {}
_start_ids = itertools.count()
# The kernel lists each thread's children (CONFIG_PROC_CHILDREN): `ProgramTree.gone` can use them.
_CHILDREN_LISTS = HAS_PROC and os.path.exists(f"{PROC}/{os.getpid()}/task/{os.getpid()}/children")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What ``/proc/<pid>/stat`` says of a process.

    Attributes:
        state: The state letter (``Z`` for a zombie).
        ppid: The parent.
        pgrp: The process group.
        session: The session.
        start: The start time in clock ticks since boot.
    """

    state: bytes
    ppid: int
    pgrp: int
    session: int
    start: int

    @property
    def dead(self) -> bool:
        return self.state in (b"Z", b"X")


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux), once; return whether it is one."""
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
                    flag = ctypes.c_int(0)
                    libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
                    _subreaper = flag.value == 1
            except (OSError, AttributeError):
                pass
    return _subreaper


def now_ticks() -> int:
    """The clock as ``/proc/<pid>/stat`` counts start times: clock ticks since boot."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * _TICKS_PER_S)


class Spawn:
    """A child of the engine being started; see `spawning`.

    Attributes:
        since: A tick no later than the start of the child.
    """

    def __init__(self, since: int) -> None:
        self.since = since

    def started(self, pid: int) -> None:
        """The child is `pid`: it is the engine's own and no program's orphan."""
        stat = read_stat(pid) if HAS_PROC else None
        if stat is not None:
            with _LOCK:
                _OWN_CHILDREN[pid] = stat.start


@contextlib.contextmanager
def spawning() -> Iterator[Spawn]:
    """Start a child of the engine inside this block and give its pid to `Spawn.started`.

    Every process the engine starts itself goes through here (task programs, expression workers):
    an unregistered child of the engine is taken for an orphan of a task program.
    """
    key = next(_start_ids)
    # One tick of margin: the clock is read before the fork, but ticks are truncated.
    spawn = Spawn(now_ticks() - 1 if HAS_PROC else 0)
    with _LOCK:
        _STARTING[key] = spawn.since
    try:
        yield spawn
    finally:
        with _LOCK:
            del _STARTING[key]


def read_stat(pid: int) -> ProcStat | None:
    """The stat of a process, or None if it is gone."""
    try:
        fd = os.open(f"{PROC}/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name sits in parentheses and may itself hold spaces or parentheses.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return ProcStat(fields[0], int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def snapshot() -> dict[int, ProcStat]:
    """The stat of every process but this one."""
    own = os.getpid()
    found: dict[int, ProcStat] = {}
    try:
        names = os.listdir(PROC)
    except OSError:
        return found
    for name in names:
        if name.isdigit() and int(name) != own:
            stat = read_stat(int(name))
            if stat is not None:
                found[int(name)] = stat
    return found


def holds(pid: int, needles: Iterable[bytes]) -> bytes | None:
    """The first of `needles` that starts a variable of the environment of a process, or None."""
    try:
        fd = os.open(f"{PROC}/{pid}/environ", os.O_RDONLY)
    except OSError:
        return None  # gone, or another user's process
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    environ = b"\0" + b"".join(chunks)
    return next((needle for needle in needles if b"\0" + needle in environ), None)


def working_dir(pid: int) -> str | None:
    """The working directory of a process (without a " (deleted)" mark), or None."""
    try:
        return os.readlink(f"{PROC}/{pid}/cwd").removesuffix(" (deleted)")
    except OSError:
        return None


def within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _open_pipes(pid: int) -> set[str]:
    """The pipes a process holds open, as ``pipe:[inode]``."""
    found: set[str] = set()
    try:
        fds = os.listdir(f"{PROC}/{pid}/fd")
    except OSError:
        return found
    for fd in fds[:1024]:
        with contextlib.suppress(OSError):
            link = os.readlink(f"{PROC}/{pid}/fd/{fd}")
            if link.startswith("pipe:"):
                found.add(link)
    return found


def children_of(stats: Mapping[int, ProcStat]) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    return children


def descendants(seeds: Iterable[int], children: Mapping[int, list[int]]) -> set[int]:
    """The seeds and everything below them."""
    found = set(seeds)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


class ProgramTree:
    """The processes of one program: finds them (see the module) and reaps those the engine adopted.

    Args:
        pid: The program, which leads its own session and group.
        token: The value of ``TIERCEL_PROCESS_TOKEN`` in its environment.
        cwd: Its working folder: an adopted orphan working there is the program's, unless the engine
            itself works there too.
        pipes: Its output pipes (``pipe:[inode]``): an adopted orphan holding one is the program's.
        since: A tick no later than the program's start, used if its start cannot be read.
        start: The program's start, when its starter read it already.

    Attributes:
        waiting: The last `live` left an orphan unjudged because the engine was starting a child.
        adopted_usage: What the orphans the engine adopted from the program, and waited for, used.
    """

    def __init__(
        self,
        pid: int,
        token: str,
        cwd: str,
        pipes: Iterable[str] = (),
        since: int = 0,
        start: int | None = None,
    ) -> None:
        self.pid = pid
        self._needle = f"{TOKEN_ENV}={token}".encode()
        self._own = os.getpid()
        self._cwd = os.path.realpath(cwd)
        self._folder_is_own = within(os.path.realpath(os.getcwd()), self._cwd)
        self._pipes = set(pipes)
        # Processes seen as the program's (pid -> start): still its own once re-parented or dead.
        self._known: dict[int, int] = {}
        self._signalled: dict[int, set[int]] = {}
        stat = read_stat(pid) if HAS_PROC else None
        self.start_ticks = stat.start if stat is not None else 0
        if start is not None:
            # Read by whoever started it, before it could end and be waited for by someone else.
            self.start_ticks = start
        if stat is not None and stat.start == self.start_ticks:
            self._known[pid] = stat.start
        # The window of ticks in which a process of the program may start (see the module).
        self._window_start = self.start_ticks or since
        self._window_end: int | None = None
        self.waiting = False
        # What the orphans of the program the engine adopted and waited for used.
        self.adopted_usage = ResourceUsage(0.0, None)
        _TREES[pid] = self

    def finish(self) -> None:
        """None of the program's processes is left: later processes cannot be its.

        Call `live` again at once (without awaiting in between): orphans that waited for this
        program, and no other still running, are now claimed.
        """
        if self._window_end is None:
            self._window_end = now_ticks() + 1

    def _covers(self, start: int) -> bool:
        return self._window_start <= start and (self._window_end is None or start <= self._window_end)

    def close(self) -> None:
        """The program is no longer followed."""
        if _TREES.get(self.pid) is self:
            del _TREES[self.pid]

    def gone(self) -> bool:
        """Whether no process of the program is left, shown without reading every process.

        Once the leader has exited, every live descendant has an ancestor that lost its parent and
        was re-parented to the engine, the nearest subreaper: with the group empty and no adopted
        orphan among the engine's children, nothing is left. False means "look with `live`".
        """
        if not (_subreaper and _CHILDREN_LISTS):
            return False
        stat = read_stat(self.pid)
        if stat is not None and stat.start == self.start_ticks:
            return False  # the leader runs, or is a zombie not yet waited for
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return not _adopted_any()
        except PermissionError:
            pass
        return False

    def live(self) -> set[int]:
        """Pids of the program's live (not zombie) processes; reaps the dead ones the engine adopted.

        Without /proc, only the group is checked; its presence is reported as the program's pid.
        """
        if not HAS_PROC:
            try:
                os.killpg(self.pid, 0)
            except ProcessLookupError:
                return set()
            except PermissionError:
                pass
            return {self.pid}
        stats = snapshot()
        children = children_of(stats)
        seeds: set[int] = set()
        for pid, stat in stats.items():
            if stat.start < self.start_ticks:
                continue  # older than the program: cannot be its descendant
            if (
                pid == self.pid
                or stat.pgrp == self.pid
                or stat.session == self.pid
                or self._known.get(pid) == stat.start
            ):
                seeds.add(pid)
        seeds |= self._adopted(stats, seeds)
        seeds |= self._started_within(stats, seeds)
        members = descendants(seeds, children)
        # Token holders the parent links did not reach (re-parented to an outer subreaper or init).
        for pid, stat in stats.items():
            fresh = pid not in members and not stat.dead and stat.start >= self.start_ticks
            if fresh and holds(pid, (self._needle,)) is not None:
                members |= descendants((pid,), children)
        self._known = {pid: stats[pid].start for pid in members}
        _reap(stats)
        return {pid for pid in members if not stats[pid].dead}

    def signal(self, sig: int, pids: set[int], *, once: bool) -> None:
        """Send ``sig`` to the group and to ``pids``; with ``once``, skip pids that already got it."""
        done = self._signalled.setdefault(sig, set())
        if not (once and self.pid in done):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
            done.add(self.pid)
        for pid in pids:
            if once and pid in done:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
            done.add(pid)

    def _adopted(self, stats: Mapping[int, ProcStat], seeds: set[int]) -> set[int]:
        """The engine's adopted orphans that show they are this program's (see the module)."""
        found: set[int] = set()
        for pid, stat in _orphans(stats)[0].items():
            if pid in seeds or stat.dead or stat.start < self.start_ticks:
                continue
            if self._shows_origin(pid):
                found.add(pid)
        return found

    def _started_within(self, stats: Mapping[int, ProcStat], seeds: set[int]) -> set[int]:
        """The engine's adopted orphans that started in this program's window and no running other's.

        Dead ones are included, so that they are reaped.
        """
        self.waiting = False
        orphans, starting = _orphans(stats)
        if not orphans:
            return set()
        others = [tree for tree in _TREES.values() if tree is not self and tree._window_end is None]
        found: set[int] = set()
        for pid, stat in orphans.items():
            if pid in seeds or not self._covers(stat.start):
                continue
            if starting is not None and stat.start >= starting:
                self.waiting = True  # may be the child being started
                continue
            if not any(tree._covers(stat.start) for tree in others):
                found.add(pid)
        return found

    def _shows_origin(self, pid: int) -> bool:
        if not self._folder_is_own:
            cwd = working_dir(pid)
            if cwd is not None and within(cwd, self._cwd):
                return True
        if self._pipes and self._pipes & _open_pipes(pid):
            return True
        return holds(pid, (self._needle,)) is not None


def _orphans(stats: Mapping[int, ProcStat]) -> tuple[dict[int, ProcStat], int | None]:
    """The engine's children it did not start itself, outside its session: adopted orphans.

    Returns:
        Those orphans, and the oldest tick a start under way may give its child (None if there is
        no such start): an orphan started since may be that child, registered a moment later.
        Both are read together, so that a child is either registered or covered by its start.
    """
    if not _subreaper:
        return {}, None
    own = os.getpid()
    own_session = os.getsid(0)
    with _LOCK:
        for pid, start in list(_OWN_CHILDREN.items()):
            stat = stats.get(pid)
            if stat is None or stat.start != start:
                # The snapshot may predate the child: ask again before forgetting it.
                fresh = read_stat(pid)
                if fresh is None or fresh.start != start:
                    del _OWN_CHILDREN[pid]
        own_children = dict(_OWN_CHILDREN)
        starting = min(_STARTING.values(), default=None)
    orphans = {
        pid: stat
        for pid, stat in stats.items()
        if stat.ppid == own
        and pid not in _TREES
        and own_children.get(pid) != stat.start
        # A task's process never joins the engine's session: children there are the engine's own.
        and stat.session != own_session
    }
    return orphans, starting


def _adopted_any() -> bool:
    """Whether the engine has a child it may have adopted: one it did not start, outside its session.

    Reads the children of each of the engine's threads (a child belongs to the thread that started
    it); an unreadable list counts as an adopted child.
    """
    own = os.getpid()
    own_session = os.getsid(0)
    try:
        threads = os.listdir(f"{PROC}/{own}/task")
    except OSError:
        return True
    for tid in threads:
        try:
            with open(f"{PROC}/{own}/task/{tid}/children", "rb") as file:
                pids = file.read().split()
        except FileNotFoundError:
            continue  # the thread ended
        except OSError:
            return True
        for text in pids:
            pid = int(text)
            if pid in _TREES:
                continue
            stat = read_stat(pid)
            if stat is None:
                continue
            with _LOCK:
                own_child = _OWN_CHILDREN.get(pid) == stat.start
            if not own_child and stat.session != own_session:
                return True
    return False


def _reap(stats: Mapping[int, ProcStat]) -> None:
    """Wait for the engine's dead children that belong to a followed program (never any other), and
    add what each used to its program's."""
    own = os.getpid()
    for pid, stat in stats.items():
        if stat.ppid != own or not stat.dead or pid in _TREES:
            continue
        tree = _owner(pid, stat)
        if tree is None:
            continue
        with contextlib.suppress(ChildProcessError, OSError):
            found, _, rusage = os.wait4(pid, os.WNOHANG)
            if found == pid:
                tree.adopted_usage += ResourceUsage.of(rusage)


def _owner(pid: int, stat: ProcStat) -> ProgramTree | None:
    for tree in _TREES.values():
        if tree._known.get(pid) == stat.start:
            return tree
        # In a program's group or session but not leading it: forked below the program.
        if pid != stat.pgrp and tree.pid in (stat.pgrp, stat.session) and stat.start >= tree.start_ticks:
            return tree
    return None


def leftovers(groups: Mapping[int, int], tokens: Mapping[str, int], prefixes: Iterable[str]) -> set[int]:
    """Live processes of programs an earlier engine started (it may have crashed since).

    Args:
        groups: Process group (the program's pid) -> start time of the program. A group is taken
            while its leader is gone or still the program (a group id is not handed out again while
            a process is in the group); only processes started since the program count.
        tokens: Token -> start time of its program; holders started since then count.
        prefixes: Token prefixes, each naming one attempt of one task run: holders of a token with
            such a prefix, and processes working in a task folder named after one, count whatever
            their start time. The prefixes of `tokens` are used the same way.

    Returns:
        Those processes and all their live descendants.
    """
    stats = snapshot()
    taken = {pgid: start for pgid, start in groups.items() if pgid not in stats or stats[pgid].start == start}
    needles = {f"{TOKEN_ENV}={token}".encode(): start for token, start in tokens.items()}
    folders = {prefix for prefix in prefixes if prefix}
    for token in tokens:
        # A token is its attempt's prefix followed by 32 hex digits (see run_process).
        if len(token) > 32:
            folders.add(token[:-32])
    needles.update(dict.fromkeys((f"{TOKEN_ENV}={prefix}".encode() for prefix in folders), 0))
    if not needles and not taken:
        return set()
    oldest = min([*needles.values(), *taken.values()])
    marks = tuple(f"/{TASK_FOLDER_PREFIX}{prefix}" for prefix in folders)
    seeds: set[int] = set()
    for pid, stat in stats.items():
        if stat.dead or stat.start < oldest:
            continue
        group = taken.get(stat.pgrp, taken.get(stat.session))
        if group is not None and stat.start >= group:
            seeds.add(pid)
            continue
        needle = holds(pid, needles)
        if needle is not None and stat.start >= needles[needle]:
            seeds.add(pid)
            continue
        if marks:
            cwd = working_dir(pid)
            if cwd is not None and any(mark in cwd for mark in marks):
                seeds.add(pid)
    return {pid for pid in descendants(seeds, children_of(stats)) if not stats[pid].dead}
