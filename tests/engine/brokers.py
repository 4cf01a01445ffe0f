"""What the broker families' tests (redis, amqp, nats, mqtt) share: a task run's outputs, the values
of an Ion file the engine stored, a flow run to its end with its log messages, and a flow checked
where the family's client library is missing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tiercel.engine.engine import Engine
from tiercel.engine.model import Execution, StateType
from tiercel.engine.plugin import ion_loads
from tiercel.engine.tasks import registry as registry_module

from .helpers import logs_of, messages, one_run


def outputs(execution: Execution, task_id: str) -> dict[str, Any]:
    return dict(one_run(execution, task_id).outputs or {})


def ion_rows(engine: Engine, uri: str) -> list[Any]:
    return [ion_loads(line) for line in engine.storage.read_bytes(uri).decode().splitlines()]


async def succeeded(engine: Engine, execution: Execution) -> None:
    """Assert that `execution` succeeded, showing its logs when it did not."""
    logs = messages(await logs_of(engine, execution.id))
    assert execution.state.current is StateType.SUCCESS, logs


async def run_to_end(
    engine: Engine, flow_id: str, inputs: Mapping[str, Any], timeout: float = 90
) -> tuple[Execution, list[str]]:
    """Run a flow of company.team whose FILE inputs name local files; its end and its log messages."""
    execution_id = await engine.trigger("company.team", flow_id, dict(inputs), [], local_files=True)
    execution = await asyncio.wait_for(engine.wait(execution_id), timeout)
    return execution, messages(await logs_of(engine, execution.id))


def validate_without(folder: Path, module: str, source: str) -> subprocess.CompletedProcess[str]:
    """`tiercel validate` of the flow `source` in a process where `module` cannot be imported, as in a
    venv without the extra (a sitecustomize in `folder` sets sys.modules[module] = None)."""
    (folder / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    (folder / "flow.yml").write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    tiercel = Path(sys.executable).parent / "tiercel"
    return subprocess.run(
        [str(tiercel), "validate", str(folder / "flow.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@contextmanager
def module_missing(monkeypatch: pytest.MonkeyPatch, module: str) -> Iterator[None]:
    """In this process, `module` cannot be imported (as in a venv without the extra), and the registry
    looks again for what is installed, inside the block and after it."""
    monkeypatch.setitem(sys.modules, module, None)
    registry_module._installed.cache_clear()
    try:
        yield
    finally:
        registry_module._installed.cache_clear()
