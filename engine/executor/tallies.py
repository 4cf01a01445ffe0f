"""Counts over a parent's children for one list of tasks, kept up to date as task runs change.

Kestra's FlowableUtils answers "has a child failed", "is any still running", "what starts next" by
scanning a parent's children. Asked at every step of a long sequence, those scans make the sequence
quadratic; a `Tally` answers them from counts that the working copy updates on each change, so a
step costs what it changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..model import StateType
from ..tasks.flowable import Resolved

S = StateType
# (task id, loop value, iteration): how a parent's child is found among its children.
Key = tuple[str, str | None, int | None]


def key_of(resolved: Resolved) -> Key:
    return resolved.task.id, resolved.value, resolved.iteration


@dataclass(eq=False)
class Tally:
    """The children of one parent that run one list of resolved tasks, counted by state."""

    resolved: Sequence[Resolved]
    positions: dict[Key, int]
    started: int = 0  # entries of `resolved` with a task run
    active: int = 0  # ... whose task run has not ended (a paused one included)
    failed: int = 0  # ... whose task run FAILED
    # Every entry before `cursor` has a task run: children are created in order, so the first one
    # not started is found from here, not from the start of the list.
    cursor: int = 0
    # Whether an entry waits for siblings (`dependsOn`): then the list runs as a graph.
    dependent: bool = False

    @classmethod
    def of(cls, resolved: Sequence[Resolved]) -> Tally | None:
        """A tally for `resolved`, or None when two entries share a key (then scans decide)."""
        positions = {key_of(entry): index for index, entry in enumerate(resolved)}
        if len(positions) != len(resolved):
            return None
        return cls(resolved, positions, dependent=any(entry.task.depends_on for entry in resolved))

    def count(self, before: StateType | None, after: StateType | None) -> None:
        """One child moved from `before` to `after` (None: it had, or has, no task run)."""
        if before is not None:
            self.started -= 1
            self.active -= not before.is_terminated
            self.failed -= before is S.FAILED
        if after is not None:
            self.started += 1
            self.active += not after.is_terminated
            self.failed += after is S.FAILED

    @property
    def terminated(self) -> bool:
        return self.started >= len(self.resolved) and self.active == 0
