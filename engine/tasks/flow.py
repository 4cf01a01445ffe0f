"""Flowable tasks: they run no code of their own, they decide which children run and how they end.

Each handler answers the executor's questions (engine.tasks.flowable.FlowableHandler) through the
execution's working copy (engine.tasks.flowable.WorkingCopy), which holds the shared rules: error
branches, finally, end states.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..durations import parse_duration
from ..expressions import to_text
from ..model import DagNode, LogLevel, StateType, TaskRun, TaskSpec
from .base import TaskContext
from .flowable import Resolved, TaskError, WorkingCopy, allowed, resolve, worst_of

S = StateType
_ENDED = frozenset(state for state in StateType if state.is_terminated)


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TaskError(f"`{name}` must be an integer, got `{value}`") from None


def _duration(work: WorkingCopy, run: TaskRun, value: Any, name: str) -> timedelta:
    text = work.render(value, run)
    try:
        return parse_duration(str(text))
    except ValueError as error:
        raise TaskError(f"`{name}`: {error}") from None


class Sequential:
    """Children one after the other; errors then finally."""

    allow_failure = False

    def branches(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun
    ) -> tuple[list[Resolved], list[Resolved], list[Resolved]]:
        return (
            resolve(task.props.get("tasks") or ()),
            resolve(task.props.get("errors") or ()),
            resolve(task.props.get("finally") or ()),
        )

    def start(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun:
        return run

    def nexts(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> list[Resolved]:
        tasks, errors, finally_ = work.memo(run, "branches", lambda: self.branches(work, task, run))
        current = work.current_branch(run, tasks, errors, finally_)
        if current is tasks:
            return self.main_nexts(work, task, run, tasks)
        return work.sequential_nexts(run, current)

    def main_nexts(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun, tasks: list[Resolved]
    ) -> list[Resolved]:
        return work.sequential_nexts(run, tasks)

    def state(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> StateType | None:
        tasks, errors, finally_ = work.memo(run, "branches", lambda: self.branches(work, task, run))
        return work.resolve_state(run, tasks, errors, finally_, allow_failure=self.allow_failure)

    def outputs(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> Mapping[str, Any] | None:
        return run.outputs

    def on_due(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun:
        return dataclasses.replace(run, due=None)


class AllowFailure(Sequential):
    """A Sequential whose failure ends WARNING and lets the flow go on."""

    allow_failure = True


class Parallel(Sequential):
    """Children at once, at most `concurrent` at a time (0: no limit)."""

    def main_nexts(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun, tasks: list[Resolved]
    ) -> list[Resolved]:
        limit = _int(task.props.get("concurrent"), "concurrent", 0)
        return work.parallel_nexts(run, tasks, limit)


class If(Sequential):
    """`then` when the condition is truthy (Kestra's rule), else `else`; decided once, at start."""

    def start(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun:
        result = work.truthy(task.props["condition"], run)
        return dataclasses.replace(run, outputs={"evaluationResult": result})

    def branches(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun
    ) -> tuple[list[Resolved], list[Resolved], list[Resolved]]:
        branch = "then" if (run.outputs or {}).get("evaluationResult") else "else"
        return (
            resolve(task.props.get(branch) or ()),
            resolve(task.props.get("errors") or ()),
            resolve(task.props.get("finally") or ()),
        )


class Switch(Sequential):
    """The case whose key equals the rendered value, else `defaults`."""

    def start(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun:
        value = to_text(work.render(task.props["value"], run))
        cases: Mapping[str, Any] = task.props.get("cases") or {}
        if value not in cases and not task.props.get("defaults"):
            raise TaskError(
                f"Switch `{task.id}`: no case matches the value `{value}` and there are no `defaults`"
            )
        return dataclasses.replace(run, outputs={"value": value, "defaults": value not in cases})

    def branches(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun
    ) -> tuple[list[Resolved], list[Resolved], list[Resolved]]:
        outputs = run.outputs or {}
        cases: Mapping[str, Any] = task.props.get("cases") or {}
        chosen = None if outputs.get("defaults") else cases.get(str(outputs.get("value")))
        return (
            resolve(chosen if chosen is not None else task.props.get("defaults") or ()),
            resolve(task.props.get("errors") or ()),
            resolve(task.props.get("finally") or ()),
        )


def loop_values(work: WorkingCopy, task: TaskSpec, run: TaskRun, prop: str) -> tuple[str, ...]:
    """Render a loop's values (a list, or text holding a JSON list) into Kestra's value strings."""
    raw = task.props.get(prop)
    rendered = work.render(raw, run)
    if isinstance(rendered, str):
        try:
            rendered = json.loads(rendered)
        except json.JSONDecodeError:
            raise TaskError(f"`{prop}` must be a JSON list, got `{rendered[:200]}`") from None
    if not isinstance(rendered, list):
        raise TaskError(f"`{prop}` must be a list, got `{to_text(rendered)[:200]}`")
    # Kestra runs each distinct value once, and counts null among the distinct values.
    distinct = list(dict.fromkeys(item if isinstance(item, str) else to_text(item) for item in rendered))
    if any(item is None for item in rendered):
        raise TaskError(f"Found '1' null values on Each, with values={to_text(rendered)[:500]}")
    return tuple(distinct)


@dataclass(frozen=True, slots=True)
class LoopProgress:
    """Where a loop's groups stand, read in one scan of its children (a loop may have 100,000).

    Attributes:
        counts: Child runs created per loop value, in creation order.
        open_values: The values with a child run not ended yet.
        states: The states of every child run of the groups.
        finished: Every child of every value ran and ended.
    """

    counts: dict[str, int]
    open_values: set[str]
    states: set[StateType]
    finished: bool


def loop_progress(
    work: WorkingCopy, run: TaskRun, children: Sequence[Resolved], values: Sequence[str]
) -> LoopProgress:
    """The progress of the groups (`children` once per value) under a loop's task run."""
    ids = {resolved.task.id for resolved in children}
    counts: dict[str, int] = {}
    open_values: set[str] = set()
    states: set[StateType] = set()
    ended = _ENDED
    for child in work.children_of(run.id):
        value = child.value
        if value is None or child.task_id not in ids:
            continue  # an errors or finally task of the loop itself
        counts[value] = counts.get(value, 0) + 1
        state = child.state.current
        states.add(state)
        if state not in ended:
            open_values.add(value)
    finished = not open_values and sum(counts.values()) >= len(children) * len(values)
    return LoopProgress(counts, open_values, states, finished)


class ForEach(Sequential):
    """For each value, the children in sequence; `concurrencyLimit` values at a time (0: all).

    Kestra's rules for a Sequential, read from one LoopProgress rather than from the flat list of
    every (child, value): a step costs one scan of the loop's children, whatever their number.
    """

    values_prop = "values"

    def limit(self, task: TaskSpec) -> int:
        return _int(task.props.get("concurrencyLimit"), "concurrencyLimit", 1)

    def start(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun:
        return dataclasses.replace(run, loop_values=loop_values(work, task, run, self.values_prop))

    def groups(self, task: TaskSpec, run: TaskRun) -> list[list[Resolved]]:
        # Kestra's resolveEachTasks: each value's task runs carry its position as `iteration`.
        children = task.props.get("tasks") or ()
        return [resolve(children, value, index) for index, value in enumerate(run.loop_values or ())]

    def branches(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun
    ) -> tuple[list[Resolved], list[Resolved], list[Resolved]]:
        return (
            [
                resolved
                for group in work.memo(run, "groups", lambda: self.groups(task, run))
                for resolved in group
            ],
            resolve(task.props.get("errors") or ()),
            resolve(task.props.get("finally") or ()),
        )

    def _parts(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun
    ) -> tuple[list[Resolved], list[Resolved], list[Resolved]]:
        """The loop's children (once, without a value), its errors and its finally tasks."""
        return work.memo(
            run,
            "parts",
            lambda: (
                resolve(task.props.get("tasks") or ()),
                resolve(task.props.get("errors") or ()),
                resolve(task.props.get("finally") or ()),
            ),
        )

    def _progress(self, work: WorkingCopy, run: TaskRun, children: list[Resolved]) -> LoopProgress:
        values = run.loop_values or ()
        return work.memo_live(run, "progress", lambda: loop_progress(work, run, children, values))

    def _branch(
        self,
        work: WorkingCopy,
        run: TaskRun,
        progress: LoopProgress,
        errors: list[Resolved],
        finally_: list[Resolved],
    ) -> list[Resolved] | None:
        """WorkingCopy.current_branch on the progress: None for the loop's groups, else the list that runs."""
        failed = S.FAILED in progress.states
        if failed or work.runs_for(run, errors):
            if progress.open_values:
                return []
            if finally_ and (not errors or work.is_terminated(run, errors)):
                return finally_
            return errors
        if finally_ and progress.finished:
            return finally_
        return None

    def nexts(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> list[Resolved]:
        children, errors, finally_ = self._parts(work, task, run)
        progress = self._progress(work, run, children)
        branch = self._branch(work, run, progress, errors, finally_)
        if branch is not None:
            return work.sequential_nexts(run, branch)
        if not children or work.killing:
            return []
        positions = work.memo(run, "positions", lambda: {v: i for i, v in enumerate(run.loop_values or ())})
        if any(child.task.depends_on for child in children):
            return self.dependency_group_nexts(work, task, run, children, progress, positions)
        return self.group_nexts(task, run, children, progress, work.room, positions)

    def dependency_group_nexts(
        self,
        work: WorkingCopy,
        task: TaskSpec,
        run: TaskRun,
        children: list[Resolved],
        progress: LoopProgress,
        positions: Mapping[str, int],
    ) -> list[Resolved]:
        """With `dependsOn` among the children: in each group, the children whose siblings of the
        same value ended well; then new groups up to the limit."""

        def group(value: str) -> list[Resolved]:
            return [Resolved(child.task, value, positions.get(value)) for child in children]

        nexts: list[Resolved] = []
        active = 0
        for value, count in progress.counts.items():
            if count < len(children) or value in progress.open_values:
                active += 1
                nexts += work.dependency_nexts(run, group(value), 0)
        limit = self.limit(task)
        free = work.room if limit <= 0 else min(max(limit - active, 0), work.room)
        for value in run.loop_values or ():
            if free <= 0:
                break
            if value not in progress.counts:
                nexts += work.dependency_nexts(run, group(value), 0)
                free -= 1
        return nexts

    def group_nexts(
        self,
        task: TaskSpec,
        run: TaskRun,
        children: list[Resolved],
        progress: LoopProgress,
        room: int,
        positions: Mapping[str, int],
    ) -> list[Resolved]:
        """The next child of each group whose last child ended, then new groups up to the limit."""
        size = len(children)
        nexts: list[Resolved] = []
        active = len(progress.open_values)
        for value, count in progress.counts.items():
            if count < size and value not in progress.open_values:
                active += 1  # between two children: the group is still going
                nexts.append(Resolved(children[count].task, value, positions.get(value)))
        limit = self.limit(task)
        free = room if limit <= 0 else min(max(limit - active, 0), room)
        if free > 0:
            for value in run.loop_values or ():
                if value not in progress.counts:
                    nexts.append(Resolved(children[0].task, value, positions.get(value)))
                    free -= 1
                    if free == 0:
                        break
        return nexts

    def state(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> StateType | None:
        """WorkingCopy.resolve_state on the progress (see `_branch`)."""
        children, errors, finally_ = self._parts(work, task, run)
        has_groups = bool(children) and bool(run.loop_values)
        if not has_groups and not errors and not finally_:
            return S.SUCCESS
        progress = self._progress(work, run, children)
        branch = self._branch(work, run, progress, errors, finally_)
        if branch is None:
            if has_groups and not progress.finished:
                return None
        elif branch:
            if not work.is_terminated(run, branch):
                return None
        elif not (S.FAILED in progress.states and not progress.open_values):
            return None if has_groups else S.SUCCESS
        states = progress.states | {child.state.current for child in work.runs_for(run, finally_)}
        return allowed(worst_of(states), self.allow_failure, False)


class EachSequential(ForEach):
    """The deprecated EachSequential: a ForEach over `value`, one value at a time."""

    values_prop = "value"

    def limit(self, task: TaskSpec) -> int:
        return 1


class EachParallel(ForEach):
    """The deprecated EachParallel: every child of every value at once (`concurrent` caps it)."""

    values_prop = "value"
    # Every (child, value) pair is its own branch here, not a group in sequence: Sequential's rules.
    nexts = Sequential.nexts
    state = Sequential.state

    def main_nexts(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun, tasks: list[Resolved]
    ) -> list[Resolved]:
        return work.parallel_nexts(run, tasks, _int(task.props.get("concurrent"), "concurrent", 0))


class Dag(Sequential):
    """Children once their `dependsOn` tasks ended well; `concurrent` caps how many run at once."""

    def main_nexts(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun, tasks: list[Resolved]
    ) -> list[Resolved]:
        # The parser put each node's `dependsOn` on its task: a Dag is a task list with dependencies.
        return work.dependency_nexts(run, tasks, _int(task.props.get("concurrent"), "concurrent", 0))

    def branches(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun
    ) -> tuple[list[Resolved], list[Resolved], list[Resolved]]:
        nodes: Sequence[DagNode] = task.props.get("tasks") or ()
        return (
            resolve(node.task for node in nodes),
            resolve(task.props.get("errors") or ()),
            resolve(task.props.get("finally") or ()),
        )


class Pause(Sequential):
    """Pauses until resumed, or for `delay`; `timeout` (or pauseDuration + behavior) bounds the wait."""

    def start(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun:
        props = task.props
        wait = props.get("delay") or props.get("pauseDuration") or props.get("timeout")
        due = work.now + _duration(work, run, wait, "delay") if wait else None
        return dataclasses.replace(run.to(S.PAUSED, work.now), due=due)

    def on_due(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun:
        props = task.props
        if props.get("delay"):
            behavior = "RESUME"
        elif props.get("pauseDuration"):
            behavior = str(props.get("behavior") or "RESUME").upper()
        else:
            behavior = "FAIL"  # Kestra's `timeout`: a pause nobody resumed in time fails
        end = {"RESUME": S.RUNNING, "WARN": S.WARNING, "FAIL": S.FAILED, "CANCEL": S.CANCELLED}.get(behavior)
        if end is None:
            raise TaskError(f"Pause `{task.id}`: unknown behavior `{behavior}` (RESUME, WARN, FAIL, CANCEL)")
        if end is S.FAILED:
            work.log(LogLevel.ERROR, f"Pause `{task.id}` was not resumed before its timeout", run)
        return dataclasses.replace(run.to(end, work.now), due=None)


MIN_WAIT_INTERVAL = timedelta(milliseconds=10)


class WaitFor(Sequential):
    """Runs its children again and again until the condition holds (or a limit is reached).

    This is Kestra's LoopUntil, which newer Kestra versions also run for the WaitFor type name
    (Kestra 0.20's WaitFor looped while the condition held instead).
    """

    def _frequency(self, task: TaskSpec) -> Mapping[str, Any]:
        frequency = task.props.get("checkFrequency") or {}
        return frequency if isinstance(frequency, Mapping) else {}

    @staticmethod
    def _iteration(run: TaskRun) -> int:
        """The current round, counted from 0 (outputs.iterationCount counts from 1)."""
        return int((run.outputs or {}).get("iterationCount", 1)) - 1

    def start(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun:
        return dataclasses.replace(run, outputs={"iterationCount": 1})

    def branches(
        self, work: WorkingCopy, task: TaskSpec, run: TaskRun
    ) -> tuple[list[Resolved], list[Resolved], list[Resolved]]:
        return (
            resolve(task.props.get("tasks") or (), iteration=self._iteration(run)),
            resolve(task.props.get("errors") or ()),
            resolve(task.props.get("finally") or ()),
        )

    def state(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> StateType | None:
        tasks, errors, finally_ = work.memo(run, "branches", lambda: self.branches(work, task, run))
        end = work.resolve_state(run, tasks, errors, finally_)
        if end is None or (end is not S.SUCCESS and end is not S.WARNING):
            return end
        if work.truthy(task.props["condition"], run):
            return end
        frequency = self._frequency(task)
        iterations = self._iteration(run) + 1
        max_iterations = _int(frequency.get("maxIterations"), "maxIterations", 100)
        max_duration = _duration(work, run, frequency.get("maxDuration") or "PT1H", "maxDuration")
        if iterations >= max_iterations or work.now - run.state.start_date >= max_duration:
            return S.FAILED if task.props.get("failOnMaxReached") else end
        interval = _duration(work, run, frequency.get("interval") or "PT1S", "interval")
        # A zero interval would start the next round within the same executor step, forever.
        work.put(dataclasses.replace(run, due=work.now + max(interval, MIN_WAIT_INTERVAL)))
        return None

    def on_due(self, work: WorkingCopy, task: TaskSpec, run: TaskRun) -> TaskRun:
        count = self._iteration(run) + 2
        return dataclasses.replace(run, due=None, outputs={**(run.outputs or {}), "iterationCount": count})


class WorkingDirectory(Sequential):
    """Children run one after the other in one shared folder; its output files are kept at the end,
    and its `cache` from one run to the next (working_cache.py).

    The folder is made by the runner when the first child starts and filled here (namespace files,
    `inputFiles`); `finish` runs in the runner once the children are done: it stores `outputFiles`
    and removes the folder.
    """

    def prepare_working_folder(self, context: TaskContext, folder: Path) -> None:
        from . import working_cache
        from .scripts import copy_namespace_files, write_input_files

        working_cache.restore(context, folder)
        copy_namespace_files(context, folder, context.prop("namespaceFiles"))
        write_input_files(context, folder, context.prop("inputFiles"))

    async def finish(self, context: TaskContext) -> Mapping[str, Any] | None:
        from . import working_cache
        from .scripts import collect_output_files

        folder = context.working_dir
        if folder is None:
            return None
        try:
            files = collect_output_files(context, folder, context.prop("outputFiles"))
            working_cache.save(context, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return {"outputFiles": files} if files else None


HANDLERS: dict[str, Any] = {
    "io.kestra.plugin.core.flow.Sequential": Sequential(),
    "io.kestra.plugin.core.flow.AllowFailure": AllowFailure(),
    "io.kestra.plugin.core.flow.Parallel": Parallel(),
    "io.kestra.plugin.core.flow.If": If(),
    "io.kestra.plugin.core.flow.Switch": Switch(),
    "io.kestra.plugin.core.flow.ForEach": ForEach(),
    "io.kestra.plugin.core.flow.EachSequential": EachSequential(),
    "io.kestra.plugin.core.flow.EachParallel": EachParallel(),
    "io.kestra.plugin.core.flow.Dag": Dag(),
    "io.kestra.plugin.core.flow.Pause": Pause(),
    "io.kestra.plugin.core.flow.WaitFor": WaitFor(),
    "io.kestra.plugin.core.flow.WorkingDirectory": WorkingDirectory(),
}
