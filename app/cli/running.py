"""What a `tiercel run` does the same whether it runs here or through the engine that owns the
database: the request, its end (the final line or JSON, the exit code) and interrupting it."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .common import EXIT_FAILED, EXIT_OK, EXIT_PAUSED, say
from .progress import RunView

if TYPE_CHECKING:
    from tiercel.engine import Commands, Execution, Flow, Label


@dataclass(frozen=True)
class RunRequest:
    """What `tiercel run` was asked to run, read from its arguments."""

    namespace: str
    flow_id: str
    flows_dir: Path
    flows_named: bool  # --flows was given
    file: Path | None
    file_flow: Flow | None  # the flow the file holds
    inputs: dict[str, str]
    labels: list[Label]
    json_output: bool


def finish(execution: Execution, view: RunView) -> int:
    """End the output with the execution's state (or its JSON); the exit code of its state."""
    from tiercel.engine import StateType

    view.ended(execution)
    if view.json_output:
        say(json.dumps(execution.to_json(), indent=2))
    state = execution.state.current
    if state in (StateType.SUCCESS, StateType.WARNING):
        return EXIT_OK
    return EXIT_PAUSED if state is StateType.PAUSED else EXIT_FAILED


def stop_on_signals(commands: Commands, execution_id: str, view: RunView) -> None:
    """Ctrl-C (or SIGTERM) kills the execution cleanly; a second one leaves it unfinished at once."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    pending: set[asyncio.Task[None]] = set()

    def on_signal() -> None:
        if pending:
            if main is not None:
                main.cancel()
            return
        view.say(f"Killing execution {execution_id} (interrupt again to stop at once)")
        task = loop.create_task(commands.kill(execution_id))
        pending.add(task)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
