"""Kestra's trigger conditions: each type, its legacy names, and its validation messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tiercel.engine.expressions import Renderer
from tiercel.engine.model import Execution, Flow, Label, State, StateType
from tiercel.engine.triggers import (
    ConditionContext,
    ConditionError,
    condition_problem,
    condition_type,
    conditions_hold,
)

CORE = "io.kestra.plugin.core.condition."
LEGACY = "io.kestra.core.models.conditions.types."
FLOW = Flow(id="f", namespace="company.team", tasks=())
RENDERER = Renderer()
SATURDAY = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
MONDAY = datetime(2025, 3, 3, 10, 30, tzinfo=UTC)


def ctx(
    date: datetime | None = None, execution: Execution | None = None, **variables: Any
) -> ConditionContext:
    return ConditionContext(
        flow=FLOW, render=RENDERER.render, date=date, execution=execution, variables=variables
    )


def holds(condition: Mapping[str, Any], context: ConditionContext) -> bool:
    return conditions_hold([condition], context)


def execution(
    state: StateType = StateType.SUCCESS,
    namespace: str = "company.team.sub",
    flow_id: str = "upstream",
    labels: tuple[Label, ...] = (),
    outputs: Mapping[str, Any] | None = None,
) -> Execution:
    return Execution("e1", namespace, flow_id, 1, State.new(state), labels=labels, outputs=outputs)


def test_day_week_and_legacy_name() -> None:
    condition = {"type": CORE + "DayWeek", "dayOfWeek": "SATURDAY"}
    assert holds(condition, ctx(SATURDAY))
    assert not holds(condition, ctx(MONDAY))
    legacy = {**condition, "type": LEGACY + "DayWeekCondition"}
    assert condition_type(legacy) == CORE + "DayWeek"
    assert holds(legacy, ctx(SATURDAY))


def test_day_week_uses_the_schedule_time_zone() -> None:
    # 23:30 UTC on Friday is already Saturday in Paris.
    friday_night = datetime(2025, 2, 28, 23, 30, tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    assert holds({"type": CORE + "DayWeek", "dayOfWeek": "SATURDAY"}, ctx(friday_night))


def test_day_week_with_its_own_date_expression() -> None:
    condition = {"type": CORE + "DayWeek", "dayOfWeek": "MONDAY", "date": "{{ vars.day }}"}
    assert holds(condition, ctx(SATURDAY, vars={"day": "2025-03-03T08:00:00Z"}))
    with pytest.raises(ConditionError, match="not an ISO 8601 date"):
        holds(condition, ctx(SATURDAY, vars={"day": "someday"}))


def test_day_week_in_month() -> None:
    first_monday = {"type": CORE + "DayWeekInMonth", "dayOfWeek": "MONDAY", "dayInMonth": "FIRST"}
    assert holds(first_monday, ctx(MONDAY))
    assert not holds(first_monday, ctx(datetime(2025, 3, 10, tzinfo=UTC)))
    second = {**first_monday, "dayInMonth": "SECOND"}
    assert holds(second, ctx(datetime(2025, 3, 10, tzinfo=UTC)))
    last = {**first_monday, "dayInMonth": "LAST"}
    assert holds(last, ctx(datetime(2025, 3, 31, tzinfo=UTC)))
    assert not holds(last, ctx(datetime(2025, 3, 24, tzinfo=UTC)))
    fourth = {**first_monday, "dayInMonth": "FOURTH"}
    assert holds(fourth, ctx(datetime(2025, 3, 24, tzinfo=UTC)))


def test_weekend() -> None:
    condition = {"type": CORE + "Weekend"}
    assert holds(condition, ctx(SATURDAY))
    assert holds(condition, ctx(datetime(2025, 3, 2, tzinfo=UTC)))
    assert not holds(condition, ctx(MONDAY))


def test_time_between_compares_offset_times() -> None:
    condition = {"type": CORE + "TimeBetween", "after": "10:00:00Z", "before": "11:00:00Z"}
    assert holds(condition, ctx(MONDAY))
    assert not holds(condition, ctx(datetime(2025, 3, 3, 11, 30, tzinfo=UTC)))
    # 10:30 UTC is 12:30+02:00: after 12:00+02:00.
    assert holds({"type": CORE + "TimeBetween", "after": "12:00:00+02:00"}, ctx(MONDAY))
    assert not holds({"type": CORE + "TimeBetween", "before": "12:00:00+02:00"}, ctx(MONDAY))


def test_date_time_between() -> None:
    condition = {
        "type": CORE + "DateTimeBetween",
        "after": "2025-03-01T00:00:00Z",
        "before": "2025-03-02T00:00:00+01:00",
    }
    assert holds(condition, ctx(SATURDAY))
    assert not holds(condition, ctx(MONDAY))
    assert holds({"type": LEGACY + "DateTimeBetweenCondition", "after": "2025-03-02T00:00:00Z"}, ctx(MONDAY))


def test_expression_is_false_when_blank_or_false() -> None:
    assert holds({"type": CORE + "Expression", "expression": "{{ flag == 1 }}"}, ctx(flag=1))
    assert not holds({"type": CORE + "Expression", "expression": "{{ flag == 1 }}"}, ctx(flag=2))
    assert not holds({"type": CORE + "Expression", "expression": "  "}, ctx())
    assert holds({"type": LEGACY + "VariableCondition", "expression": "yes"}, ctx())


def test_not_and_or() -> None:
    saturday = {"type": CORE + "DayWeek", "dayOfWeek": "SATURDAY"}
    sunday = {"type": CORE + "DayWeek", "dayOfWeek": "SUNDAY"}
    assert holds({"type": CORE + "Or", "conditions": [saturday, sunday]}, ctx(SATURDAY))
    assert not holds({"type": CORE + "Or", "conditions": [saturday, sunday]}, ctx(MONDAY))
    assert not holds({"type": CORE + "Not", "conditions": [saturday, sunday]}, ctx(SATURDAY))
    assert holds({"type": LEGACY + "NotCondition", "conditions": [saturday, sunday]}, ctx(MONDAY))


def test_execution_status() -> None:
    condition = {"type": CORE + "ExecutionStatus", "in": ["SUCCESS", "WARNING"], "notIn": ["FAILED"]}
    assert holds(condition, ctx(execution=execution(StateType.SUCCESS)))
    assert not holds(condition, ctx(execution=execution(StateType.FAILED)))
    assert not holds(
        {"type": CORE + "ExecutionStatus", "notIn": ["KILLED"]}, ctx(execution=execution(StateType.KILLED))
    )
    with pytest.raises(ConditionError, match="triggering execution"):
        holds(condition, ctx())


def test_execution_flow() -> None:
    condition = {"type": CORE + "ExecutionFlow", "namespace": "company.team.sub", "flowId": "upstream"}
    assert holds(condition, ctx(execution=execution()))
    assert not holds(condition, ctx(execution=execution(flow_id="other")))


def test_execution_namespace_comparisons() -> None:
    run = ctx(execution=execution(namespace="company.team.sub"))
    assert holds({"type": CORE + "ExecutionNamespace", "namespace": "company.team.sub"}, run)
    assert not holds({"type": CORE + "ExecutionNamespace", "namespace": "company.team"}, run)
    assert holds(
        {"type": CORE + "ExecutionNamespace", "namespace": "company.team", "comparison": "PREFIX"}, run
    )
    assert holds({"type": CORE + "ExecutionNamespace", "namespace": "team.sub", "comparison": "SUFFIX"}, run)
    assert holds(
        {"type": LEGACY + "ExecutionNamespaceCondition", "namespace": "company", "prefix": True}, run
    )


def test_execution_labels_as_map_or_list() -> None:
    run = ctx(execution=execution(labels=(Label("owner", "john"), Label("env", "prod"))))
    assert holds({"type": CORE + "ExecutionLabels", "labels": {"owner": "john"}}, run)
    assert holds({"type": CORE + "ExecutionLabels", "labels": [{"key": "env", "value": "prod"}]}, run)
    assert not holds({"type": CORE + "ExecutionLabels", "labels": {"owner": "jane"}}, run)


def test_execution_outputs() -> None:
    condition = {"type": CORE + "ExecutionOutputs", "expression": "{{ trigger.outputs.answer == 42 }}"}
    assert holds(condition, ctx(execution=execution(outputs={"answer": 42})))
    assert not holds(condition, ctx(execution=execution(outputs={"answer": 1})))
    assert not holds(condition, ctx(execution=execution(outputs=None)))


def test_all_conditions_must_hold() -> None:
    saturday = {"type": CORE + "DayWeek", "dayOfWeek": "SATURDAY"}
    morning = {"type": CORE + "TimeBetween", "before": "12:00:00Z"}
    assert conditions_hold([saturday, morning], ctx(SATURDAY))
    assert not conditions_hold([saturday, morning], ctx(datetime(2025, 3, 1, 13, tzinfo=UTC)))
    assert conditions_hold([], ctx())


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("text", "must be a mapping"),
        ({"dayOfWeek": "MONDAY"}, "has no `type`"),
        ({"type": CORE + "Nope"}, "unknown condition type"),
        ({"type": CORE + "DayWeek", "dayOfWeek": "MONDAYS"}, "`dayOfWeek` must be one of MONDAY"),
        ({"type": CORE + "DayWeek", "dayOfWeek": "MONDAY", "day": 1}, "DayWeek has no property `day`"),
        ({"type": CORE + "DayWeekInMonth", "dayOfWeek": "MONDAY", "dayInMonth": "FIFTH"}, "`dayInMonth`"),
        ({"type": CORE + "TimeBetween"}, "set `after`, `before` or both"),
        ({"type": CORE + "TimeBetween", "after": "25:00"}, "`after` is `25:00`"),
        ({"type": CORE + "DateTimeBetween", "before": "tomorrow"}, "`before` is `tomorrow`"),
        ({"type": CORE + "Expression"}, "`expression` is required"),
        ({"type": CORE + "Not", "conditions": []}, "non-empty list"),
        ({"type": CORE + "Or", "conditions": [{"type": CORE + "Weekend", "x": 1}]}, "conditions[0]: Weekend"),
        ({"type": CORE + "ExecutionStatus", "in": ["DONE"]}, "unknown state `DONE`"),
        ({"type": CORE + "ExecutionFlow", "namespace": "a"}, "`flowId` is required"),
        ({"type": CORE + "ExecutionNamespace", "namespace": "a", "comparison": "LIKE"}, "`comparison`"),
        ({"type": CORE + "ExecutionLabels", "labels": "owner"}, "`labels` must be a mapping"),
    ],
)
def test_problems_say_what_is_wrong(condition: Any, message: str) -> None:
    problem = condition_problem(condition)
    assert problem is not None and message in problem
    if isinstance(condition, Mapping) and condition.get("type", "").startswith(CORE):
        with pytest.raises(ConditionError):
            conditions_hold([condition], ctx(SATURDAY))


def test_valid_conditions_have_no_problem() -> None:
    for condition in (
        {"type": CORE + "DayWeek", "dayOfWeek": "MONDAY"},
        {"type": LEGACY + "WeekendCondition"},
        {"type": CORE + "TimeBetween", "after": "08:00Z", "before": "17:30:00+01:00"},
        {"type": CORE + "ExecutionStatus", "in": ["SUCCESS"]},
        {"type": CORE + "HasRetryAttempt"},
    ):
        assert condition_problem(condition) is None, condition
