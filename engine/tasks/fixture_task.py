"""The task a flow test puts in place of a task it replaces (engine.flowtests.fixtures).

No code runs: the fixture for the task run's loop value (or the one for every value) gives the
outputs, rendered with the test's `files` (name to stored URI) among the variables, and the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import LogLevel
from .base import TaskContext, TaskFailure
from .builtin_types import FIXTURE_TYPE


async def task_fixture(context: TaskContext) -> Mapping[str, Any]:
    fixtures: list[Mapping[str, Any]] = list(context.task.props.get("fixtures") or ())
    value = context.run.value
    chosen = next((f for f in fixtures if f.get("value") is not None and str(f["value"]) == value), None)
    chosen = chosen or next((f for f in fixtures if f.get("value") is None), None)
    if chosen is None:
        raise TaskFailure(f"No fixture of the test stands for task `{context.task.id}` with value `{value}`")
    context.variables["files"] = dict(context.task.props.get("files") or {})
    outputs = context.render(dict(chosen.get("outputs") or {}))
    state = str(chosen.get("state") or "SUCCESS")
    context.log(LogLevel.INFO, f"Replaced by the test's fixture: no code runs, the task ends {state}")
    if state == "FAILED":
        raise TaskFailure(f"Task `{context.task.id}` fails, as the test's fixture says", outputs)
    context.warning = state == "WARNING"
    return dict(outputs)


HANDLERS = {FIXTURE_TYPE: task_fixture}
