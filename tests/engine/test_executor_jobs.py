"""The executor loop on its own: the jobs it sends the worker name their execution.

A queue shared by several engines (a PostgreSQL table) routes each message by its execution, so a
job that does not name it could only be sent to every worker. The worker here is any `WorkerQueue`,
as a remote one would be; the store is a real SQLite file.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.postgres import engine_store
from tests.waiting import until
from tiercel.engine.events import EventBus
from tiercel.engine.executor.decisions import Executor
from tiercel.engine.executor.loop import ExecutorLoop
from tiercel.engine.expressions import Renderer
from tiercel.engine.logs import LogPipeline
from tiercel.engine.messages import CancelTaskRun, ExecutorMessage, KillExecution, StartExecution, WorkerJob
from tiercel.engine.model import Execution, State
from tiercel.engine.parser import parse_flow
from tiercel.engine.queue import InProcessQueue
from tiercel.engine.secrets import Masker
from tiercel.engine.store import Store
from tiercel.engine.tasks.registry import registry


class Jobs:
    """A worker queue that keeps the jobs: every task run it was sent stays running."""

    def __init__(self) -> None:
        self.sent: list[WorkerJob] = []

    def send(self, job: WorkerJob) -> None:
        self.sent.append(job)

    def is_running(self, task_run_id: str) -> bool:
        return True


async def test_a_kill_sends_a_cancel_that_names_the_execution(tmp_path: Path) -> None:
    flow = parse_flow(
        textwrap.dedent(
            """
            id: slow
            namespace: acme
            tasks:
              - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT1H}
            """
        )
    )
    store = await Store.open(engine_store(tmp_path))
    events = EventBus()
    jobs = Jobs()
    loop = ExecutorLoop(
        store=store,
        executor=Executor(registry(), Renderer()),
        events=events,
        inbox=InProcessQueue[ExecutorMessage](),
        worker=jobs,
        logs=LogPipeline(store, events, Masker(), lambda _: True),
        on_end=lambda _: None,
    )
    execution = Execution("e1", flow.namespace, flow.id, flow.revision, State.new())
    try:
        await store.save_execution(execution)
        loop.adopt(flow, execution)
        loop.start()
        loop.post(StartExecution(execution.id))
        await until(lambda: bool(jobs.sent), what="the task run sent to the worker")
        await loop.apply(KillExecution(execution.id))
        cancels = [job for job in jobs.sent if isinstance(job, CancelTaskRun)]
        (run,) = loop.stored(execution.id).task_runs  # type: ignore[union-attr]
        assert [(job.execution_id, job.task_run_id) for job in cancels] == [("e1", run.id)]
    finally:
        await loop.stop()
        await store.close()
