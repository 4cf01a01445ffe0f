"""How the servers and workers of a cluster read in a table (`tiercel workers`, the cluster screen)."""

from __future__ import annotations

from tiercel.engine import ClusterMembers

SERVER_COLUMNS = ("server", "host", "pid", "executions", "scheduler", "last heartbeat")
WORKER_COLUMNS = ("worker", "host", "pid", "group", "running", "last heartbeat")


def server_rows(members: ClusterMembers) -> list[list[str]]:
    return [
        [s.id, s.host, str(s.pid), str(s.running), "yes" if s.scheduler else "-", _ago(s.heartbeat_age)]
        for s in members.servers
    ]


def worker_rows(members: ClusterMembers) -> list[list[str]]:
    return [
        [w.id, w.host, str(w.pid), w.group or "-", f"{w.running}/{w.concurrency}", _ago(w.heartbeat_age)]
        for w in members.workers
    ]


def waiting_lines(members: ClusterMembers) -> list[str]:
    return [
        f"{count} task runs waiting for a worker" + (f" of group {group}" if group else "")
        for group, count in sorted(members.waiting.items(), key=str)
    ]


def _ago(seconds: float) -> str:
    return f"{seconds:.1f} s ago"
