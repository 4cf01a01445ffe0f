"""What the outputs viewer shows of a task run or an execution.

Outputs hold real values (later tasks read them); what is shown has secrets masked and control
characters made visible.
"""

from __future__ import annotations

from tiercel.engine import Execution, Masker, TaskRun, visible

from ..screens.viewer import as_json
from .shown import shown, shown_value


def outputs_view(execution: Execution, run: TaskRun | None, masker: Masker | None) -> tuple[str, str]:
    """Title and JSON text of the task run's outputs, or of the execution's when no run is given."""
    if run is not None:
        value = f" [{shown(run.value, masker)}]" if run.value is not None else ""
        outputs = shown_value(dict(run.outputs or {}), masker)
        return f"Outputs of task {shown(run.task_id)}{value}", visible(as_json(outputs))
    outputs = shown_value(dict(execution.outputs or {}), masker)
    title = f"Outputs of execution {shown(execution.id[:8])} ({shown(execution.flow_id)})"
    return title, visible(as_json(outputs))
