"""A flow's source with the tasks a test case replaces swapped for fixture tasks.

Each replaced task becomes a `tiercel.test.TaskFixture` task of the same id (engine.tasks.fixture_task
runs it): it runs no code and ends with the fixture's outputs and state. It keeps the properties that
decide whether and when it runs (`runIf`, `dependsOn`, `conditions`, `disabled`, `allowFailure`,
`allowWarning`), so the flow's control stays the flow's. A task is found where the parsed flow says
it is written, so a trigger or an input with the same id is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ..model import Flow
from ..parser.loader import YamlPath, load_yaml
from ..tasks.builtin_types import FIXTURE_TYPE
from .suites import TaskFixture

_KEPT = ("id", "runIf", "dependsOn", "conditions", "disabled", "allowFailure", "allowWarning")


class FixtureError(Exception):
    """A fixture names a task the flow does not have."""


def with_fixtures(source: str, flow: Flow, fixtures: Sequence[TaskFixture], files: Mapping[str, str]) -> str:
    """`source` with each task the fixtures name replaced; `files` (name to stored URI) is what the
    fixtures' outputs may read as `files['name']`."""
    if not fixtures:
        return source
    document = load_yaml(source)
    root = document.value
    by_task: dict[str, list[TaskFixture]] = {}
    for fixture in fixtures:
        by_task.setdefault(fixture.task_id, []).append(fixture)
    where = {position: path for path, position in document.source.values.items()}
    for task_id, given in by_task.items():
        spec = flow.tasks_by_id.get(task_id)
        path = where.get((spec.position.line, spec.position.column)) if spec and spec.position else None
        if spec is None or path is None:
            known = ", ".join(sorted(flow.tasks_by_id)[:20])
            raise FixtureError(
                f"flow {flow.namespace}.{flow.id} has no task `{task_id}` (its tasks: {known})"
            )
        original = _at(root, path)
        replaced = {key: original[key] for key in _KEPT if key in original}
        replaced["type"] = FIXTURE_TYPE
        replaced["fixtures"] = [
            {"value": f.value, "outputs": dict(f.outputs), "state": f.state} for f in given
        ]
        replaced["files"] = dict(files)
        _put(root, path, replaced)
    return yaml.safe_dump(root, sort_keys=False, allow_unicode=True)


def _at(root: Any, path: YamlPath) -> dict[str, Any]:
    value = root
    for part in path:
        value = value[part]
    return dict(value)


def _put(root: Any, path: YamlPath, value: Any) -> None:
    parent = root
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
