"""The Ion text reader and writer (engine/ion.py) of Kestra's internal storage files, ``toIon`` and
``fromIon()``: Kestra's one Ion mapper (JacksonMapper.ofIon, with its IonModule, IonParser and
IonGenerator over ion-java), as FileSerdeTest, ToIonFilterTest and FromIonFunctionTest pin it."""

from __future__ import annotations

import io
import math
import random
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tiercel.engine.expressions.core import json_default
from tiercel.engine.ion import IonError, dumps, iter_lines, loads, loads_all
from tiercel.engine.ion.reading import _Reader

PARIS = timezone(timedelta(hours=1))

# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------


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
        datetime(2008, 12, 25, 15, 30, 0, 123000, tzinfo=ZoneInfo("Europe/Paris")),
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
    """The forms Kestra's IonModule and IonGenerator write: instants as millisecond timestamps, dates as day
    timestamps, other java.time values as strings annotated with their class, floats with an exponent.

    A date is ion-java's ``Timestamp.forDay``, printed without a trailing ``T`` (Timestamp.print returns
    after the day at day precision). A datetime at a fixed offset is Kestra's ZonedDateTime, as its
    IonParser reads an offset timestamp (``instant.atOffset(zoneOffset).toZonedDateTime()``) and as
    ToIonFilterTest writes one (``ZonedDateTime::"2013-09-08T16:19:00+02:00"``).
    """
    assert dumps({"key": "k1", "value": 1}) == '{key:"k1",value:1}'
    assert dumps(datetime(2008, 12, 25, 15, 30, tzinfo=UTC)) == "2008-12-25T15:30:00.000Z"
    assert dumps(date(2008, 12, 25)) == "2008-12-25"
    assert dumps(datetime(2008, 12, 25, 15, 30, 0, 123000)) == 'LocalDateTime::"2008-12-25T15:30:00.123"'
    offset = datetime(2008, 12, 25, 15, 30, tzinfo=PARIS)
    assert dumps(offset) == 'ZonedDateTime::"2008-12-25T15:30:00+01:00"'
    assert dumps(time(15, 30, 0, 123456)) == 'LocalTime::"15:30:00.123456"'
    assert dumps(time(15, 30, tzinfo=PARIS)) == 'OffsetTime::"15:30:00+01:00"'
    assert dumps([1.5, 0.1, Decimal("2"), Decimal("-0.05"), None, True]) == "[1.5e0,0.1e0,2.,-0.05,null,true]"
    assert dumps({"a b": 1, "null": 2, "ok_1": 3}) == "{'a b':1,'null':2,ok_1:3}"
    assert dumps('say "hi"\n\\') == r'"say \"hi\"\n\\"'
    assert dumps(b"hello") == "{{aGVsbG8=}}"
    assert dumps((1, {2})) == "[1,[2]]"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (100.0, "100e0"),
        (1e10, "1.0E10"),
        (1.5e-5, "1.5E-5"),
        (12345678.9, "1.23456789E7"),
        (-0.0, "-0e0"),
        (float("inf"), "+inf"),
        (float("nan"), "nan"),
        (Decimal("1.50"), "1.50"),
        (Decimal("2"), "2."),
        (Decimal("1E+3"), "1d3"),
        (Decimal("1E-9"), "1d-9"),
        (Decimal("0.00"), "0.00"),
        ({"null": 1, "a b": 2, "$7": 3, "ok_$1": 4, "": 5}, "{'null':1,'a b':2,'$7':3,ok_$1:4,'':5}"),
        ('tab\there "q" \\ é \x85', '"tab\\there \\"q\\" \\\\ é \\x85"'),
        (b"hello", "{{aGVsbG8=}}"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("Europe/Paris")), None),
    ],
)
def test_scalars_as_ion_java_prints_them(value: Any, expected: str | None) -> None:
    """ion-java's text writer (_Private_IonTextAppender): Double.toString with 'e0' added, decimals with a
    'd' exponent, field names quoted only when they are not identifiers or are keywords; a zoned
    date-time in ISO_ZONED_DATE_TIME (Kestra's IonModule)."""
    if expected is None:
        assert dumps(value) == 'ZonedDateTime::"2024-01-02T03:04:05+01:00[Europe/Paris]"'
    else:
        assert dumps(value) == expected


def test_other_values_go_through_the_default_hook() -> None:
    class Thing:
        def __str__(self) -> str:
            return "thing"

    with pytest.raises(IonError):
        dumps(Thing())
    with pytest.raises(IonError):
        dumps(Decimal("NaN"))
    assert dumps({"t": Thing()}, default=json_default) == '{t:"thing"}'


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------


def test_kestras_timestamps_read_as_its_parser_reads_them() -> None:
    """Kestra's IonParser: an instant at midnight UTC is a LocalDate, another offset keeps it,
    ZonedDateTime strings may carry a zone name."""
    assert loads("2008-12-25T00:00:00.000Z") == date(2008, 12, 25)
    assert loads("2008-12-25T15:30:00-00:00") == datetime(2008, 12, 25, 15, 30, tzinfo=UTC)
    assert loads("2008-12-25T15:30+01:00").utcoffset() == timedelta(hours=1)
    assert loads("2008T") == date(2008, 1, 1)
    zoned = loads('ZonedDateTime::"2008-12-25T15:30:00.123+01:00[Europe/Paris]"')
    assert zoned == datetime(2008, 12, 25, 15, 30, 0, 123000, tzinfo=PARIS)
    assert dumps(zoned) == 'ZonedDateTime::"2008-12-25T15:30:00.123+01:00[Europe/Paris]"'
    assert loads('LocalDate::"2008-12-25"') == date(2008, 12, 25)
    assert loads('Instant::"2008-12-25T15:30:00Z"') == datetime(2008, 12, 25, 15, 30, tzinfo=UTC)
    assert loads('OffsetTime::"15:30:00+01:00"') == time(15, 30, tzinfo=PARIS)
    assert loads('Other::"2008-12-25"') == "2008-12-25"


