"""The Ion text reader and writer of Kestra's internal storage files (engine/internal_storage/ion.py)."""

from __future__ import annotations

import io
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tiercel.engine.internal_storage.ion import IonError, dumps, iter_lines, loads, loads_all

PARIS = timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    "value",
    [
        "hello",
        1,
        1.25,
        date(2008, 12, 25),
        datetime(2008, 12, 25, 15, 30, 0, 123000, tzinfo=UTC),
        datetime(2008, 12, 25, 15, 30, 0, 123000),
        datetime(2008, 12, 25, 15, 30, 0, 123000, tzinfo=PARIS),
        time(15, 30, 0, 123456),
        [1.1, 2.2, 3.3],
        {"x": 4.1, "y": 0.1, "z": 3.1},
    ],
)
def test_a_value_reads_back_as_written(value: Any) -> None:
    """FileSerdeTest.ion: each value, written in a {key: value} line, reads back equal."""
    line = dumps({"key": value})
    assert "\n" not in line
    assert loads(line) == {"key": value}


def test_the_text_is_kestras() -> None:
    """The forms Kestra's IonModule writes: instants as millisecond timestamps, dates as day
    timestamps, other java.time values as strings annotated with their class, floats with an exponent."""
    assert dumps({"key": "k1", "value": 1}) == '{key:"k1",value:1}'
    assert dumps(datetime(2008, 12, 25, 15, 30, tzinfo=UTC)) == "2008-12-25T15:30:00.000Z"
    assert dumps(date(2008, 12, 25)) == "2008-12-25T"
    assert dumps(datetime(2008, 12, 25, 15, 30, 0, 123000)) == 'LocalDateTime::"2008-12-25T15:30:00.123"'
    offset = datetime(2008, 12, 25, 15, 30, tzinfo=PARIS)
    assert dumps(offset) == 'OffsetDateTime::"2008-12-25T15:30:00+01:00"'
    assert dumps(time(15, 30, 0, 123456)) == 'LocalTime::"15:30:00.123456"'
    assert dumps([1.5, 0.1, Decimal("2"), Decimal("-0.05"), None, True]) == "[1.5e0,0.1e0,2.,-0.05,null,true]"
    assert dumps({"a b": 1, "null": 2, "ok_1": 3}) == "{'a b':1,'null':2,ok_1:3}"
    assert dumps('say "hi"\n\\') == r'"say \"hi\"\n\\"'
    assert dumps(b"hello") == "{{aGVsbG8=}}"


def test_kestras_timestamps_read_as_its_parser_reads_them() -> None:
    """Kestra's IonParser: an instant at midnight UTC is a LocalDate, another offset keeps it,
    ZonedDateTime strings may carry a zone name."""
    assert loads("2008-12-25T00:00:00.000Z") == date(2008, 12, 25)
    assert loads("2008-12-25T15:30:00-00:00") == datetime(2008, 12, 25, 15, 30, tzinfo=UTC)
    assert loads("2008-12-25T15:30+01:00").utcoffset() == timedelta(hours=1)
    assert loads("2008T") == date(2008, 1, 1)
    zoned = loads('ZonedDateTime::"2008-12-25T15:30:00.123+01:00[Europe/Paris]"')
    assert zoned == datetime(2008, 12, 25, 15, 30, 0, 123000, tzinfo=PARIS)
    assert loads('LocalDate::"2008-12-25"') == date(2008, 12, 25)
    assert loads('Other::"2008-12-25"') == "2008-12-25"


def test_the_whole_text_grammar_reads() -> None:
    """Ion text beyond what Kestra writes: comments, long strings, symbols, s-expressions, typed
    nulls, radixes, decimals, special floats, clobs and escapes."""
    text = """$ion_1_0 // a comment
    {
      /* fields */ "quoted": '''long ''' '''string''', 'sym bol': an::ann::sym,
      sexp: (a + -3 'b'), nulls: [null.struct, null.int, null], hex: 0x1F, bin: -0b101,
      under: 1_000, dec: 1.50, exp: 2d3, flt: -1.5e-3, inf: +inf, clob: {{ "hi" }},
      esc: "\\u00e9\\x41\\U0001F600\\t", dup: 1, dup: 2, t: true, f: false,
    }
    [nan] 42"""
    first, second, third = loads_all(text)
    assert first["quoted"] == "long string"
    assert first["sym bol"] == "sym"
    assert first["sexp"] == ["a", "+", -3, "b"]
    assert first["nulls"] == [None, None, None]
    assert (first["hex"], first["bin"], first["under"]) == (31, -5, 1000)
    assert first["dec"] == Decimal("1.50") and first["exp"] == Decimal("2000")
    assert first["flt"] == -0.0015 and first["inf"] == math.inf
    assert first["clob"] == b"hi"
    assert first["esc"] == "\u00e9A\U0001f600\t"
    assert first["dup"] == 2 and first["t"] is True and first["f"] is False
    assert math.isnan(second[0]) and third == 42


@pytest.mark.parametrize(
    "text",
    ['{key:"open', "{key:1", "[1 2]", "{1:2}", "2008-13-01T", "12abc", "null.nothing", "1 2", "", '"\\q"'],
)
def test_invalid_text_is_refused(text: str) -> None:
    with pytest.raises(IonError):
        loads(text)


def test_lines_split_as_java_reads_them() -> None:
    """BufferedReader.readLine: \\n, \\r\\n and \\r end a line; a last line without an end counts."""
    data = b"{a:1}\r\n{a:2}\n{a:3}\r{a:4}"
    assert list(iter_lines(io.BytesIO(data))) == [b"{a:1}", b"{a:2}", b"{a:3}", b"{a:4}"]
    assert list(iter_lines(io.BytesIO(b""))) == []
