"""Kestra's trigger conditions: validation and evaluation.

A condition is the mapping written in the flow (`type` plus properties). Every condition of a trigger
must hold for the trigger to fire. Date conditions (DayWeek, DayWeekInMonth, Weekend, PublicHoliday,
TimeBetween, DateTimeBetween) test `ctx.date` unless the condition sets its own `date` expression;
execution conditions (ExecutionStatus, ExecutionFlow, ...) test `ctx.execution`, the execution that
triggered.
"""

from __future__ import annotations

import locale
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ..expressions.calendar_functions import holiday_calendar
from ..model import Execution, Flow, StateType

_CORE = "io.kestra.plugin.core.condition."
_LEGACY = "io.kestra.core.models.conditions.types."
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
DAYS_IN_MONTH = ("FIRST", "LAST", "SECOND", "THIRD", "FOURTH")
COMPARISONS = ("EQUALS", "PREFIX", "SUFFIX")
_STATES = frozenset(state.value for state in StateType)
_DEFAULT_DATE = "{{ trigger.date }}"

Render = Callable[[str, Mapping[str, Any]], str]


class ConditionError(Exception):
    """A condition cannot be evaluated (bad property, unparsable date, no execution to test)."""


@dataclass(frozen=True)
class ConditionContext:
    """What a condition is tested against.

    Attributes:
        flow: The flow owning the trigger.
        render: Renders a template with variables (Kestra's expression language).
        date: The date a date condition tests (a schedule's `trigger.date`), aware.
        execution: The execution that triggered (flow triggers).
        variables: The variables an `Expression` or a `date` expression is rendered with.
    """

    flow: Flow
    render: Render
    date: datetime | None = None
    execution: Execution | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)


def conditions_hold(conditions: Sequence[Mapping[str, Any]], ctx: ConditionContext) -> bool:
    """Whether every condition holds (an empty list holds).

    Raises:
        ConditionError: A condition is invalid or cannot be evaluated.
    """
    return all(_holds(condition, ctx) for condition in conditions)


def condition_type(condition: Mapping[str, Any]) -> str | None:
    """The full Kestra type name of a condition (legacy aliases resolved), None when unknown."""
    written = condition.get("type")
    return _ALIASES.get(written) if isinstance(written, str) else None


def condition_problem(condition: Any) -> str | None:
    """Why a condition is invalid (what and which property), or None when it is valid."""
    if not isinstance(condition, Mapping):
        return f"a condition must be a mapping with a `type`, not {type(condition).__name__}"
    written = condition.get("type")
    if not isinstance(written, str) or not written:
        return "a condition has no `type`: e.g. `type: io.kestra.plugin.core.condition.DayWeek`"
    kind = _ALIASES.get(written)
    if kind is None:
        return f"unknown condition type `{written}`; known: {', '.join(sorted(CONDITION_TYPES))}"
    name = kind.rsplit(".", 1)[-1]
    unknown = sorted(set(condition) - _PROPERTIES[kind] - {"type"})
    if unknown:
        allowed = ", ".join(f"`{key}`" for key in sorted(_PROPERTIES[kind]))
        return f"{name} has no property `{unknown[0]}` (allowed: {allowed})"
    return _CHECKS[kind](condition, name)


# -- evaluation ---------------------------------------------------------------------------------


def _holds(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    problem = condition_problem(condition)
    if problem:
        raise ConditionError(problem)
    kind = _ALIASES[condition["type"]]
    return _TESTS[kind](condition, ctx)


def _date_of(condition: Mapping[str, Any], ctx: ConditionContext, name: str) -> datetime:
    """The date a date condition tests: its own `date` expression, else the trigger date."""
    written = condition.get("date")
    if written is None or (ctx.date is not None and str(written).strip() == _DEFAULT_DATE):
        if ctx.date is None:
            raise ConditionError(f"{name} needs a date to test: set its `date` property")
        return ctx.date
    text = ctx.render(str(written), ctx.variables).strip()
    try:
        return _parse_datetime(text)
    except ValueError:
        raise ConditionError(f"{name}: `date` rendered to `{text}`, which is not an ISO 8601 date") from None


def _parse_datetime(text: str) -> datetime:
    text = text.strip()
    bracket = text.find("[")  # Java's ZonedDateTime form: 2024-01-01T10:00+01:00[Europe/Paris]
    if bracket > 0:
        text = text[:bracket]
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})$")


def _parse_offset_time(text: str) -> tuple[time, timedelta]:
    """A Java OffsetTime such as `16:19:12+02:00` or `08:00Z`."""
    found = _TIME.match(text.strip())
    if found is None:
        raise ValueError(text)
    hour, minute, second, fraction, offset = found.groups()
    micro = int((fraction or "0").ljust(6, "0")[:6])
    shift = timedelta(0)
    if offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        shift = sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return time(int(hour), int(minute), int(second or 0), micro), shift