@pytest.mark.parametrize("text", ['LocalDate::"soon"', "LocalDate::1", 'LocalDateTime::"2008-12-25T15:30Z"'])
def test_a_java_time_string_that_does_not_parse_fails(text: str) -> None:
    """IonParser.getEmbeddedObject parses the string with the class's ``parse``, which throws."""
    with pytest.raises(IonError):
        loads(text)


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
    ("text", "expected"),
    [
        ("$ion_1_0 {a: 1}", {"a": 1}),
        ("[1, 2.5, 2.5e0, 0x1F, -0b101, 1_000]", [1, Decimal("2.5"), 2.5, 31, -5, 1000]),
        ("[null, null.int, true, false, +inf, -inf]", [None, None, True, False, float("inf"), -float("inf")]),
        (
            "['quoted sym', bare_sym, \"s\\x41\\u00e9\", '''long''' '''s''']",
            ["quoted sym", "bare_sym", "sAé", "longs"],
        ),
        ('[{{aGVsbG8=}}, {{"clob"}}]', [b"hello", b"clob"]),
        ("ann::other::(+ 1 a-b)", ["+", 1, "a", "-", "b"]),
        (
            "[2007T, 2007-02-23, 2007-02-23T12:14Z]",
            [date(2007, 1, 1), date(2007, 2, 23), datetime(2007, 2, 23, 12, 14, tzinfo=UTC)],
        ),
        ("/* c */ {'x y': 1, \"q\": 2, // c\n r: 1d2}", {"x y": 1, "q": 2, "r": Decimal("1E+2")}),
        ("1 2", 1),
    ],
)
def test_the_first_value_reads_as_jackson_reads_it(text: str, expected: Any) -> None:
    """FromIonFunction and FileSerde read with Jackson's Ion mapper: plain maps and lists, decimals
    BigDecimal, only the first top-level value: FileSerde's ``convert`` (``MAPPER.readValue(row, ...)``)
    reads one value of a line and leaves the rest unread, and FromIonFunction takes the first value
    (``flux.take(1)``), so ``1 2`` reads as 1.

    Timestamps come out as Kestra's IonParser.getEmbeddedObject makes them: day and year precision and
    midnight UTC as a LocalDate, another UTC time as an Instant.
    """
    assert loads(text) == expected


INVALID = [
    '{key:"open', "{key:1", "[1 2]", "{1:2}", "2008-13-01T", "12abc", "null.nothing", "", "// none",
    '"\\q"', "[1,,2]", "{a 1}", "1.2.3", "{{!!}}", "+1",
]  # fmt: skip


@pytest.mark.parametrize("text", INVALID)
def test_invalid_text_is_refused(text: str) -> None:
    """FromIonFunctionTest.exception: text that is not Ion fails, as does text holding no value."""
    with pytest.raises(IonError):
        loads(text)


def test_a_round_trip() -> None:
    """What toIon writes, fromIon reads back."""
    value = {"a": [1, 2.5, "x'y\"z"], "b": {"c": None, "true": False}, "d": Decimal("0.001"), "$ion_1_0": 1}
    assert loads(dumps(value)) == value


def test_lines_split_as_java_reads_them() -> None:
    """BufferedReader.readLine: \\n, \\r\\n and \\r end a line; a last line without an end counts."""
    data = b"{a:1}\r\n{a:2}\n{a:3}\r{a:4}"
    assert list(iter_lines(io.BytesIO(data))) == [b"{a:1}", b"{a:2}", b"{a:3}", b"{a:4}"]
    assert list(iter_lines(io.BytesIO(b""))) == []


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "float", "decimal", "text", "bool", "none", "stamp", "date", "local", "bytes"]
    if depth < 3:
        kinds += ["list", "struct"]
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-(10**20), 10**20)
    if kind == "float":
        return rng.uniform(-1e12, 1e12) * rng.choice([1, 1e-9, 1e9])
    if kind == "decimal":
        return Decimal(rng.randint(-(10**12), 10**12)).scaleb(-rng.randint(0, 12))
    if kind == "text":
        return "".join(rng.choice("ab \"'\\\n\t\x01é€😀:,{}[]") for _ in range(rng.randint(0, 12)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "stamp":
        zone = rng.choice([UTC, timezone(timedelta(hours=-5)), ZoneInfo("Europe/Paris")])
        return datetime(2024, 1, 2, 3, 4, 5, rng.randint(0, 999) * 1000, tzinfo=zone)
    if kind == "date":
        return date(2000 + rng.randint(0, 50), rng.randint(1, 12), rng.randint(1, 28))
    if kind == "local":
        return datetime(2024, 5, 6, 7, 8, 9, rng.randint(0, 999999))
    if kind == "bytes":
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 9)))
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["a", "b c", "null", "x1", "é", "'q'", "$1", "true", "_k"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_the_fast_reading_of_written_values_matches_the_full_reader() -> None:
    rng = random.Random(20261207)
    for _ in range(3000):
        text = dumps(_random_value(rng))
        assert loads(text) == _Reader(text).value(), text
