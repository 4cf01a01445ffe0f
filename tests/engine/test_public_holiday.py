"""The PublicHoliday condition: Kestra's PublicHolidayTest cases, its legacy names, its checks, and a
Schedule that skips a holiday."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.engine.clock import ManualClock
from tests.engine.test_scheduler import dates, executions, flow_source, scheduled, settle
from tiercel.engine.expressions import Renderer
from tiercel.engine.model import Flow
from tiercel.engine.parser import FlowParseError, parse_flow
from tiercel.engine.triggers import ConditionContext, condition_problem, condition_type, conditions_hold

CORE = "io.kestra.plugin.core.condition."
FLOW = Flow(id="f", namespace="company.team", tasks=())


def holds(condition: dict[str, str], date: datetime | None = None) -> bool:
    context = ConditionContext(flow=FLOW, render=Renderer().render, date=date)
    return conditions_hold([condition], context)


def test_public_holiday_valid_and_invalid_dates() -> None:
    """PublicHolidayTest.valid and .invalid: 14 July in France, 8 March in Berlin (not in the whole
    of Germany), 2 January in France is no holiday."""
    holiday = CORE + "PublicHoliday"
    assert holds({"type": holiday, "date": "2023-07-14", "country": "FR"})
    assert holds({"type": holiday, "date": "2023-03-08", "country": "DE", "subDivision": "BE"})
    assert not holds({"type": holiday, "date": "2023-01-02", "country": "FR"})
    assert not holds({"type": holiday, "date": "2023-03-08", "country": "DE"})


def test_public_holiday_tests_the_trigger_date_and_renders_its_properties() -> None:
    """PublicHoliday's `date` defaults to `{{ trigger.date }}`; `country` is dynamic."""
    condition = {"type": CORE + "PublicHoliday", "country": "{{ 'F' ~ 'R' }}"}
    assert holds(condition, datetime(2025, 5, 1, 10, tzinfo=UTC))
    assert not holds(condition, datetime(2025, 5, 2, 10, tzinfo=UTC))


def test_public_holiday_legacy_names_and_checks() -> None:
    """PublicHoliday's aliases; an unknown country fails the evaluation with the package's reason."""
    for old in (
        "io.kestra.core.models.conditions.types.PublicHolidayCondition",
        CORE + "PublicHolidayCondition",
    ):
        assert condition_type({"type": old}) == CORE + "PublicHoliday"
    assert condition_problem({"type": CORE + "PublicHoliday", "country": 33}) == (
        "PublicHoliday: `country` must be text (a code or an expression)"
    )
    assert "no property `region`" in str(condition_problem({"type": CORE + "PublicHoliday", "region": "x"}))
    with pytest.raises(Exception, match="XX"):
        holds({"type": CORE + "PublicHoliday", "date": "2023-01-01", "country": "XX"})


def test_public_holiday_is_a_schedule_condition() -> None:
    """PublicHoliday implements ScheduleCondition: a Schedule accepts it (the doc's work-day example)."""
    source = flow_source(
        "0 12 * * *",
        extra="""
        conditions:
          - type: io.kestra.plugin.core.condition.Not
            conditions:
              - type: io.kestra.plugin.core.condition.PublicHoliday
                country: FR
              - type: io.kestra.plugin.core.condition.Weekend
        """,
    )
    try:
        parse_flow(source)
    except FlowParseError as error:  # pragma: no cover - the message says why
        pytest.fail(str(error))


@pytest.mark.asyncio
async def test_schedule_skips_public_holidays(tmp_path: Path) -> None:
    """Kestra's PublicHoliday example inside a Not: the schedule does not fire on 1 May in France."""
    clock = ManualClock(datetime(2025, 4, 30, 0, 0, 30, tzinfo=UTC))
    source = flow_source(
        "0 12 * * *",
        extra="""
        conditions:
          - type: io.kestra.plugin.core.condition.Not
            conditions:
              - type: io.kestra.plugin.core.condition.PublicHoliday
                country: FR
        """,
    )
    async with scheduled(tmp_path, clock, source) as engine:
        for _ in range(3):
            clock.advance(timedelta(days=1))
            await settle(engine)
        found = await executions(engine)
    assert dates(found) == ["2025-04-30T12:00:00Z", "2025-05-02T12:00:00Z"]
