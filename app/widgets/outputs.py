"""What the outputs and metrics viewers show of a task run or an execution.

Outputs hold real values (later tasks read them); what is shown has secrets masked and control
characters made visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len

from tiercel.engine import Execution, Masker, MetricEntry, TaskRun, visible

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


def metrics_view(
    execution: Execution, run: TaskRun | None, entries: Sequence[MetricEntry], masker: Masker | None
) -> tuple[str, str]:
    """Title and text (a table: task, name, type, value, tags) of the metrics of the task run, or of
    every task run of the execution when no run is given."""
    if run is not None:
        value = f" [{shown(run.value, masker)}]" if run.value is not None else ""
        title = f"Metrics of task {shown(run.task_id)}{value}"
    else:
        title = f"Metrics of execution {shown(execution.id[:8])} ({shown(execution.flow_id)})"
    if not entries:
        return title, "No metrics reported."
    rows: list[list[str]] = [["TASK", "NAME", "TYPE", "VALUE", "TAGS"]]
    for entry in entries:
        tags = " ".join(f"{key}={value}" for key, value in sorted(entry.tags.items()))
        cells = (entry.task_id or "-", entry.name, entry.type, entry.shown(), tags)
        rows.append([shown(cell, masker) for cell in cells])
    widths = [max(cell_len(row[index]) for row in rows) for index in range(4)]
    lines = []
    for row in rows:
        pads = [" " * (width - cell_len(cell)) for width, cell in zip(widths, row, strict=False)]
        padded = [row[0] + pads[0], row[1] + pads[1], row[2] + pads[2], pads[3] + row[3], row[4]]
        lines.append("  ".join(padded).rstrip())
    return title, "\n".join(lines)
