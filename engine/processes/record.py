"""A running task program as the store records it, and the token prefix that names its attempt.

Plain data, shared by the code that starts programs (engine.processes.run), the store that keeps the
records (engine.store.processes) and crash recovery that kills what they name
(engine.processes.leftovers).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ProcessRecord", "attempt_token_prefix"]


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """A running program as the store records it.

    Attributes:
        pid: The program's pid.
        pgid: Its process group (and session): the program leads both.
        start_ticks: The start time of the program (field 22 of ``/proc/<pid>/stat``, clock ticks since
            boot); 0 where there is no /proc.
        token: The value of ``TIERCEL_PROCESS_TOKEN`` in its environment.
    """

    pid: int
    pgid: int
    start_ticks: int
    token: str


def attempt_token_prefix(task_run_id: str, attempt: int) -> str:
    """How the process tokens of one attempt start, so that its programs can be found (and killed by
    engine.processes.leftovers.kill_leftovers) even before their records are stored."""
    return f"{task_run_id}.{attempt}."
