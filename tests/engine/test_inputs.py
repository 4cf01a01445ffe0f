"""Flow inputs: coercion by type, Kestra's validation rules and messages, defaults and text forms."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest

from tiercel.engine.inputs import (
    InputError,
    coerce_input,
    input_json_value,
    input_to_text,
    input_value,
    resolve_inputs,
)
from tiercel.engine.model import InputSpec


def spec(input_id: str, kind: str, *, required: bool = True, defaults: Any = None, **props: Any) -> InputSpec:
    return InputSpec(id=input_id, type=kind, required=required, defaults=defaults, props=props)


def errors_of(call: Callable[[], Any]) -> list[str]:
    with pytest.raises(InputError) as caught:
        call()
    return caught.value.errors


def coerce_errors(input_spec: InputSpec, value: Any) -> list[str]:
    return errors_of(lambda: coerce_input(input_spec, value))


# ---------------------------------------------------------------------------------------------
# STRING
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("hello", "hello"),
        ("", ""),
        (12, "12"),
        (1.5, "1.5"),
        (True, "true"),
        (False, "false"),
        ({"a": 1, "b": [1, 2]}, '{"a":1,"b":[1,2]}'),
        (["x", "y"], '["x","y"]'),
        ({"é": "ü"}, '{"é":"ü"}'),
    ],
)
def test_string_coerces_text_and_typed_values(value: Any, expected: str) -> None:
    assert coerce_input(spec("s", "STRING"), value) == expected


def test_string_validator_must_match_the_whole_value() -> None:
    validated = spec("validatedString", "STRING", validator="A\\d+")
    assert coerce_input(validated, "A123") == "A123"
    assert coerce_errors(validated, "xA123") == [
        "Invalid value for input `validatedString`. Cause: it must match the pattern `A\\d+`"
    ]
    assert coerce_errors(validated, "A123x") == [
        "Invalid value for input `validatedString`. Cause: it must match the pattern `A\\d+`"
    ]


def test_string_with_an_invalid_validator_reports_it() -> None:
    (message,) = coerce_errors(spec("s", "STRING", validator="(unclosed"), "x")
    assert message.startswith(
        "Invalid value for input `s`. Cause: the validator pattern `(unclosed` "
        "is not a valid regular expression"
    )


def test_string_min_and_max_length() -> None:
    bounded = spec("name", "STRING", minLength=2, maxLength=4)
    assert coerce_input(bounded, "ab") == "ab"
    assert coerce_input(bounded, "abcd") == "abcd"
    assert coerce_errors(bounded, "a") == [
        "Invalid value for input `name`. Cause: it must be at least `2` characters long"
    ]
    assert coerce_errors(bounded, "abcde") == [
        "Invalid value for input `name`. Cause: it must be at most `4` characters long"
    ]


# ---------------------------------------------------------------------------------------------
# INT and FLOAT
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [("12", 12), (" 12 ", 12), ("-3", -3), ("+4", 4), (7, 7), (0, 0)]
)
def test_int_valid(value: Any, expected: int) -> None:
    result = coerce_input(spec("i", "INT"), value)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "shown"), [("1.5", "1.5"), ("abc", "abc"), ("", ""), (True, "true"), (1.5, "1.5")]
)
def test_int_invalid(value: Any, shown: str) -> None:
    assert coerce_errors(spec("i", "INT"), value) == [
        f"Invalid value for input `i`. Cause: Expected `INT` but received `{shown}`"
    ]


def test_int_min_and_max() -> None:
    validated = spec("validatedInt", "INT", min=10, max=20)
    assert coerce_input(validated, "10") == 10
    assert coerce_input(validated, "20") == 20
    assert coerce_errors(validated, "9") == [
        "Invalid value for input `validatedInt`. Cause: it must be more than `10`"
    ]
    assert coerce_errors(validated, 21) == [
        "Invalid value for input `validatedInt`. Cause: it must be less than `20`"
    ]


def test_a_bound_that_does_not_fit_the_type_is_reported() -> None:
    assert coerce_errors(spec("i", "INT", min="ten"), "3") == [
        "Invalid value for input `i`. Cause: the `min` setting `ten` is not valid for this input type"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42.42", 42.42), ("1", 1.0), ("-1e3", -1000.0), (".5", 0.5), (3, 3.0), (2.5, 2.5)],
)
def test_float_valid(value: Any, expected: float) -> None:
    result = coerce_input(spec("f", "FLOAT"), value)
    assert result == expected
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "shown"), [("abc", "abc"), ("1,5", "1,5"), ("nan", "nan"), (False, "false")]
)
def test_float_invalid(value: Any, shown: str) -> None:
    assert coerce_errors(spec("f", "FLOAT"), value) == [
        f"Invalid value for input `f`. Cause: Expected `FLOAT` but received `{shown}`"
    ]


def test_float_min_and_max() -> None:
    validated = spec("validatedFloat", "FLOAT", min=0.1, max=0.5)
    assert coerce_input(validated, "0.42") == 0.42
    assert coerce_errors(validated, "0.01") == [
        "Invalid value for input `validatedFloat`. Cause: it must be more than `0.1`"
    ]
    assert coerce_errors(validated, "1.01") == [
        "Invalid value for input `validatedFloat`. Cause: it must be less than `0.5`"
    ]


def test_float_bound_written_as_an_integer_prints_like_java() -> None:
    assert coerce_errors(spec("f", "FLOAT", max=1), "2") == [
        "Invalid value for input `f`. Cause: it must be less than `1.0`"
    ]


# ---------------------------------------------------------------------------------------------
# BOOLEAN
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["BOOLEAN", "BOOL"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("False", False),
        (" true ", True),
        (True, True),
        (False, False),
    ],
)
def test_boolean_valid(kind: str, value: Any, expected: bool) -> None:
    assert coerce_input(spec("b", kind), value) is expected


@pytest.mark.parametrize(("value", "shown"), [("yes", "yes"), ("1", "1"), ("", ""), (1, "1"), (0, "0")])
def test_boolean_invalid(value: Any, shown: str) -> None:
    assert coerce_errors(spec("b", "BOOLEAN"), value) == [
        f"Invalid value for input `b`. Cause: Expected `BOOLEAN` but received `{shown}`"
    ]


# ---------------------------------------------------------------------------------------------
# SELECT / ENUM
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["SELECT", "ENUM"])
def test_select_accepts_one_of_its_values(kind: str) -> None:
    select = spec("enum", kind, values=["ENUM_VALUE", "OTHER_ONE"])
    assert coerce_input(select, "OTHER_ONE") == "OTHER_ONE"
    assert coerce_errors(select, "INVALID") == [
        "Invalid value for input `enum`. Cause: it must match the values `[ENUM_VALUE, OTHER_ONE]`"
    ]


def test_select_compares_typed_values_as_text() -> None:
    select = spec("level", "SELECT", values=[1, 2, True])
    assert coerce_input(select, 2) == "2"
    assert coerce_input(select, "true") == "true"


def test_select_values_may_be_label_value_pairs() -> None:
    select = spec("env", "SELECT", values=[{"label": "Production", "value": "prod"}, "dev"])
    assert coerce_input(select, "prod") == "prod"
    assert coerce_errors(select, "Production") == [
        "Invalid value for input `env`. Cause: it must match the values `[prod, dev]`"
    ]


@pytest.mark.parametrize("flag", ["allowCustomValue", "allowInput"])
def test_select_allows_a_custom_value_when_asked(flag: str) -> None:
    select = spec("s", "SELECT", values=["a"], **{flag: True})
    assert coerce_input(select, "zzz") == "zzz"


def test_select_values_from_an_expression_are_rendered() -> None:
    select = spec("s", "SELECT", expression="{{ kv('choices') }}")
    assert coerce_input(select, "b", render=lambda _: ["a", "b"]) == "b"
    assert coerce_input(select, "b", render=lambda _: '["a", "b"]') == "b"
    assert coerce_errors_with_render(select, "c", lambda _: ["a", "b"]) == [
        "Invalid value for input `s`. Cause: it must match the values `[a, b]`"
    ]


def test_select_expression_errors() -> None:
    select = spec("s", "SELECT", expression="{{ nope }}")

    def failing(_: Any) -> Any:
        raise ValueError("Unable to find `nope`")

    assert coerce_errors_with_render(select, "a", failing) == [
        "Invalid value for input `s`. Cause: Cannot render 'expression'. Cause: Unable to find `nope`"
    ]
    assert coerce_errors_with_render(select, "a", lambda _: 3) == [
        "Invalid value for input `s`. Cause: Invalid expression result. Expected a list of strings"
    ]


def test_select_expression_without_a_renderer_accepts_the_value() -> None:
    assert coerce_input(spec("s", "SELECT", expression="{{ x }}"), "anything") == "anything"


def coerce_errors_with_render(input_spec: InputSpec, value: Any, render: Callable[[Any], Any]) -> list[str]:
    return errors_of(lambda: coerce_input(input_spec, value, render=render))


# ---------------------------------------------------------------------------------------------
# MULTISELECT
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["A", "B"], ["A", "B"]),
        (("A",), ["A"]),
        ('["A", "C"]', ["A", "C"]),
        ("A, C", ["A", "C"]),
        ("A,B,C", ["A", "B", "C"]),
        ("B", ["B"]),
        ("", []),
        ([], []),
    ],
)
def test_multiselect_forms(value: Any, expected: list[str]) -> None:
    assert coerce_input(spec("multi", "MULTISELECT", values=["A", "B", "C"]), value) == expected


def test_multiselect_reports_every_value_that_does_not_match() -> None:
    multi = spec("multi", "MULTISELECT", values=["A", "B", "C"])
    assert coerce_errors(multi, ["F", "A", "H"]) == [
        "Invalid value for input `multi`. Cause: value `F` doesn't match the values `[A, B, C]`",
        "Invalid value for input `multi`. Cause: value `H` doesn't match the values `[A, B, C]`",
    ]


def test_multiselect_accepts_the_deprecated_options_and_custom_values() -> None:
    assert coerce_input(spec("m", "MULTISELECT", options=["x", "y"]), "y") == ["y"]
    assert coerce_input(spec("m", "MULTISELECT", values=["x"], allowCustomValue=True), "x, z") == ["x", "z"]


def test_multiselect_with_an_item_type_coerces_items() -> None:
    multi = spec("m", "MULTISELECT", values=["1", "2", "3"], itemType="INT")
    assert coerce_input(multi, "1, 3") == [1, 3]


def test_multiselect_rejects_a_value_that_is_not_a_list() -> None:
    assert coerce_errors(spec("m", "MULTISELECT", values=["A"]), 3) == [
        "Invalid value for input `m`. Cause: Expected `MULTISELECT` but received `3`"
    ]
    (message,) = coerce_errors(spec("m", "MULTISELECT", values=["A"]), "[A")
    assert message.startswith(
        "Invalid value for input `m`. Cause: Expected `MULTISELECT` but received `[A`: "
    )


def test_multiselect_values_from_an_expression() -> None:
    multi = spec("m", "MULTISELECT", expression="{{ x }}")
    assert coerce_input(multi, "b", render=lambda _: ["a", "b"]) == ["b"]
    assert coerce_errors_with_render(multi, "c", lambda _: ["a", "b"]) == [
        "Invalid value for input `m`. Cause: value `c` doesn't match the values `[a, b]`"
    ]


# ---------------------------------------------------------------------------------------------
# ARRAY
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item_type", "value", "expected"),
    [
        ("INT", "[1, 2, 3]", [1, 2, 3]),
        ("INT", ["1", 2], [1, 2]),
        ("STRING", '["a", 1]', ["a", "1"]),
        ("FLOAT", "[1, 2.5]", [1.0, 2.5]),
        ("BOOLEAN", '[true, "false"]', [True, False]),
        ("DATE", '["2024-01-01"]', [date(2024, 1, 1)]),
        ("DATETIME", '["2024-01-01T10:00:00Z"]', [datetime(2024, 1, 1, 10, tzinfo=UTC)]),
        ("TIME", '["10:00"]', [time(10)]),
        ("DURATION", '["PT5M"]', [timedelta(minutes=5)]),
        ("JSON", '[{"a": 1}]', [{"a": 1}]),
        ("URI", '["https://kestra.io"]', ["https://kestra.io"]),
        ("EMAIL", '["a@b.io"]', ["a@b.io"]),
        ("int", "[]", []),
    ],
)
def test_array_items_are_coerced_with_the_item_type(item_type: str, value: Any, expected: list[Any]) -> None:
    assert coerce_input(spec("array", "ARRAY", itemType=item_type), value) == expected


def test_array_item_errors_name_each_bad_element_and_its_index() -> None:
    assert coerce_errors(spec("array", "ARRAY", itemType="INT"), '["s1", 2, "s2"]') == [
        "Invalid value for input `array`. Cause: Unable to parse array element as `INT` on `s1` at index 0",
        "Invalid value for input `array`. Cause: Unable to parse array element as `INT` on `s2` at index 2",
    ]
    assert coerce_errors(spec("array", "ARRAY", itemType="INT"), [1, None]) == [
        "Invalid value for input `array`. Cause: Unable to parse array element as `INT` on `null` at index 1"
    ]


def test_array_must_be_json_text_or_a_list() -> None:
    array = spec("array", "ARRAY", itemType="STRING")
    (message,) = coerce_errors(array, "a, b")
    assert message.startswith(
        "Invalid value for input `array`. Cause: Expected `ARRAY` but received `a, b`: "
    )
    assert "line 1 column 1" in message
    assert coerce_errors(array, '{"a": 1}') == [
        'Invalid value for input `array`. Cause: Expected `ARRAY` but received `{"a": 1}`'
    ]
    assert coerce_errors(array, {"a": 1}) == [
        'Invalid value for input `array`. Cause: Expected `ARRAY` but received `{"a":1}`'
    ]


def test_array_without_item_type_keeps_items_and_rejects_nested_list_types() -> None:
    assert coerce_input(spec("a", "ARRAY"), '[1, "x", null]') == [1, "x", None]
    assert coerce_errors(spec("a", "ARRAY", itemType="ARRAY"), "[]") == [
        "Invalid value for input `a`. Cause: the item type `ARRAY` is not supported, "
        "use a type other than ARRAY or MULTISELECT"
    ]


# ---------------------------------------------------------------------------------------------
# JSON and YAML
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"a": "b"}', {"a": "b"}),
        ("{}", {}),
        ("[1, 2]", [1, 2]),
        ("3", 3),
        ('"text"', "text"),
        ({"people": [{"first": "Ada"}]}, {"people": [{"first": "Ada"}]}),
        ([1], [1]),
        (5, 5),
        (True, True),
    ],
)
def test_json_valid(value: Any, expected: Any) -> None:
    assert coerce_input(spec("json", "JSON"), value) == expected


def test_json_error_says_where() -> None:
    assert coerce_errors(spec("json", "JSON"), '{"a": }') == [
        'Invalid value for input `json`. Cause: Expected `JSON` but received `{"a": }`: '
        "Expecting value: line 1 column 7 (char 6)"
    ]


def test_yaml_valid() -> None:
    text = "some: property\nalist:\n- of\n- values"
    assert coerce_input(spec("yaml", "YAML"), text) == {"some": "property", "alist": ["of", "values"]}
    assert coerce_input(spec("yaml", "YAML"), {"a": [1]}) == {"a": [1]}
    assert coerce_input(spec("yaml", "YAML"), "[1, 2]") == [1, 2]


def test_yaml_error_says_where() -> None:
    (message,) = coerce_errors(spec("yaml", "YAML"), "a: [1, 2\nb: 3")
    assert message.startswith(
        "Invalid value for input `yaml`. Cause: Expected `YAML` but received `a: [1, 2\nb: 3`: "
    )
    assert "at line 2, column 2" in message


def test_yaml_refuses_python_tags_and_alias_bombs() -> None:
    (message,) = coerce_errors(spec("yaml", "YAML"), "!!python/object/apply:os.system ['true']")
    assert "Expected `YAML`" in message
    bomb = "a: &a [x, x]\n" + "".join(f"b{i}: &b{i} [*a, *a]\n" for i in range(60))
    (message,) = coerce_errors(spec("yaml", "YAML"), bomb)
    assert "more than 100 aliases" in message


def test_long_received_values_are_shortened_in_messages() -> None:
    (message,) = coerce_errors(spec("json", "JSON"), "{" + "x" * 500)
    assert "…`" in message
    assert len(message) < 400


# ---------------------------------------------------------------------------------------------
# DATE, DATETIME, TIME, DURATION
# ---------------------------------------------------------------------------------------------


def test_date_valid_and_invalid() -> None:
    assert coerce_input(spec("d", "DATE"), "2019-10-06") == date(2019, 10, 6)
    assert coerce_input(spec("d", "DATE"), date(2019, 10, 6)) == date(2019, 10, 6)
    for bad in ("06/10/2019", "20191006", "2019-10-06T10:00:00Z"):
        assert coerce_errors(spec("d", "DATE"), bad) == [
            f"Invalid value for input `d`. Cause: Expected `DATE` but received `{bad}`"
        ]
    (message,) = coerce_errors(spec("d", "DATE"), "2024-02-30")
    assert message.startswith(
        "Invalid value for input `d`. Cause: Expected `DATE` but received `2024-02-30`: "
    )


def test_date_after_and_before() -> None:
    validated = spec("validatedDate", "DATE", after="2023-01-01", before=date(2023, 12, 31))
    assert coerce_input(validated, "2023-01-02") == date(2023, 1, 2)
    assert coerce_errors(validated, "2022-01-01") == [
        "Invalid value for input `validatedDate`. Cause: it must be after `2023-01-01`"
    ]
    assert coerce_errors(validated, "2024-01-01") == [
        "Invalid value for input `validatedDate`. Cause: it must be before `2023-12-31`"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-10-06T18:27:49Z", datetime(2019, 10, 6, 18, 27, 49, tzinfo=UTC)),
        ("2019-10-06T18:27:49.123Z", datetime(2019, 10, 6, 18, 27, 49, 123000, tzinfo=UTC)),
        ("2019-10-06T18:27:49", datetime(2019, 10, 6, 18, 27, 49, tzinfo=UTC)),
        ("2019-10-06 18:27", datetime(2019, 10, 6, 18, 27, tzinfo=UTC)),
        ("2019-10-06T20:27:49+02:00", datetime(2019, 10, 6, 18, 27, 49, tzinfo=UTC)),
        (datetime(2019, 10, 6, 18, 27, 49), datetime(2019, 10, 6, 18, 27, 49, tzinfo=UTC)),
        (
            datetime(2019, 10, 6, 20, 27, 49, tzinfo=timezone(timedelta(hours=2))),
            datetime(2019, 10, 6, 18, 27, 49, tzinfo=UTC),
        ),
    ],
)
def test_datetime_valid_values_become_aware_utc(value: Any, expected: datetime) -> None:
    result = coerce_input(spec("instant", "DATETIME"), value)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize("value", ["2019-10-06", "yesterday", "2019-13-06T10:00:00Z", date(2019, 10, 6)])
def test_datetime_invalid(value: Any) -> None:
    (message,) = coerce_errors(spec("instant", "DATETIME"), value)
    assert message.startswith("Invalid value for input `instant`. Cause: Expected `DATETIME` but received `")


def test_datetime_after_and_before_print_like_java_instants() -> None:
    validated = spec(
        "validatedDateTime", "DATETIME", after="2023-01-01T00:00:00Z", before="2023-12-31T23:59:59Z"
    )
    assert coerce_input(validated, "2023-01-01T00:00:10Z") == datetime(2023, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert coerce_errors(validated, "2022-01-01T00:00:00Z") == [
        "Invalid value for input `validatedDateTime`. Cause: it must be after `2023-01-01T00:00:00Z`"
    ]
    assert coerce_errors(validated, "2024-01-01T00:00:00Z") == [
        "Invalid value for input `validatedDateTime`. Cause: it must be before `2023-12-31T23:59:59Z`"
    ]
    fractional = spec("t", "DATETIME", after=datetime(2023, 1, 1, 0, 0, 0, 500000, tzinfo=UTC))
    assert coerce_errors(fractional, "2023-01-01T00:00:00Z") == [
        "Invalid value for input `t`. Cause: it must be after `2023-01-01T00:00:00.500Z`"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("18:27:49", time(18, 27, 49)),
        ("18:27", time(18, 27)),
        ("18:27:49.5", time(18, 27, 49, 500000)),
        ("18:27:49.123456789", time(18, 27, 49, 123456)),
        (time(8, 0), time(8, 0)),
    ],
)
def test_time_valid(value: Any, expected: time) -> None:
    assert coerce_input(spec("time", "TIME"), value) == expected


@pytest.mark.parametrize(
    ("value", "shown"), [("25:00", "25:00"), ("6pm", "6pm"), ("8:00", "8:00"), (480, "480")]
)
def test_time_invalid(value: Any, shown: str) -> None:
    (message,) = coerce_errors(spec("time", "TIME"), value)
    assert message.startswith(
        f"Invalid value for input `time`. Cause: Expected `TIME` but received `{shown}`"
    )


def test_time_after_and_before_print_like_java_local_times() -> None:
    validated = spec("validatedTime", "TIME", after="01:00", before="11:59:59")
    assert coerce_input(validated, "11:27:49") == time(11, 27, 49)
    assert coerce_errors(validated, "00:00:01") == [
        "Invalid value for input `validatedTime`. Cause: it must be after `01:00`"
    ]
    assert coerce_errors(validated, "14:00:00") == [
        "Invalid value for input `validatedTime`. Cause: it must be before `11:59:59`"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PT5M6S", timedelta(minutes=5, seconds=6)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P1D", timedelta(days=1)),
        (timedelta(hours=1), timedelta(hours=1)),
    ],
)
def test_duration_valid(value: Any, expected: timedelta) -> None:
    assert coerce_input(spec("duration", "DURATION"), value) == expected


@pytest.mark.parametrize(("value", "shown"), [("5 minutes", "5 minutes"), ("PT", "PT"), (30, "30")])
def test_duration_invalid(value: Any, shown: str) -> None:
    assert coerce_errors(spec("duration", "DURATION"), value) == [
        f"Invalid value for input `duration`. Cause: Expected `DURATION` but received `{shown}`"
    ]


def test_duration_min_and_max() -> None:
    validated = spec("validatedDuration", "DURATION", min="PT10S", max=timedelta(seconds=20))
    assert coerce_input(validated, "PT15S") == timedelta(seconds=15)
    assert coerce_errors(validated, "PT1S") == [
        "Invalid value for input `validatedDuration`. Cause: It must be more than `PT10S`"
    ]
    assert coerce_errors(validated, "PT30S") == [
        "Invalid value for input `validatedDuration`. Cause: It must be less than `PT20S`"
    ]


# ---------------------------------------------------------------------------------------------
# URI, EMAIL, FILE, SECRET
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["https://www.google.com", "https://x", "s3://bucket/key", "file:///tmp/p", "kestra:///ns/file.txt"],
)
def test_uri_valid(value: str) -> None:
    assert coerce_input(spec("uri", "URI"), value) == value


@pytest.mark.parametrize("value", ["http:/bla", "www.google.com", "https://", "https://a b", "/tmp/file", 3])
def test_uri_invalid(value: Any) -> None:
    assert coerce_errors(spec("uri", "URI"), value) == [
        "Invalid value for input `uri`. Cause: Invalid URI format."
    ]


@pytest.mark.parametrize("value", ["ada@example.com", "first.last+tag@mail.example.co.uk", ""])
def test_email_valid(value: str) -> None:
    assert coerce_input(spec("email", "EMAIL"), value) == value


@pytest.mark.parametrize(
    "value", ["ada", "ada@", "@example.com", "ada@example", "ada@@example.com", "a b@x.io"]
)
def test_email_invalid(value: str) -> None:
    assert coerce_errors(spec("email", "EMAIL"), value) == [
        "Invalid value for input `email`. Cause: The input must be a valid email"
    ]


@pytest.mark.parametrize("kind", ["FILE", "SECRET"])
def test_file_and_secret_are_kept_as_text(kind: str) -> None:
    assert coerce_input(spec("x", kind), "kestra:///a/b.txt") == "kestra:///a/b.txt"
    assert coerce_input(spec("x", kind), " spaced ") == " spaced "
    assert coerce_input(spec("x", kind), 42) == "42"


def test_lower_case_type_names_are_accepted_and_unknown_types_reported() -> None:
    assert coerce_input(spec("i", "int"), "3") == 3
    assert coerce_errors(spec("x", "BLOB"), "a") == [
        "Invalid value for input `x`. Cause: unsupported input type `BLOB`"
    ]


# ---------------------------------------------------------------------------------------------
# resolve_inputs: required, defaults, optional, all errors at once
# ---------------------------------------------------------------------------------------------


def test_missing_required_input() -> None:
    assert errors_of(lambda: resolve_inputs([spec("string", "STRING")], {})) == [
        "Missing required input:string"
    ]
    assert errors_of(lambda: resolve_inputs([spec("string", "STRING")], {"string": None})) == [
        "Missing required input:string"
    ]
    assert coerce_errors(spec("string", "STRING"), None) == ["Missing required input:string"]


def test_optional_input_without_value_is_null() -> None:
    result = resolve_inputs([spec("bool", "BOOLEAN", required=False)], {})
    assert result == {"bool": None}
    assert coerce_input(spec("bool", "BOOLEAN", required=False), None) is None


def test_defaults_apply_when_absent_or_null_and_are_coerced() -> None:
    specs = [
        spec("def", "STRING", defaults="amazing"),
        spec("n", "INT", defaults="5"),
        spec("when", "DATETIME", defaults="2013-08-09T14:19:00Z"),
        spec("day", "DATE", defaults=date(2024, 1, 1)),
        spec("multi", "MULTISELECT", defaults=["A"], values=["A", "B"]),
    ]
    assert resolve_inputs(specs, {"n": None}) == {
        "def": "amazing",
        "n": 5,
        "when": datetime(2013, 8, 9, 14, 19, tzinfo=UTC),
        "day": date(2024, 1, 1),
        "multi": ["A"],
    }


def test_a_given_value_wins_over_the_default() -> None:
    assert resolve_inputs([spec("def", "STRING", defaults="amazing")], {"def": "mine"}) == {"def": "mine"}


def test_an_optional_input_with_a_default_uses_it() -> None:
    assert resolve_inputs([spec("n", "INT", required=False, defaults=3)], {}) == {"n": 3}


def test_defaults_are_validated() -> None:
    assert errors_of(lambda: resolve_inputs([spec("n", "INT", defaults=50, max=10)], {})) == [
        "Invalid value for input `n`. Cause: it must be less than `10`"
    ]


def test_defaults_holding_expressions_are_rendered() -> None:
    seen: list[Any] = []

    def render(template: Any) -> Any:
        seen.append(template)
        return "2024-05-01" if "now" in template else 7

    specs = [
        spec("day", "DATE", defaults="{{ now() | date('yyyy-MM-dd') }}"),
        spec("count", "INT", defaults="{{ 3 + 4 }}"),
        spec("plain", "STRING", defaults="no expression"),
    ]
    assert resolve_inputs(specs, {}, render=render) == {
        "day": date(2024, 5, 1),
        "count": 7,
        "plain": "no expression",
    }
    assert seen == ["{{ now() | date('yyyy-MM-dd') }}", "{{ 3 + 4 }}"]


def test_defaults_holding_expressions_are_kept_as_is_without_a_renderer() -> None:
    assert resolve_inputs([spec("s", "STRING", defaults="{{ flow.id }}")], {}) == {"s": "{{ flow.id }}"}


def test_a_given_value_holding_an_expression_is_never_rendered() -> None:
    result = resolve_inputs([spec("s", "STRING")], {"s": "{{ secret('x') }}"}, render=lambda _: "leak")
    assert result == {"s": "{{ secret('x') }}"}


def test_a_default_that_fails_to_render_is_reported() -> None:
    def render(_: Any) -> Any:
        raise ValueError("Unable to find `nope` used in the expression `{{ nope }}`")

    assert errors_of(
        lambda: resolve_inputs([spec("s", "STRING", defaults="{{ nope }}")], {}, render=render)
    ) == [
        "Invalid value for input `s`. Cause: unable to render the default `{{ nope }}`: "
        "Unable to find `nope` used in the expression `{{ nope }}`"
    ]


def test_undeclared_inputs_are_ignored() -> None:
    assert resolve_inputs([spec("a", "INT")], {"a": "1", "unknown": "x"}) == {"a": 1}


def test_all_errors_are_reported_at_once_in_declaration_order() -> None:
    specs = [
        spec("first", "INT"),
        spec("ok", "STRING"),
        spec("second", "BOOLEAN"),
        spec("third", "STRING"),
        spec("multi", "MULTISELECT", values=["A"]),
    ]
    with pytest.raises(InputError) as caught:
        resolve_inputs(specs, {"first": "x", "ok": "fine", "second": "maybe", "multi": "B, C"})
    expected = [
        "Invalid value for input `first`. Cause: Expected `INT` but received `x`",
        "Invalid value for input `second`. Cause: Expected `BOOLEAN` but received `maybe`",
        "Missing required input:third",
        "Invalid value for input `multi`. Cause: value `B` doesn't match the values `[A]`",
        "Invalid value for input `multi`. Cause: value `C` doesn't match the values `[A]`",
    ]
    assert caught.value.errors == expected
    assert str(caught.value) == "\n".join(expected)
    assert caught.value.fields == {
        "first": [expected[0]],
        "second": [expected[1]],
        "third": [expected[2]],
        "multi": expected[3:],
    }


def test_typed_json_body_values_are_accepted() -> None:
    specs = [
        spec("int", "INT"),
        spec("float", "FLOAT"),
        spec("bool", "BOOLEAN"),
        spec("json", "JSON"),
        spec("array", "ARRAY", itemType="INT"),
    ]
    given = {"int": 42, "float": 42.42, "bool": False, "json": {"a": "b"}, "array": [1, 2, 3]}
    assert resolve_inputs(specs, given) == given


def test_dotted_ids_are_nested_and_may_be_given_flat_or_nested() -> None:
    specs = [
        spec("nested.string", "STRING"),
        spec("nested.more.int", "INT"),
        spec("nested.bool", "BOOLEAN", required=False),
    ]
    expected = {"nested": {"string": "a string", "more": {"int": 123}, "bool": None}}
    assert resolve_inputs(specs, {"nested.string": "a string", "nested.more.int": "123"}) == expected
    assert resolve_inputs(specs, {"nested": {"string": "a string", "more": {"int": 123}}}) == expected


def test_input_value_finds_flat_and_nested_values() -> None:
    inputs = {"a": 1, "n": {"x": {"y": 2}}, "flat.key": 3}
    assert input_value(inputs, "a") == 1
    assert input_value(inputs, "n.x.y") == 2
    assert input_value(inputs, "flat.key") == 3
    assert input_value(inputs, "n.z") is None
    assert input_value(inputs, "a.b") is None
    assert input_value(inputs, "missing") is None


# ---------------------------------------------------------------------------------------------
# Text and JSON forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("input_spec", "value", "text"),
    [
        (spec("s", "STRING"), "abc", "abc"),
        (spec("s", "STRING"), None, ""),
        (spec("i", "INT"), 42, "42"),
        (spec("f", "FLOAT"), 0.5, "0.5"),
        (spec("b", "BOOLEAN"), True, "true"),
        (spec("d", "DATE"), date(2024, 1, 1), "2024-01-01"),
        (
            spec("dt", "DATETIME"),
            datetime(2024, 1, 1, 10, 0, 0, 250000, tzinfo=UTC),
            "2024-01-01T10:00:00.250Z",
        ),
        (spec("t", "TIME"), time(10, 0), "10:00:00"),
        (spec("du", "DURATION"), timedelta(minutes=5, seconds=6), "PT5M6S"),
        (spec("j", "JSON"), {"a": [1, 2]}, '{"a":[1,2]}'),
        (spec("y", "YAML"), {"a": date(2024, 1, 1)}, '{"a":"2024-01-01"}'),
        (spec("a", "ARRAY", itemType="INT"), [1, 2], "[1,2]"),
        (spec("m", "MULTISELECT"), ["A", "B"], "A, B"),
        (spec("m", "MULTISELECT"), ["A,1", "B"], '["A,1","B"]'),
        (spec("m", "MULTISELECT"), [], ""),
    ],
)
def test_input_to_text(input_spec: InputSpec, value: Any, text: str) -> None:
    assert input_to_text(input_spec, value) == text


@pytest.mark.parametrize(
    ("input_spec", "value"),
    [
        (spec("i", "INT"), 42),
        (spec("f", "FLOAT"), 0.1),
        (spec("b", "BOOLEAN"), False),
        (spec("d", "DATE"), date(2024, 1, 1)),
        (spec("dt", "DATETIME"), datetime(2024, 1, 1, 10, 0, 0, 250000, tzinfo=UTC)),
        (spec("t", "TIME"), time(10, 0, 30)),
        (spec("du", "DURATION"), timedelta(hours=1, milliseconds=500)),
        (spec("j", "JSON"), {"a": [1, {"b": None}]}),
        (spec("a", "ARRAY", itemType="STRING"), ["x", "y"]),
        (spec("m", "MULTISELECT", values=["A,1", "B"]), ["A,1", "B"]),
        (spec("m", "MULTISELECT", values=["A", "B"]), ["A", "B"]),
        (spec("u", "URI"), "s3://b/k"),
    ],
)
def test_input_to_text_round_trips(input_spec: InputSpec, value: Any) -> None:
    assert coerce_input(input_spec, input_to_text(input_spec, value)) == value


def test_input_json_value_prints_like_kestra() -> None:
    """A DATETIME input is a java.time.Instant in Kestra (core/.../models/flows/input/DateTimeInput.java):
    shown as Instant.toString prints it, `...49Z` and `...49.120Z`, never `...49.000Z`."""
    typed = {
        "date": date(2024, 1, 1),
        "instant": datetime(2024, 1, 1, 10, 0, tzinfo=UTC),
        "naive": datetime(2024, 1, 1, 10, 0),
        "millis": datetime(2024, 1, 1, 10, 0, 49, 120_000, tzinfo=UTC),
        "micros": datetime(2024, 1, 1, 10, 0, 49, 120_500, tzinfo=UTC),
        "time": time(10, 0),
        "duration": timedelta(minutes=5),
        "nested": {"list": [date(2024, 1, 2), ("t", 1)]},
        "plain": [1, "a", None, True, 1.5],
    }
    assert input_json_value(typed) == {
        "date": "2024-01-01",
        "instant": "2024-01-01T10:00:00Z",  # Java's Instant.toString: no fraction when it is zero
        "naive": "2024-01-01T10:00:00Z",
        "millis": "2024-01-01T10:00:49.120Z",
        "micros": "2024-01-01T10:00:49.120500Z",
        "time": "10:00:00",
        "duration": "PT5M",
        "nested": {"list": ["2024-01-02", ["t", 1]]},
        "plain": [1, "a", None, True, 1.5],
    }


def test_resolved_inputs_serialise_to_json() -> None:
    import json

    specs = [spec("when", "DATETIME"), spec("wait", "DURATION"), spec("list", "ARRAY", itemType="DATE")]
    resolved = resolve_inputs(
        specs, {"when": "2024-01-01T10:00:00+02:00", "wait": "PT1H", "list": '["2024-01-01"]'}
    )
    assert json.loads(json.dumps(input_json_value(resolved))) == {
        "when": "2024-01-01T08:00:00Z",
        "wait": "PT1H",
        "list": ["2024-01-01"],
    }


def test_input_error_carries_the_messages() -> None:
    error = InputError(["one", "two"], {"x": ["one", "two"]})
    assert error.errors == ["one", "two"]
    assert str(error) == "one\ntwo"
    assert error.fields == {"x": ["one", "two"]}
    assert InputError(["alone"]).fields == {}
