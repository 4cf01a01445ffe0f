"""An attempt's end as the worker queue carries it: what the worker writes, the executor reads."""

from __future__ import annotations

from datetime import UTC, datetime

from tiercel.engine.cluster.jobs import decode_result, encode_result
from tiercel.engine.messages import Failure, WorkerResult
from tiercel.engine.model import Label, LogEntry, LogLevel, StateType


def test_a_result_with_outputs_labels_and_error_lines_comes_back_as_it_went() -> None:
    outputs = {"value": "a\x00b", "rows": [1, 2.5, None, True], "nested": {"é": "ü"}}
    failure = Failure("CONNECTION_ERROR", "cannot connect")
    result = WorkerResult("run1", StateType.FAILED, outputs, (Label("team", "data"),), failure)
    error = LogEntry(
        "exec1", "acme", "flow", datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), LogLevel.ERROR,
        "disk on fire", "task", "run1", 2,
    )  # fmt: skip
    text = encode_result(result, [error])
    assert "\x00" not in text  # PostgreSQL's text holds no NUL: JSON escapes it
    back, errors = decode_result("run1", text)
    assert back == result
    assert errors == [error]


def test_a_result_without_outputs_or_errors() -> None:
    back, errors = decode_result("run1", encode_result(WorkerResult("run1", StateType.SUCCESS)))
    assert back == WorkerResult("run1", StateType.SUCCESS)
    assert errors == []
