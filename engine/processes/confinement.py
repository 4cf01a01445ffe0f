"""Hold a task's programs to their resource limits: a cgroup where one can be made, else rlimits.

A cgroup holds the program and everything it starts: ``memory`` caps what they hold together (the
kernel kills one when they reach it, which `Confinement.memory_exceeded` tells afterwards) and
``cpu`` their CPU time per period. The engine makes the task's cgroup below its own (cgroup v2, where
its controllers are delegated, or the v1 ``memory`` and ``cpu`` hierarchies), or below the cgroup
named by ``TIERCEL_CGROUP`` (``none`` turns cgroups off). Where none can be made, each process gets
an RLIMIT_DATA of the memory limit (an allocation past it fails in the program) and the program a
lower scheduling priority for a CPU limit (a smaller share when the CPUs are busy, not a cap).
`Confinement.description` says which applies, for the task's log.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .limits import ResourceLimits

__all__ = ["CGROUP_ENV", "Confinement", "confine"]

CGROUP_ENV = "TIERCEL_CGROUP"
_PERIOD_US = 100_000
_MOUNTINFO = "/proc/self/mountinfo"
_OWN_CGROUPS = "/proc/self/cgroup"


@dataclass
class Confinement:
    """The limits of one program, as applied; `prepare` runs in its process before it starts.

    Attributes:
        description: What holds the program to its limits, for the task's log.
    """

    limits: ResourceLimits
    description: str
    _folders: list[Path] = field(default_factory=list)
    _procs: list[int] = field(default_factory=list)
    _version: int = 0
    _nice: int = 0
    _data_limit: int | None = None

    def prepare(self) -> None:
        """In the child, before it runs the program: system calls only (see spawn_program).

        A child that cannot join its cgroup says why on its stderr (the task's log) and exits 126,
        as a shell does for a command it cannot run: the program never runs without its limits.
        """
        for fd, folder in zip(self._procs, self._folders, strict=True):
            try:
                os.write(fd, b"0")  # moves the writing process into the cgroup
            except OSError as error:
                os.write(2, f"cannot join cgroup {folder}: {error.strerror}\n".encode())
                os._exit(126)
        if not self._folders:
            if self._data_limit is not None:
                resource.setrlimit(resource.RLIMIT_DATA, (self._data_limit, self._data_limit))
            if self._nice:
                os.setpriority(os.PRIO_PROCESS, 0, self._nice)

    def memory_exceeded(self) -> bool:
        """Whether the kernel killed a process of the program for reaching the memory limit."""
        if not self._folders or self.limits.memory is None:
            return False
        events = "memory.events" if self._version == 2 else "memory.oom_control"
        try:
            text = (self._folders[0] / events).read_text()
        except OSError:
            return False
        counts = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
        return int(counts.get("oom_kill", "0").strip() or 0) > 0

    def close(self) -> None:
        """Let go of the cgroups (the program's processes are gone by now)."""
        for fd in self._procs:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._procs.clear()
        for folder in self._folders:
            with contextlib.suppress(OSError):
                folder.rmdir()


def confine(limits: ResourceLimits) -> Confinement:
    """Set up the limits of one program that is about to start."""
    asked = ", ".join(
        part
        for part in (
            f"memory {limits.memory_text}" if limits.memory is not None else "",
            f"cpu {limits.cpu_text}" if limits.cpu is not None else "",
        )
        if part
    )
    name = f"tiercel-{secrets.token_hex(8)}"
    parents, version, why_not = _cgroup_parents(limits)
    folders: list[Path] = []
    procs: list[int] = []
    try:
        for parent in parents:
            folder = parent / name
            folder.mkdir()
            folders.append(folder)
        _write_limits(folders, version, limits)
        for folder in folders:
            procs.append(os.open(folder / "cgroup.procs", os.O_WRONLY))
    except OSError as error:
        for fd in procs:
            os.close(fd)
        procs = []
        for folder in folders:
            with contextlib.suppress(OSError):
                folder.rmdir()
        why_not = why_not or f"{error.strerror or error} ({error.filename})"
        folders = []
    if folders:
        where = ", ".join(str(folder) for folder in folders)
        text = f"Resource limits {asked}: enforced on all the task's processes together by cgroup v{version}"
        text += f" {where}"
        return Confinement(limits, text, folders, procs, version)
    # Never below what the engine has already (lowering a hard limit or a niceness needs privileges).
    nice = max(_nice_for(limits.cpu), os.getpriority(os.PRIO_PROCESS, 0)) if limits.cpu is not None else 0
    data_limit = None
    if limits.memory is not None:
        hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
        data_limit = limits.memory if hard == resource.RLIM_INFINITY else min(limits.memory, hard)
    parts = []
    if limits.memory is not None:
        parts.append(
            f"each process may hold {limits.memory_text} of data (RLIMIT_DATA): an allocation past it fails "
            "in the program"
        )
    if limits.cpu is not None:
        parts.append(
            f"cpu {limits.cpu_text} lowers the task's scheduling priority to nice {nice}: a smaller share "
            "when the CPUs are busy, not a cap"
        )
    text = f"Resource limits {asked}: no cgroup can be made here ({why_not}), so " + "; ".join(parts)
    return Confinement(limits, text, _nice=nice, _data_limit=data_limit)


def _nice_for(cpu: float | None) -> int:
    """A niceness for a CPU limit: the smaller the share of this machine's CPUs, the nicer."""
    if cpu is None:
        return 0
    cores = os.cpu_count() or 1
    return max(0, min(19, round(19 * (1 - cpu / cores))))


def _write_limits(folders: list[Path], version: int, limits: ResourceLimits) -> None:
    quota = None if limits.cpu is None else max(1000, int(limits.cpu * _PERIOD_US))
    if version == 2:
        (folder,) = folders
        if limits.memory is not None:
            (folder / "memory.max").write_text(str(limits.memory))
            with contextlib.suppress(OSError):  # no swap, or no swap accounting
                (folder / "memory.swap.max").write_text("0")
        if quota is not None:
            (folder / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
        return
    for folder in folders:
        if limits.memory is not None and (folder / "memory.limit_in_bytes").exists():
            (folder / "memory.limit_in_bytes").write_text(str(limits.memory))
            with contextlib.suppress(OSError):
                (folder / "memory.memsw.limit_in_bytes").write_text(str(limits.memory))
        if quota is not None and (folder / "cpu.cfs_quota_us").exists():
            (folder / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
            (folder / "cpu.cfs_quota_us").write_text(str(quota))


def _cgroup_parents(limits: ResourceLimits) -> tuple[list[Path], int, str]:
    """Where the task's cgroups go, the cgroup version, and why none can be made (or "")."""
    chosen = os.environ.get(CGROUP_ENV, "").strip()
    if chosen.lower() == "none":
        return [], 0, f"{CGROUP_ENV}=none"
    if chosen:
        folder = Path(chosen)
        if not (folder / "cgroup.procs").exists():
            return [], 0, f"{CGROUP_ENV}={chosen} is not a cgroup"
        missing = _missing_v2_controllers(folder, limits)
        return ([], 0, f"{chosen} does not delegate {missing}") if missing else ([folder], 2, "")
    v2, v1 = _own_cgroups()
    if v2 is not None and not _missing_v2_controllers(v2, limits):
        return [v2], 2, ""
    wanted = [kind for kind, limit in (("memory", limits.memory), ("cpu", limits.cpu)) if limit is not None]
    if all(kind in v1 for kind in wanted):
        return [v1[kind] for kind in wanted], 1, ""
    if v2 is not None:
        return [], 0, f"cgroup {v2} does not delegate {_missing_v2_controllers(v2, limits)}"
    return [], 0, "no cgroup hierarchy with the memory and cpu controllers is mounted"


def _missing_v2_controllers(folder: Path, limits: ResourceLimits) -> str:
    try:
        enabled = (folder / "cgroup.subtree_control").read_text().split()
    except OSError:
        enabled = []
    wanted = [kind for kind, limit in (("memory", limits.memory), ("cpu", limits.cpu)) if limit is not None]
    return " and ".join(f"the {kind} controller" for kind in wanted if kind not in enabled)


@functools.cache
def _own_cgroups() -> tuple[Path | None, dict[str, Path]]:
    """The engine's own cgroup folder in the v2 hierarchy, and per v1 controller (memory, cpu)."""
    mounts: dict[str, tuple[str, str]] = {}  # "cgroup2" or a v1 controller -> (root, mount point)
    try:
        for line in Path(_MOUNTINFO).read_text().splitlines():
            fields, _, rest = line.partition(" - ")
            parts, tail = fields.split(), rest.split()
            if len(parts) < 5 or len(tail) < 3:
                continue
            if tail[0] == "cgroup2":
                mounts.setdefault("cgroup2", (parts[3], parts[4]))
            elif tail[0] == "cgroup":
                for option in tail[2].split(","):
                    if option in ("memory", "cpu"):
                        mounts.setdefault(option, (parts[3], parts[4]))
        own = Path(_OWN_CGROUPS).read_text().splitlines()
    except OSError:
        return None, {}
    v2: Path | None = None
    v1: dict[str, Path] = {}
    for line in own:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and "cgroup2" in mounts:
            v2 = _under(mounts["cgroup2"], path)
        for controller in controllers.split(","):
            if controller in ("memory", "cpu") and controller in mounts:
                v1[controller] = _under(mounts[controller], path)
    return v2, v1


def _under(mount: tuple[str, str], path: str) -> Path:
    root, point = mount
    relative = path[len(root) :] if root != "/" and path.startswith(root) else path
    return Path(point) / relative.lstrip("/")
