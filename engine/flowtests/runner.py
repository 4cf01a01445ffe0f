"""Running flow tests: each case is one execution of its flow in a throwaway engine.

The engine works on a copy of the flows folder and a database of its own in a temporary folder,
both removed afterwards: tests leave no execution, log or KV entry where the user's flows run. Its
triggers do not fire. For each case the flow's file in the copy is rewritten with the case's task
fixtures (engine.flowtests.fixtures), its inline files are stored, the flow runs with the case's
inputs, and each assertion's `value` is rendered against the ended execution, as the expression
console renders (a task's outputs, inputs, `execution.state` ...), plus two variables of the tests:
`states` (each task's state, of its last task run) and `logs` (the execution's log messages).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EngineCommandError
from ..expressions import ExpressionError, Renderer
from ..inputs import InputError
from ..internal_storage import STORAGE_VARIABLE, StorageError
from ..model import Execution, new_id
from ..parser import FlowParseError, parse_flow
from .assertions import failed_checks
from .fixtures import FixtureError, with_fixtures
from .suites import Assertion, TestCase, TestSuite

if TYPE_CHECKING:
    from ..engine import Engine

PASSED, FAILED, ERROR, SKIPPED = "PASSED", "FAILED", "ERROR", "SKIPPED"


@dataclass(frozen=True, slots=True)
class AssertionResult:
    assertion: Assertion
    passed: bool
    actual: str | None
    failures: tuple[str, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.assertion.value,
            "line": self.assertion.line,
            "description": self.assertion.description,
            "passed": self.passed,
            "actual": self.actual,
            "failures": list(self.failures),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class CaseResult:
    """How one test case went: PASSED, FAILED (an assertion), ERROR (it could not run) or SKIPPED."""

    suite: TestSuite
    case: TestCase
    outcome: str
    seconds: float = 0.0
    execution_id: str | None = None
    execution_state: str | None = None
    assertions: tuple[AssertionResult, ...] = ()
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "testId": self.suite.id,
            "namespace": self.suite.namespace,
            "flowId": self.suite.flow_id,
            "file": self.suite.path,
            "caseId": self.case.id,
            "line": self.case.line,
            "description": self.case.description,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            "executionId": self.execution_id,
            "executionState": self.execution_state,
            "assertions": [result.to_json() for result in self.assertions],
            "error": self.error,
        }


@dataclass
class _Scratch:
    """The throwaway engine, its copy of the flows folder and where it all lives."""

    folder: Path
    engine: Engine
    flows_dir: Path  # the user's, which the engine's copy stands for
    stopping: asyncio.Event
    originals: dict[str, str] = field(default_factory=dict)

    def shown(self, text: str) -> str:
        """`text` with the copy's paths named as the user's flows folder has them."""
        return text.replace(str(self.folder / "flows"), str(self.flows_dir))


async def run_suites(
    suites: Sequence[TestSuite],
    flows_dir: Path,
    *,
    timeout: float = 300.0,
    on_result: Callable[[CaseResult], None] | None = None,
    stopping: asyncio.Event | None = None,
) -> list[CaseResult]:
    """Run every case of every suite in order; `on_result` hears of each as it ends. Once `stopping`
    is set, the case under way is killed and no other starts (the cases run are returned)."""
    folder = Path(tempfile.mkdtemp(prefix="tiercel-test-"))
    results: list[CaseResult] = []
    stopping = stopping or asyncio.Event()
    try:
        copy = folder / "flows"
        shutil.copytree(flows_dir, copy, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        engine = await _throwaway_engine(folder, copy)
        scratch = _Scratch(folder, engine, flows_dir, stopping)
        try:
            await engine.start(control=False, triggers=False)
            for suite in suites:
                for case in suite.cases:
                    if stopping.is_set():
                        return results
                    result = await _run_case(scratch, suite, case, timeout)
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
                await _restore(scratch)
        finally:
            await engine.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


async def _throwaway_engine(folder: Path, flows: Path) -> Engine:
    """An engine on `flows` with its database and execution files in `folder`, whatever
    TIERCEL_STORAGE says (the engine reads it once, when it is made)."""
    from ..engine import Engine
    from ..store import Store

    store = await Store.open(folder / "tiercel.db")
    before = os.environ.get(STORAGE_VARIABLE)
    os.environ[STORAGE_VARIABLE] = str(folder / "storage")
    try:
        return Engine(store, flows_dir=flows)
    finally:
        if before is None:
            del os.environ[STORAGE_VARIABLE]
        else:
            os.environ[STORAGE_VARIABLE] = before


async def _run_case(scratch: _Scratch, suite: TestSuite, case: TestCase, timeout: float) -> CaseResult:
    if suite.disabled or case.disabled:
        return CaseResult(suite, case, SKIPPED)
    started = time.monotonic()
    try:
        execution = await _execute(scratch, suite, case, timeout)
    except _CaseError as error:
        return CaseResult(suite, case, ERROR, time.monotonic() - started, error=scratch.shown(str(error)))
    except (StorageError, OSError, ValueError) as error:  # a hostile case ends itself, not the run
        return CaseResult(
            suite, case, ERROR, time.monotonic() - started, error=f"{type(error).__name__}: {error}"
        )
    engine = scratch.engine
    states = {run.task_id: run.state.current.value for run in execution.task_runs}
    logs = [entry.message for _, entry in await engine.logs(execution.id)]
    checked = [
        await _check(engine, execution, assertion, {"states": states, "logs": logs})
        for assertion in case.assertions
    ]
    outcome = PASSED if all(result.passed for result in checked) else FAILED
    return CaseResult(
        suite,
        case,
        outcome,
        time.monotonic() - started,
        execution.id,
        execution.state.current.value,
        tuple(checked),
    )


class _CaseError(Exception):
    """The case could not run: its flow is missing or broken, a fixture or an input is wrong."""


async def _execute(scratch: _Scratch, suite: TestSuite, case: TestCase, timeout: float) -> Execution:
    engine = scratch.engine
    uid = (suite.namespace, suite.flow_id)
    path = engine.flows.path(uid)
    if path is None:
        broken = [str(errors[0]) for errors in engine.flow_errors.values() if errors]
        hint = f" ({len(broken)} file(s) there have errors, e.g. {broken[0]})" if broken else ""
        raise _CaseError(f"no flow {suite.namespace}.{suite.flow_id} in the flows folder{hint}")
    source = scratch.originals.setdefault(path, Path(path).read_text(encoding="utf-8"))
    try:
        flow = parse_flow(source, path)
    except FlowParseError as error:
        raise _CaseError(f"the flow does not validate: {error.errors[0]}") from None
    files = _store_files(engine, suite, case)
    try:
        rewritten = with_fixtures(source, flow, case.tasks, files)
    except FixtureError as error:
        raise _CaseError(str(error)) from None
    Path(path).write_text(rewritten, encoding="utf-8")
    await engine.sync_flows([Path(path)])
    if engine.flow_errors.get(path):
        raise _CaseError(f"the flow with the fixtures does not validate: {engine.flow_errors[path][0]}")
    inputs = _rendered(case.inputs, files)
    try:
        execution_id = await engine.trigger(suite.namespace, suite.flow_id, inputs, local_files=True)
    except (InputError, EngineCommandError) as error:
        raise _CaseError(f"the execution could not start: {error}") from None
    ended = asyncio.ensure_future(engine.wait(execution_id))
    stop = asyncio.ensure_future(scratch.stopping.wait())
    try:
        await asyncio.wait([ended, stop], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if ended.done():
        return ended.result()
    await engine.kill(execution_id)
    await asyncio.gather(ended, return_exceptions=True)  # the kill ends it
    why = "the run was interrupted" if scratch.stopping.is_set() else f"it did not end within {timeout:g} s"
    raise _CaseError(f"the execution was killed: {why}")


def _store_files(engine: Engine, suite: TestSuite, case: TestCase) -> dict[str, str]:
    """The case's inline files, stored where executions of the flow's namespace may read them."""
    if not case.files:
        return {}
    base = engine.storage.execution_uri(suite.namespace, suite.flow_id, f"test-{new_id()}")
    return {name: engine.storage.put_bytes(base, name, text.encode()) for name, text in case.files.items()}


def _rendered(inputs: Mapping[str, Any], files: Mapping[str, str]) -> dict[str, Any]:
    """Inputs as given, their expressions rendered with the case's `files` (a FILE input's URI)."""
    renderer, variables = Renderer(), {"files": dict(files)}
    try:
        return {key: renderer.render_value(value, variables) for key, value in inputs.items()}
    except ExpressionError as error:
        raise _CaseError(f"an input of the fixtures: {error}") from None


async def _check(
    engine: Engine, execution: Execution, assertion: Assertion, variables: Mapping[str, Any]
) -> AssertionResult:
    run_id = None
    if assertion.task_id:
        runs = [run for run in execution.task_runs if run.task_id == assertion.task_id]
        if not runs:
            return AssertionResult(assertion, False, None, error=f"no task run of task `{assertion.task_id}`")
        run_id = runs[-1].id
    found = await engine.evaluate(execution.id, run_id, assertion.value, variables)
    actual = found.result if found.error is None else None
    undefined = found.error is not None and _names_nothing(found.error)
    if found.error is not None and not undefined:
        return AssertionResult(assertion, False, None, error=found.error)
    failures = failed_checks(actual, dict(assertion.checks))
    if failures and assertion.error_message:
        failures = [assertion.error_message, *failures]
    return AssertionResult(assertion, not failures, actual, tuple(failures))


def _names_nothing(error: str) -> bool:
    """Whether a render failed because the expression names something that does not exist."""
    return error.startswith("Unable to find")


async def _restore(scratch: _Scratch) -> None:
    """Put back the flow files rewritten for the cases of a suite."""
    for path, source in scratch.originals.items():
        Path(path).write_text(source, encoding="utf-8")
    if scratch.originals:
        await scratch.engine.sync_flows([Path(path) for path in scratch.originals])
    scratch.originals.clear()


def is_passing(results: Sequence[CaseResult]) -> bool:
    return all(result.outcome in (PASSED, SKIPPED) for result in results)
