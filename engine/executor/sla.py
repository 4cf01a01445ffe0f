"""A flow's SLAs, checked on each step of a running execution (Kestra's SLAService and the
executor's handling of a violation).

EXECUTION_ASSERTION: its `assert` expression is rendered against the execution on every step while
it runs; when it is not truthy, the SLA is violated. MAX_DURATION: once the execution has run longer
than `duration`, the SLA is violated, once (the executor wakes at that date). A violation is logged
(WARN); FAIL ends the execution FAILED and CANCEL ends it CANCELLED (the last task run still under
way takes that state, the others are killed); NONE changes nothing. The SLA's labels are added to
the execution. As in Kestra, only the first violation of a step acts on the execution.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ..durations import format_duration
from ..expressions import ExpressionError
from ..model import LogLevel, SlaSpec, StateType
from .working_copy import Work, attempt_open, close_attempt

S = StateType
_ENDS = {"FAIL": S.FAILED, "CANCEL": S.CANCELLED}


def next_deadline(work: Work) -> datetime | None:
    """When the first MAX_DURATION SLA not yet violated runs out, for the executor's wake-up."""
    header = work.header
    dates = [
        header.state.start_date + sla.duration
        for sla in work.flow.sla
        if sla.type == "MAX_DURATION" and sla.duration is not None and sla.id not in header.sla_violations
    ]
    return min(dates) if dates else None


def check_slas(work: Work) -> None:
    """Evaluate the flow's SLAs on a running execution and apply the first violation."""
    header = work.header
    if not work.flow.sla or header.state.current.is_terminated:
        return
    violations: list[tuple[SlaSpec, str]] = []
    expired: list[str] = []
    for sla in work.flow.sla:
        reason = _violation(work, sla)
        if reason is None:
            continue
        work.log(LogLevel.WARN, f"SLA '{sla.id}' violated: {reason}")
        violations.append((sla, reason))
        if sla.type == "MAX_DURATION":
            expired.append(sla.id)
    if expired:
        work.set_header(dataclasses.replace(header, sla_violations=(*header.sla_violations, *expired)))
    if violations:
        _apply(work, *violations[0])


def _violation(work: Work, sla: SlaSpec) -> str | None:
    header = work.header
    if sla.type == "MAX_DURATION":
        if sla.duration is None or sla.id in header.sla_violations:
            return None
        elapsed = work.now - header.state.start_date
        if elapsed <= sla.duration:
            return None
        return (
            f"execution duration of {format_duration(elapsed)} exceed the maximum duration of "
            f"{format_duration(sla.duration)}."
        )
    try:
        holds = work.truthy(sla.assertion or "", None)
    except ExpressionError as error:
        work.log(LogLevel.ERROR, f"Ignoring SLA '{sla.id}' because of the error: {error}")
        return None
    return None if holds else f"assertion is false: {sla.assertion}."


def _apply(work: Work, sla: SlaSpec, reason: str) -> None:
    end = _ENDS.get(sla.behavior)
    if end is not None:
        if end is S.FAILED:
            work.log(LogLevel.ERROR, f"Execution failed due to SLA '{sla.id}' violated: {reason}")
        open_runs = [run for run in work.runs if not run.state.current.is_terminated]
        last = open_runs[-1] if open_runs else None
        for run in open_runs:
            if attempt_open(run):
                work.outcome.cancel.append(run)
            state = end if run is last else S.KILLED
            work.put(dataclasses.replace(close_attempt(run, S.KILLED, state, work.now), due=None))
        work.set_header(work.header.to(end, work.now))
    if sla.labels:
        known = set(work.header.labels)
        added = tuple(label for label in sla.labels if label not in known)
        if added:
            work.set_header(dataclasses.replace(work.header, labels=(*work.header.labels, *added)))
