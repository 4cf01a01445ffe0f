"""What a flowable task type sees of an execution while the executor decides its next step.

Flowable tasks (engine.tasks.flow, and plugins) run no code of their own: they answer the executor's
questions (`FlowableHandler`) by reading and changing the execution's working copy through the
`WorkingCopy` protocol, which holds Kestra's FlowableUtils rules (which branch runs, what comes
next, how a parent ends). The executor's working copy implements it; this module imports nothing
of the executor, so task types sit below it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from ..model import LogLevel, StateType, TaskRun, TaskSpec

S = StateType
T = TypeVar("T")
# How a Kestra state ranks when several children end differently (worst first).
_WORST_FIRST = (S.KILLED, S.FAILED, S.CANCELLED, S.WARNING, S.PAUSED)


class TaskError(Exception):
    """A task cannot go on; the message is logged at ERROR on its task run."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A task to run under a parent, with the loop value it runs for."""

    task: TaskSpec
    value: str | None = None
    iteration: int | None = None


def resolve(
    tasks: Iterable[TaskSpec], value: str | None = None, iteration: int | None = None
) -> list[Resolved]:
    """Kestra's ResolvedTask list: disabled tasks are left out."""
    return [Resolved(task, value, iteration) for task in tasks if not task.disabled]


def worst_state(runs: Iterable[TaskRun]) -> StateType:
    return worst_of({run.state.current for run in runs})


def worst_of(states: Collection[StateType]) -> StateType:
    """The state that ranks worst among `states` (SUCCESS when none ranks)."""
    return next((state for state in _WORST_FIRST if state in states), S.SUCCESS)


def allowed(state: StateType, allow_failure: bool, allow_warning: bool) -> StateType:
    if state is S.FAILED and allow_failure:
        return S.SUCCESS if allow_warning else S.WARNING
    if state is S.WARNING and allow_warning:
        return S.SUCCESS
    return state


class WorkingCopy(Protocol):
    """One execution during one executor step, as flowable handlers read and change it."""

    @property
    def now(self) -> datetime: ...

    @property
    def killing(self) -> bool:
        """The execution is being killed: no new child may start."""
        ...

    @property
    def room(self) -> int:
        """How many task runs this step may still create (a large fan-out goes on next step)."""
        ...

    def memo(self, run: TaskRun, what: str, compute: Callable[[], T]) -> T:
        """`compute()` once per version of `run` in this step."""
        ...

    def memo_live(self, run: TaskRun, what: str, compute: Callable[[], T]) -> T:
        """`compute()` again only once any task run changed."""
        ...

    def children_of(self, parent_id: str | None) -> list[TaskRun]: ...

    def runs_for(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> list[TaskRun]: ...

    def is_terminated(self, parent: TaskRun | None, resolved: Sequence[Resolved]) -> bool: ...

    def current_branch(
        self,
        parent: TaskRun | None,
        tasks: Sequence[Resolved],
        errors: Sequence[Resolved],
        finally_: Sequence[Resolved],
    ) -> Sequence[Resolved]: ...

    def sequential_nexts(self, parent: TaskRun | None, current: Sequence[Resolved]) -> list[Resolved]: ...

    def dependency_nexts(
        self, parent: TaskRun | None, current: Sequence[Resolved], limit: int
    ) -> list[Resolved]: ...

    def parallel_nexts(
        self, parent: TaskRun | None, current: Sequence[Resolved], limit: int
    ) -> list[Resolved]: ...

    def resolve_state(
        self,
        parent: TaskRun | None,
        tasks: Sequence[Resolved],
        errors: Sequence[Resolved],
        finally_: Sequence[Resolved],
        *,
        allow_failure: bool = False,
        allow_warning: bool = False,
    ) -> StateType | None: ...

    def render(self, value: Any, run: TaskRun | None, extra: Mapping[str, Any] | None = None) -> Any: ...

    def truthy(self, template: Any, run: TaskRun | None) -> bool: ...

    def put(self, run: TaskRun) -> TaskRun: ...

    def log(self, level: LogLevel, message: str, run: TaskRun | None = None) -> None: ...


class FlowableHandler(Protocol):
    """How one flowable task type creates its children and derives its own state."""

    def start(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun: ...

    def nexts(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> list[Resolved]: ...

    def state(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> StateType | None: ...

    def outputs(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> Mapping[str, Any] | None: ...

    def on_due(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun: ...
