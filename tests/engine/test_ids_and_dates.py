"""Ids and dates as the model makes them: Kestra-shaped ids, dates at the precision they are stored."""

from __future__ import annotations

import dataclasses
import string
from collections import Counter
from datetime import UTC, datetime

from tiercel.engine.model import State, StateType, iso, new_id, utcnow
from tiercel.engine.model.states import History


def test_ids_are_22_base62_characters_all_drawn() -> None:
    ids = [new_id() for _ in range(5_000)]
    assert len(set(ids)) == len(ids)
    alphabet = set(string.digits + string.ascii_letters)
    assert all(len(one) == 22 and set(one) <= alphabet for one in ids)
    seen = Counter(character for one in ids for character in one)
    assert set(seen) == alphabet  # every character occurs (110,000 draws of 62)
    # No character favoured: each is about 1/62 of the draws (a byte modulo 62 without rejection
    # would give the first 8 characters 5/4 of the others' share).
    expected = 110_000 / 62
    assert max(seen.values()) < expected * 1.15 and min(seen.values()) > expected * 0.85


def test_now_is_taken_to_the_millisecond_it_is_stored_with() -> None:
    now = utcnow()
    assert now.microsecond % 1000 == 0 and now.tzinfo is UTC


def test_a_history_keeps_its_date_formatted_and_compares_by_state_and_date() -> None:
    moment = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
    history = History(StateType.RUNNING, moment)
    assert history.text == iso(moment) == "2026-03-01T12:30:15.123Z"
    assert history == History(StateType.RUNNING, moment)
    later = dataclasses.replace(history, date=datetime(2026, 3, 1, 12, 30, 16, tzinfo=UTC))
    assert later.text == "2026-03-01T12:30:16.000Z"
    state = State.new(StateType.CREATED, moment).to(StateType.SUCCESS, later.date)
    assert state.to_json() == {
        "current": "SUCCESS",
        "histories": [
            {"state": "CREATED", "date": "2026-03-01T12:30:15.123Z"},
            {"state": "SUCCESS", "date": "2026-03-01T12:30:16.000Z"},
        ],
        "startDate": "2026-03-01T12:30:15.123Z",
        "endDate": "2026-03-01T12:30:16.000Z",
        "duration": "PT0.877S",
    }