def _offset_nanos(moment: time, offset: timedelta) -> int:
    """Java's OffsetTime ordering: the time of day shifted to UTC (not wrapped around midnight)."""
    of_day = ((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1_000_000 + moment.microsecond
    return of_day - int(offset.total_seconds() * 1_000_000)


def _execution(ctx: ConditionContext, name: str) -> Execution:
    if ctx.execution is None:
        raise ConditionError(f"{name} tests the triggering execution and there is none here")
    return ctx.execution


def _truthy(rendered: str) -> bool:
    return not (not rendered.strip() or rendered.strip() == "false")


def _day_week(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    moment = _date_of(condition, ctx, "DayWeek")
    return bool(DAYS[moment.weekday()] == condition["dayOfWeek"])


def _nth_weekday(day: date, weekday: int, which: str) -> date:
    first = day.replace(day=1)
    first_match = first + timedelta(days=(weekday - first.weekday()) % 7)
    if which == "LAST":
        next_month = (first + timedelta(days=32)).replace(day=1)
        last = next_month - timedelta(days=1)
        return last - timedelta(days=(last.weekday() - weekday) % 7)
    # Java's TemporalAdjusters.next() chained: may run into the next month, as in Kestra.
    return first_match + timedelta(weeks=DAYS_IN_MONTH.index(which) - (1 if which != "FIRST" else 0))


def _day_week_in_month(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    day = _date_of(condition, ctx, "DayWeekInMonth").date()
    weekday = DAYS.index(condition["dayOfWeek"])
    return _nth_weekday(day, weekday, condition["dayInMonth"]) == day


def _weekend(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    return _date_of(condition, ctx, "Weekend").weekday() >= 5


def _holiday_calendar(country: str, subdivision: str | None) -> Any:
    try:
        return holiday_calendar(country, subdivision)
    except NotImplementedError as error:
        raise ConditionError(f"PublicHoliday: {error}") from None


def _default_country() -> str:
    """The country of the default locale (as Jollyday's HolidayManager.getInstance() takes it)."""
    name = locale.getlocale()[0] or ""
    country = name.partition("_")[2][:2]
    if not country:
        raise ConditionError("PublicHoliday: set `country`, the default locale names no country")
    return country


def _public_holiday(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    day = _date_of(condition, ctx, "PublicHoliday").date()
    written_country, written_subdivision = condition.get("country"), condition.get("subDivision")
    country = ctx.render(str(written_country), ctx.variables).strip() if written_country is not None else ""
    subdivision = None
    if written_subdivision is not None:
        subdivision = ctx.render(str(written_subdivision), ctx.variables).strip().upper() or None
    return day in _holiday_calendar((country or _default_country()).upper(), subdivision)


def _time_between(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    moment = _date_of(condition, ctx, "TimeBetween")
    offset = moment.utcoffset() or timedelta(0)
    current = _offset_nanos(moment.time(), offset)
    after, before = condition.get("after"), condition.get("before")
    if after is not None and current <= _offset_nanos(*_parse_offset_time(str(after))):
        return False
    return before is None or current < _offset_nanos(*_parse_offset_time(str(before)))


def _date_time_between(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    moment = _date_of(condition, ctx, "DateTimeBetween")
    after, before = condition.get("after"), condition.get("before")
    if after is not None and moment <= _parse_datetime(str(after)):
        return False
    return before is None or moment < _parse_datetime(str(before))


def _expression(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    return _truthy(ctx.render(str(condition["expression"]), ctx.variables))


def _not(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    return not any(_holds(inner, ctx) for inner in condition["conditions"])


def _or(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    return any(_holds(inner, ctx) for inner in condition["conditions"])


def _execution_status(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    current = _execution(ctx, "ExecutionStatus").state.current.value
    allowed, refused = condition.get("in"), condition.get("notIn")
    if allowed is not None and current not in allowed:
        return False
    return refused is None or current not in refused


def _execution_flow(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    execution = _execution(ctx, "ExecutionFlow")
    return bool(execution.namespace == condition["namespace"] and execution.flow_id == condition["flowId"])


def _execution_namespace(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    namespace = _execution(ctx, "ExecutionNamespace").namespace
    comparison = condition.get("comparison") or ("PREFIX" if condition.get("prefix") else "EQUALS")
    wanted = str(condition["namespace"])
    if comparison == "PREFIX":
        return namespace.startswith(wanted)
    if comparison == "SUFFIX":
        return namespace.endswith(wanted)
    return namespace == wanted


def _labels_of(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return [(str(key), str(item)) for key, item in value.items()]
    return [(str(item["key"]), str(item["value"])) for item in value]


def _execution_labels(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    present = {(label.key, label.value) for label in _execution(ctx, "ExecutionLabels").labels}
    return all(label in present for label in _labels_of(condition["labels"]))


def _execution_outputs(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    execution = _execution(ctx, "ExecutionOutputs")
    if not execution.outputs:
        return False
    trigger = dict(ctx.variables.get("trigger") or {})
    trigger["outputs"] = dict(execution.outputs)
    return _truthy(ctx.render(str(condition["expression"]), {**ctx.variables, "trigger": trigger}))


def _has_retry_attempt(condition: Mapping[str, Any], ctx: ConditionContext) -> bool:
    allowed, refused = condition.get("in"), condition.get("notIn")
    for run in _execution(ctx, "HasRetryAttempt").task_runs:
        if len(run.attempts) <= 1:
            continue
        for attempt in run.attempts:
            current = attempt.state.current.value
            if (allowed is None or current in allowed) and (refused is None or current not in refused):
                return True
    return False


# -- validation ---------------------------------------------------------------------------------


def _check_date(condition: Mapping[str, Any], name: str) -> str | None:
    written = condition.get("date")
    if written is not None and not isinstance(written, str):
        return f"{name}: `date` must be text (an ISO 8601 date or an expression)"
    return None


def _check_public_holiday(condition: Mapping[str, Any], name: str) -> str | None:
    for key in ("country", "subDivision"):
        value = condition.get(key)
        if value is not None and not isinstance(value, str):
            return f"{name}: `{key}` must be text (a code or an expression)"
    return _check_date(condition, name)


def _check_day_week(condition: Mapping[str, Any], name: str) -> str | None:
    if condition.get("dayOfWeek") not in DAYS:
        return f"{name}: `dayOfWeek` must be one of {', '.join(DAYS)}"
    return _check_date(condition, name)


def _check_day_week_in_month(condition: Mapping[str, Any], name: str) -> str | None:
    if condition.get("dayInMonth") not in DAYS_IN_MONTH:
        return f"{name}: `dayInMonth` must be one of {', '.join(DAYS_IN_MONTH)}"
    return _check_day_week(condition, name)


def _check_between(
    parse: Callable[[str], Any], example: str
) -> Callable[[Mapping[str, Any], str], str | None]:
    def check(condition: Mapping[str, Any], name: str) -> str | None:
        if condition.get("after") is None and condition.get("before") is None:
            return f"{name}: set `after`, `before` or both"
        for key in ("after", "before"):
            value = condition.get(key)
            if value is None:
                continue
            try:
                parse(str(value))
            except ValueError:
                return f"{name}: `{key}` is `{value}`, expected a value such as `{example}`"
        return _check_date(condition, name)

    return check


def _check_expression(condition: Mapping[str, Any], name: str) -> str | None:
    expression = condition.get("expression")
    if not isinstance(expression, str) or not expression:
        return f'{name}: `expression` is required, e.g. `expression: "{{{{ inputs.x == 1 }}}}"`'
    return None


def _check_nested(condition: Mapping[str, Any], name: str) -> str | None:
    inner = condition.get("conditions")
    if not isinstance(inner, list) or not inner:
        return f"{name}: `conditions` must be a non-empty list of conditions"
    for index, item in enumerate(inner):
        problem = condition_problem(item)
        if problem:
            return f"{name}: conditions[{index}]: {problem}"
    return None


def _check_states(condition: Mapping[str, Any], name: str) -> str | None:
    for key in ("in", "notIn"):
        value = condition.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            return f"{name}: `{key}` must be a list of states"
        wrong = [item for item in value if item not in _STATES]
        if wrong:
            return f"{name}: `{key}` holds unknown state `{wrong[0]}` (states: {', '.join(sorted(_STATES))})"
    return None


def _check_text(*keys: str) -> Callable[[Mapping[str, Any], str], str | None]:
    def check(condition: Mapping[str, Any], name: str) -> str | None:
        for key in keys:
            if not isinstance(condition.get(key), str) or not condition[key]:
                return f"{name}: `{key}` is required"
        return None

    return check


def _check_namespace(condition: Mapping[str, Any], name: str) -> str | None:
    comparison = condition.get("comparison")
    if comparison is not None and comparison not in COMPARISONS:
        return f"{name}: `comparison` must be one of {', '.join(COMPARISONS)}"
    if "prefix" in condition and not isinstance(condition["prefix"], bool):
        return f"{name}: `prefix` must be true or false"
    return _check_text("namespace")(condition, name)


def _check_labels(condition: Mapping[str, Any], name: str) -> str | None:
    labels = condition.get("labels")
    if isinstance(labels, Mapping) and labels:
        return None
    pairs = isinstance(labels, list) and all(
        isinstance(i, Mapping) and "key" in i and "value" in i for i in labels
    )
    if labels and pairs:
        return None
    return f"{name}: `labels` must be a mapping (key: value) or a list of {{key, value}}"


def _check_nothing(condition: Mapping[str, Any], name: str) -> str | None:
    return None


_Test = Callable[[Mapping[str, Any], ConditionContext], bool]
_Check = Callable[[Mapping[str, Any], str], str | None]
# name -> (test, check, properties, legacy names)
_SPECS: dict[str, tuple[_Test, _Check, frozenset[str], tuple[str, ...]]] = {
    "DayWeek": (_day_week, _check_day_week, frozenset({"date", "dayOfWeek"}), ("DayWeekCondition",)),
    "DayWeekInMonth": (
        _day_week_in_month,
        _check_day_week_in_month,
        frozenset({"date", "dayOfWeek", "dayInMonth"}),
        ("DayWeekInMonthCondition",),
    ),
    "Weekend": (_weekend, _check_date, frozenset({"date"}), ("WeekendCondition",)),
    "PublicHoliday": (
        _public_holiday,
        _check_public_holiday,
        frozenset({"date", "country", "subDivision"}),
        ("PublicHolidayCondition",),
    ),
    "TimeBetween": (
        _time_between,
        _check_between(_parse_offset_time, "16:19:12+02:00"),
        frozenset({"date", "after", "before"}),
        ("TimeBetweenCondition",),
    ),
    "DateTimeBetween": (
        _date_time_between,
        _check_between(_parse_datetime, "2024-01-01T10:00:00+01:00"),
        frozenset({"date", "after", "before"}),
        ("DateTimeBetweenCondition",),
    ),
    "Expression": (
        _expression,
        _check_expression,
        frozenset({"expression"}),
        ("ExpressionCondition", "VariableCondition"),
    ),
    "Not": (_not, _check_nested, frozenset({"conditions"}), ("NotCondition",)),
    "Or": (_or, _check_nested, frozenset({"conditions"}), ("OrCondition",)),
    "ExecutionStatus": (
        _execution_status,
        _check_states,
        frozenset({"in", "notIn"}),
        ("ExecutionStatusCondition",),
    ),
    "ExecutionFlow": (
        _execution_flow,
        _check_text("namespace", "flowId"),
        frozenset({"namespace", "flowId"}),
        ("ExecutionFlowCondition",),
    ),
    "ExecutionNamespace": (
        _execution_namespace,
        _check_namespace,
        frozenset({"namespace", "comparison", "prefix"}),
        ("ExecutionNamespaceCondition",),
    ),
    "ExecutionLabels": (
        _execution_labels,
        _check_labels,
        frozenset({"labels"}),
        ("ExecutionLabelsCondition",),
    ),
    "ExecutionOutputs": (
        _execution_outputs,
        _check_expression,
        frozenset({"expression"}),
        ("ExecutionOutputsCondition",),
    ),
    "HasRetryAttempt": (
        _has_retry_attempt,
        _check_states,
        frozenset({"in", "notIn"}),
        ("HasRetryAttemptCondition",),
    ),
}
CONDITION_TYPES = frozenset(_CORE + name for name in _SPECS)
_TESTS: dict[str, _Test] = {_CORE + name: spec[0] for name, spec in _SPECS.items()}
_CHECKS: dict[str, _Check] = {_CORE + name: spec[1] for name, spec in _SPECS.items()}
_PROPERTIES: dict[str, frozenset[str]] = {_CORE + name: spec[2] for name, spec in _SPECS.items()}
_ALIASES: dict[str, str] = {
    **{full: full for full in CONDITION_TYPES},
    **{_LEGACY + old: _CORE + name for name, spec in _SPECS.items() for old in spec[3]},
    **{_CORE + old: _CORE + name for name, spec in _SPECS.items() for old in spec[3]},
}
# Conditions a Schedule accepts (Kestra's ScheduleCondition): they need no triggering execution.
SCHEDULE_CONDITION_TYPES = frozenset(
    _CORE + name
    for name in (
        "DayWeek",
        "DayWeekInMonth",
        "Weekend",
        "PublicHoliday",
        "TimeBetween",
        "DateTimeBetween",
        "Expression",
        "Not",
        "Or",
        "ExecutionOutputs",
    )
)

__all__ = [
    "CONDITION_TYPES",
    "SCHEDULE_CONDITION_TYPES",
    "ConditionContext",
    "ConditionError",
    "Render",
    "condition_problem",
    "condition_type",
    "conditions_hold",
]
