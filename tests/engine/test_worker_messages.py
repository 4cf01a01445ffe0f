"""The worker on its own: RunTaskRun and CancelTaskRun in, TaskRunResult messages and log lines out.

No engine and no store: the executor's inbox is any message sink, the log pipeline any log sink, as
a queue on another machine would be.
"""

from __future__ import annotations

import asyncio
import textwrap
from datetime import UTC, datetime

from tests.waiting import until
from tiercel.engine.executor.decisions import Executor
from tiercel.engine.expressions import Renderer
from tiercel.engine.messages import CancelTaskRun, ExecutorMessage, RunTaskRun, TaskRunResult
from tiercel.engine.model import Execution, Flow, LogEntry, State, StateType
from tiercel.engine.parser import parse_flow
from tiercel.engine.tasks.registry import registry
from tiercel.engine.worker.runner import Runner


class Inbox:
    def __init__(self) -> None:
        self.messages: list[ExecutorMessage] = []

    def put(self, message: ExecutorMessage) -> None:
        self.messages.append(message)


class Lines:
    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def append(self, entry: LogEntry) -> None:
        self.entries.append(entry)

    async def drain(self) -> None:
        return None

    async def flush(self) -> None:
        return None


def first_job(source: str) -> RunTaskRun:
    """The flow's first task run, as the executor hands it to the worker."""
    flow: Flow = parse_flow(textwrap.dedent(source))
    execution = Execution("e1", flow.namespace, flow.id, flow.revision, State.new())
    outcome = Executor(registry(), Renderer()).advance(flow, execution, datetime.now(UTC))
    (run,) = outcome.dispatch
    return RunTaskRun(flow, outcome.execution, outcome.execution.task_run(run.id))


async def test_a_task_run_is_reported_as_a_result_message_with_its_logs() -> None:
    job = first_job(
        """
        id: hello
        namespace: acme
        tasks:
          - {id: say, type: io.kestra.plugin.core.log.Log, message: "hi {{ flow.id }}"}
        """
    )
    inbox, lines = Inbox(), Lines()
    worker = Runner(registry(), Renderer(), results=inbox, logs=lines)
    worker.send(job)
    await until(lambda: bool(inbox.messages), what="the result message")
    (message,) = inbox.messages
    assert isinstance(message, TaskRunResult)
    assert message.execution_id == "e1"
    assert message.result.task_run_id == job.task_run.id
    assert message.result.state is StateType.SUCCESS
    assert [entry.message for entry in lines.entries] == ["hi hello"]


async def test_a_cancelled_task_run_reports_killed() -> None:
    job = first_job(
        """
        id: slow
        namespace: acme
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT1H}
        """
    )
    inbox, lines = Inbox(), Lines()
    worker = Runner(registry(), Renderer(), results=inbox, logs=lines)
    worker.send(job)
    await until(lambda: worker.is_running(job.task_run.id), what="the task run to start")
    await asyncio.sleep(0)  # the attempt's asyncio task takes its first step
    worker.send(CancelTaskRun(job.execution.id, job.task_run.id))
    await until(lambda: bool(inbox.messages), what="the result message")
    (message,) = inbox.messages
    assert isinstance(message, TaskRunResult)
    assert message.result.state is StateType.KILLED
    assert not worker.is_running(job.task_run.id)


async def test_a_task_run_cancelled_before_it_began_still_reports_killed() -> None:
    """A kill applied in the same batch as the step that started the task run reaches it at once."""
    job = first_job(
        """
        id: slow
        namespace: acme
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT1H}
        """
    )
    inbox, lines = Inbox(), Lines()
    worker = Runner(registry(), Renderer(), results=inbox, logs=lines)
    worker.send(job)
    worker.send(CancelTaskRun(job.execution.id, job.task_run.id))
    await until(lambda: bool(inbox.messages), what="the result message")
    (message,) = inbox.messages
    assert isinstance(message, TaskRunResult)
    assert message.result.state is StateType.KILLED
    assert [entry.message for entry in lines.entries] == ["Killed"]
