"""Kestra's Pebble extension, filter by filter and function by function, as its own unit tests pin it.

Each case comes from a test class of kestra-io/kestra (core/src/test/java/io/kestra/core/runners/pebble/)
or, where Kestra has no test, from the filter's or function's source.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tiercel.engine.expressions import ExpressionError, Renderer
from tiercel.engine.expressions.yamltext import to_yaml

# The variables Kestra's filter tests share (a Java float 1.123F is 1.1230000257492065 as a double).
SECOND: dict[str, Any] = {
    "string": "string",
    "int": 1,
    "float": 1.123,
    "list": ["string", 1, 1.123],
    "bool": True,
    "date": datetime(2013, 9, 8, 16, 19, tzinfo=timezone(timedelta(hours=2))),
    "map": {"string": "string", "int": 1, "float": 1.123},
}
VARS: dict[str, Any] = {"vars": {"second": SECOND}, "list": [1, 2, 3, 4, 5, 6, 7, 8, 9]}


def render(template: str, context: dict[str, Any] | None = None) -> str:
    return Renderer().render(template, VARS if context is None else context)


# ---------------------------------------------------------------------------------------------------------
# toIon and fromIon
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ vars.second.string | toIon }}", '"string"'),
        ("{{ vars.second.int | toIon }}", "1"),
        ("{{ vars.second.float | toIon }}", "1.123e0"),
        ("{{ vars.second.list | toIon }}", '["string",1,1.123e0]'),
        ("{{ vars.second.bool | toIon }}", "true"),
        ("{{ vars.second.map | toIon }}", '{string:"string",int:1,float:1.123e0}'),
        ('{{ {"empty_object":{}} | toIon }}', "{empty_object:{}}"),
        ("{{ null | toIon }}", "null"),
        ("{{ vars.second.date | toIon }}", 'ZonedDateTime::"2013-09-08T16:19:00+02:00"'),
    ],
)
def test_to_ion_filter(template: str, expected: str) -> None:
    """ToIonFilterTest.toIonFilter: compact Ion, floats with an exponent, dates as annotated text."""
    assert render(template) == expected


@pytest.mark.parametrize("template", ["{{ | toIon }}", "{{ {not: json} | toIon }}"])
def test_to_ion_filter_rejects_bad_templates(template: str) -> None:
    """ToIonFilterTest.exception."""
    with pytest.raises(ExpressionError):
        render(template)


def test_from_ion_function() -> None:
    """FromIonFunctionTest.ionDecodeFunction: fields of an Ion struct; fromIon(null) prints nothing.

    The timestamp is read as Kestra's IonParser reads it (core/.../serializers/ion/IonParser.java,
    getEmbeddedObject: a UTC timestamp not at midnight is an Instant), so it prints as Instant.toString.
    """
    text = '{date:2024-04-21T23:00:00.000Z, title:"Main_Page",views:109787}'
    assert render("{{ fromIon('" + text + "').title }}") == "Main_Page"
    assert render("{{ fromIon('" + text + "').views + 1 }}") == "109788"
    assert render("{{ fromIon('" + text + "').date }}") == "2024-04-21T23:00:00Z"
    assert render("{{ fromIon(null) }}") == ""
    assert render("{{ fromIon(ion='[1, 2]') | length }}") == "2"


@pytest.mark.parametrize("template", ["{{ fromIon() }}", "{{ fromIon('{not: ion') }}", "{{ fromIon(1) }}"])
def test_from_ion_function_errors(template: str) -> None:
    """FromIonFunctionTest.exception (and FromIonFunction's type check)."""
    with pytest.raises(ExpressionError):
        render(template)


# ---------------------------------------------------------------------------------------------------------
# yaml
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ vars.second.string | yaml }}", "string\n"),
        ("{{ vars.second.int | yaml }}", "1\n"),
        ("{{ vars.second.float | yaml }}", "1.123\n"),
        ("{{ vars.second.list | yaml }}", " - string\n - 1\n - 1.123\n"),
        ("{{ vars.second.bool | yaml }}", "true\n"),
        ("{{ vars.second.date | yaml }}", "2013-09-08T16:19:00+02:00\n"),
        ("{{ vars.second.map | yaml }}", "string: string\nint: 1\nfloat: 1.123\n"),
        ("{{ null | yaml }}", "null"),
    ],
)
def test_yaml_filter(template: str, expected: str) -> None:
    """YamlFilterTest.map: Jackson's YAML with INDENT_ARRAYS (a list's dashes one space in)."""
    assert render(template) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"list": [1, 2], "map": {"k": "v"}}, "list:\n - 1\n - 2\nmap:\n  k: v\n"),
        ([{"a": 1, "b": 2}], " -\n  a: 1\n  b: 2\n"),
        ([[1, 2], [], {}], " -\n   - 1\n   - 2\n - []\n - {}\n"),
        ({"a": {"b": [{"c": 1}]}}, "a:\n  b:\n   -\n    c: 1\n"),
        ({"text": "line 1\nline 2"}, "text: |-\n  line 1\n  line 2\n"),
        ({"text": "line 1\n"}, "text: |\n  line 1\n"),
        ({"text": " indented\nx"}, "text: |2-\n   indented\n  x\n"),
        ({"text": "trailing \nx"}, 'text: "trailing \\nx"\n'),
        (["", "true", "No", "~", "a: b", "a:b", "#x", "x #y", "[x]", "a,b", "123", "- x", "it's"], None),
        ({"1a": 1, "true": 2, "": 3, "a b": 4, "-k": 5}, '"1a": 1\n"true": 2\n"": 3\na b: 4\n"-k": 5\n'),
        ({"n": None, "big": 1e20, "dec": Decimal("1.50")}, '"n": null\nbig: 1.0E20\ndec: 1.50\n'),
    ],
)
def test_yaml_layout(value: Any, expected: str | None) -> None:
    """YamlFilter's Jackson settings (INDENT_ARRAYS, MINIMIZE_QUOTES, literal blocks for multi-line text,
    numbers in strings left unquoted): maps inside lists start on the line after the dash."""
    if expected is None:
        expected = (
            ' - ""\n - "true"\n - "No"\n - "~"\n - "a: b"\n - a:b\n - "#x"\n - "x #y"\n - "[x]"\n'
            " - \"a,b\"\n - 123\n - '- x'\n - it's\n"
        )
    assert to_yaml(value) == expected


# ---------------------------------------------------------------------------------------------------------
# The other filters
# ---------------------------------------------------------------------------------------------------------

FILTER_CASES: list[tuple[str, str, str]] = [
    ("ChunkFilterTest.out", "{{ list | chunk(2) }}", "[[1,2],[3,4],[5,6],[7,8],[9]]"),
    ("EndsWithFilterTest.out", '{{ "Hello World" | endsWith("World") }}', "true"),
    (
        "EndsWithFilter: the argument is named 'value'",
        '{{ "Hello World" | endsWith(value="World") }}',
        "true",
    ),
    ("StartsWithFilterTest.out", '{{ "Hello World" | startsWith("Hello") }}', "true"),
    ("StartsWithFilter: argument 'value'", '{{ "Hello World" | startsWith(value="World") }}', "false"),
    ("FlattenFilterTest.flatten", "{{ [1, [2, 3], [[4]]] | flatten }}", "[1,2,3,[4]]"),
    ("IndentFilterTest.indentEmpty", "{{ '' | indent(2) }}", ""),
    ("IndentFilterTest.indentNull", "{{ null | indent(2) }}", ""),
    ("IndentFilterTest.indentEmptyLines", '{{ "\n\n" | indent(2) }}', "\n  \n  "),
    ("IndentFilterTest.indentString", "{{ 'string' | indent(2) }}", "string"),
    ("IndentFilterTest.indentInteger", "{{ 1 | indent(2) }}", "1"),
    (
        "IndentFilterTest.indentStringWithCRLF",
        '{{ "first line\r\nsecond line" | indent(2) }}',
        "first line\r\n  second line",
    ),
    (
        "IndentFilterTest.indentStringWithCR",
        '{{ "first line\rsecond line" | indent(2) }}',
        "first line\r  second line",
    ),
    (
        "IndentFilterTest.indentWithTab",
        '{{ "first line\nsecond line" | indent(2, "\t") }}',
        "first line\n\t\tsecond line",
    ),
    ("NindentFilterTest.nindentEmptyLines", '{{ "\n\n" | nindent(2) }}', "\n  \n  \n  "),
    ("NindentFilterTest.nindentString", "{{ 'string' | nindent(2) }}", "\n  string"),
    ("NindentFilterTest.nindentInteger", "{{ 1 | nindent(2) }}", "\n  1"),
    ("NindentFilterTest.nindentStringWithCRLF", '{{ "a\r\nb" | nindent(2) }}', "\r\n  a\r\n  b"),
    ("NindentFilterTest.nindentWithTab", '{{ "a\nb" | nindent(2, "\t") }}', "\n\t\ta\n\t\tb"),
    ("KeysFilterTest.map (list)", "{{ vars.second.list | keys }}", "[0,1,2]"),
    ("NumberFilterTest (Float)", '{{ "12.3" | number | className }}', "java.lang.Float"),
    ("NumberFilterTest (Integer)", '{{ "2147483647" | number | className }}', "java.lang.Integer"),
    ("NumberFilterTest (Long)", '{{ "9223372036854775807" | number | className }}', "java.lang.Long"),
    (
        "NumberFilterTest (BigDecimal)",
        '{{ "9223372036854775807" | number("BIGDECIMAL") | className }}',
        "java.math.BigDecimal",
    ),
    (
        "NumberFilterTest (BigInteger)",
        '{{ "9223372036854775807" | number("BIGINTEGER") | className }}',
        "java.math.BigInteger",
    ),
    (
        "NumberFilterTest (Double)",
        '{{ "9223372036854775807" | number("DOUBLE") | className }}',
        "java.lang.Double",
    ),
    (
        "NumberFilter: NumberUtils picks BigInteger past Long",
        '{{ "9223372036854775808" | number | className }}',
        "java.math.BigInteger",
    ),
    (
        "NumberFilter: NumberUtils picks Double when a float prints other digits",
        '{{ "1.123456789" | number | className }}',
        "java.lang.Double",
    ),
    (
        "NumberFilter: NumberUtils picks BigDecimal past Double",
        '{{ "1e400" | number | className }}',
        "java.math.BigDecimal",
    ),
    ("NumberFilter: the number still computes", '{{ "12.5" | number * 2 }}', "25.0"),
    (
        "ReplaceFilterTest.string",
        "{{ 'john doe is john doe' | replace({'john': 'jane'}) }}",
        "jane doe is jane doe",
    ),
    (
        "ReplaceFilterTest.regexp",
        "{{ 'aa1bb2cc3dd4ee5' | replace({'(\\\\d)': '-$1-'}, regexp=true) }}",
        "aa-1-bb-2-cc-3-dd-4-ee-5-",
    ),
    ("SlugifyFilterTest.out", '{{ "Test\t\t\ntest*" | slugify }}', "test-test"),
    ("SubstringFilterTest.substringBefore", "{{ 'a.b.c' | substringBefore('.') }}", "a"),
    ("SubstringFilterTest.substringAfter", "{{ 'a.b.c' | substringAfter(separator='.') }}", "b.c"),
    ("SubstringFilterTest.substringBeforeLast", "{{ 'a.b.c' | substringBeforeLast(separator='.') }}", "a.b"),
    ("SubstringFilterTest.substringAfterLast", "{{ 'a.b.c' | substringAfterLast('.') }}", "c"),
    ("ToJsonFilterTest.toJsonFilter (list)", "{{ vars.second.list | toJson }}", '["string",1,1.123]'),
    (
        "ToJsonFilterTest.toJsonFilter (date)",
        "{{ vars.second.date | toJson }}",
        '"2013-09-08T16:19:00+02:00"',
    ),
    ("ToJsonFilterTest.toJsonFilter (empty)", '{{ {"empty_object":{}} | toJson }}', '{"empty_object":{}}'),
    ("ToJsonFilterTest.toJsonFilter (null)", "{{ null | toJson }}", "null"),
    ("ToJsonFilterTest.jsonFilter", "{{ vars.second.string | json }}", '"string"'),
    ("UrlDecodeFilter.urldecode", "{{ 'Kestra rulez !' | urlencode | urldecode }}", "Kestra rulez !"),
    ("ValuesFilterTest.map", "{{ vars.second.map | values }}", '["string",1,1.123]'),
    ("Sha1FilterTest.out", '{{ "hello" | sha1 }}', "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"),
    ("Md5FilterTest.out", '{{ "hello" | md5 }}', "5d41402abc4b2a76b9719d911017c592"),
    ("EscapeCharFilterTest.validTypes (shell)", "{{ \"L'eau\" | escapeChar('shell') }}", "L'\\''eau"),
    ("ClassNameFilter", "{{ vars.second.map | className }}", "java.util.LinkedHashMap"),
    ("JsonTest (the json test)", "{{ '{\"a\": 1}' is json }}", "true"),
]


@pytest.mark.parametrize(("source", "template", "expected"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES])
def test_filters_match_kestra(source: str, template: str, expected: str) -> None:
    """Kestra's filter tests (the id names the test class and method, or the filter's source)."""
    assert render(template) == expected


@pytest.mark.parametrize("template", ["{{ 1 | chunk(2) }}", "{{ 'x' | flatten }}", "{{ 'x' | values }}"])
def test_filters_refuse_wrong_input(template: str) -> None:
    """ChunkFilterTest.exception; FlattenFilter and ValuesFilter refuse what is not a list or a map."""
    with pytest.raises(ExpressionError):
        render(template)


# ---------------------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------------------


def test_print_context_and_fetch_context() -> None:
    """FetchContextFunctionTest.fromString: printContext() (and fetchContext()) give the variables."""
    context = {"test": "value", "array": ["a", "b", "c"]}
    assert render("{{ printContext() }}", context) == '{"test":"value","array":["a","b","c"]}'
    assert render("{{ fetchContext().array | last }}", context) == "c"


def test_random_port_is_a_free_port() -> None:
    """RandomPortFunction: a port the system just handed out, free to bind."""
    port = int(render("{{ randomPort() }}", {}))
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("", port))


# ---------------------------------------------------------------------------------------------------------
# Named date formats (AbstractDate.FORMATTERS)
# ---------------------------------------------------------------------------------------------------------

DATE = "2013-09-08T16:19:12.123+02:00"
NAMED_FORMATS: list[tuple[str, str]] = [
    ("iso", "2013-09-08T16:19:12.123000+02:00"),
    ("iso_sec", "2013-09-08T16:19:12+02:00"),
    ("sql", "2013-09-08 16:19:12.123000"),
    ("sql_seq", "2013-09-08 16:19:12"),
    ("iso_date_time", "2013-09-08T16:19:12.123+02:00[Europe/Paris]"),
    ("iso_date", "2013-09-08+02:00"),
    ("iso_time", "16:19:12.123+02:00"),
    ("iso_local_date", "2013-09-08"),
    ("iso_instant", "2013-09-08T14:19:12.123Z"),
    ("iso_local_date_time", "2013-09-08T16:19:12.123"),
    ("iso_local_time", "16:19:12.123"),
    ("iso_offset_time", "16:19:12.123+02:00"),
    ("iso_ordinal_date", "2013-251+02:00"),
    ("iso_week_date", "2013-W36-7+02:00"),
    ("iso_zoned_date_time", "2013-09-08T16:19:12.123+02:00[Europe/Paris]"),
    ("rfc_1123_date_time", "Sun, 8 Sep 2013 16:19:12 +0200"),
]


@pytest.mark.parametrize(("name", "expected"), NAMED_FORMATS)
def test_date_named_formats(name: str, expected: str) -> None:
    """AbstractDate.FORMATTERS: every named format of Kestra's date filters prints as Java's formatter."""
    template = "{{ '" + DATE + "' | date('" + name + "', timeZone='Europe/Paris') }}"
    assert render(template, {}) == expected


READABLE_FORMATS: list[tuple[str, str, str]] = [
    ("iso_date_time", "2013-09-08T16:19:12+02:00[Europe/Paris]", "2013-09-08T14:19:12Z"),
    ("iso_zoned_date_time", "2013-09-08T16:19:12+02:00", "2013-09-08T14:19:12Z"),
    ("iso_instant", "2013-09-08T14:19:12Z", "2013-09-08T14:19:12Z"),
    ("iso_local_date_time", "2013-09-08T16:19:12", "2013-09-08T16:19:12Z"),
    ("iso_local_date", "2013-09-08", "2013-09-08T00:00:00Z"),
    ("iso_date", "2013-09-08+02:00", "2013-09-08T00:00:00Z"),
    ("iso_ordinal_date", "2013-251", "2013-09-08T00:00:00Z"),
    ("iso_week_date", "2013-W36-7", "2013-09-08T00:00:00Z"),
    ("rfc_1123_date_time", "Sun, 8 Sep 2013 16:19:12 +0200", "2013-09-08T14:19:12Z"),
    ("sql_seq", "2013-09-08 16:19:12", "2013-09-08T16:19:12Z"),
]


@pytest.mark.parametrize(("name", "text", "expected"), READABLE_FORMATS)
def test_date_existing_format_reads_named_formats(name: str, text: str, expected: str) -> None:
    """AbstractDate.convert: text in a named format is read as a zoned date-time, else a local
    date-time in the zone, else a local date at the start of the day (any offset of a date dropped)."""
    template = (
        "{{ '"
        + text
        + "' | date(\"yyyy-MM-dd'T'HH:mm:ssXXX\", existingFormat='"
        + name
        + "', timeZone='UTC') }}"
    )
    assert render(template, {}) == expected


@pytest.mark.parametrize("name", ["iso_time", "iso_local_time", "iso_offset_time"])
def test_date_existing_format_without_a_date_fails(name: str) -> None:
    """AbstractDate.convert: a time alone is not a date (Java's LocalDate.parse fails)."""
    with pytest.raises(ExpressionError, match="holds no date"):
        render("{{ '16:19:12' | date('yyyy', existingFormat='" + name + "') }}", {})


# ---------------------------------------------------------------------------------------------------------
# regexMatch, regexReplace, regexExtract (RegexFilterTest; filters/Regex*Filter.java)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 'hello world' | regexMatch(regex='hello.*') }}", "true"),
        ("{{ 'hello world' | regexMatch(regex='^\\\\d+$') }}", "false"),
        ("{{ 'order-12345-done' | regexMatch(regex='\\\\d+') }}", "true"),
        ("{{ null | regexMatch(regex='.*') }}", "false"),
        ("{{ 'hello world' | regexReplace(regex='world', replacement='java') }}", "hello java"),
        ("{{ 'aa1bb2cc3' | regexReplace(regex='\\\\d', replacement='-') }}", "aa-bb-cc-"),
        ("{{ 'aa1bb2cc3' | regexReplace(regex='(\\\\d)', replacement='[$1]') }}", "aa[1]bb[2]cc[3]"),
        ("{{ 'hello' | regexReplace(regex='\\\\d+', replacement='X') }}", "hello"),
        ("{{ null | regexReplace(regex='.*', replacement='x') }}", ""),
        ("{{ 'order-12345-done' | regexExtract(regex='\\\\d+') }}", "12345"),
        (
            "{{ 'order-111-222-333-done' | regexExtract(regex='order-(\\\\d+)-(\\\\d+)-(\\\\d+)', "
            "group=2) }}",
            "222",
        ),
        ("{{ 'abc-123-def-456' | regexExtract(regex='\\\\d+') }}", "123"),
        ("{{ 'hello' | regexExtract(regex='\\\\d+') }}", ""),
        ("{{ null | regexExtract(regex='\\\\d+') }}", ""),
    ],
)
def test_regex_filters(template: str, expected: str) -> None:
    """RegexFilterTest: regexMatch uses find() (a partial match is true), regexReplace replaces every
    match with $n group references, regexExtract gives the first match or its group; null input gives
    false, null and null."""
    assert render(template) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ 'order-12345' | regexExtract(regex='order-(\\\\d+)', group=5) }}",
            "Group index 5 is out of bounds",
        ),
        (
            "{{ 'order-12345' | regexExtract(regex='order-(\\\\d+)', group=-1) }}",
            "Group index -1 is out of bounds",
        ),
        ("{{ 'hello' | regexMatch() }}", "The argument 'regex' is required"),
        ("{{ 'hello' | regexReplace(replacement='x') }}", "The argument 'regex' is required"),
        ("{{ 'hello' | regexReplace(regex='\\\\d+') }}", "The argument 'replacement' is required"),
        ("{{ 'hello' | regexExtract() }}", "The argument 'regex' is required"),
        ("{{ 'hello' | regexMatch(regex='[unclosed') }}", "Invalid regex"),
        ("{{ 'hello' | regexReplace(regex='[unclosed', replacement='x') }}", "Invalid regex"),
        ("{{ 'hello' | regexExtract(regex='[unclosed') }}", "Invalid regex"),
    ],
)
def test_regex_filters_fail(template: str, message: str) -> None:
    """RegexFilterTest: out-of-bounds groups, missing arguments and invalid patterns fail the render."""
    with pytest.raises(ExpressionError, match=message):
        render(template)


@pytest.mark.parametrize("template", [
    "{{ body | regexMatch(regex='(a+)+$') }}",
    "{{ body | regexReplace(regex='(a+)+$', replacement='x') }}",
    "{{ body | regexExtract(regex='(a+)+$') }}",
])  # fmt: skip
def test_regex_filters_stop_a_catastrophic_pattern(template: str) -> None:
    """RegexFilterTest.regex*ReDoSShouldTimeout: a pattern that backtracks without end is stopped;
    Kestra stops it at its regex timeout, Tiercel at the render's time limit (the worker is killed).
    Kestra's own pattern, '(.*a){25}', does find a match after a long search; '(a+)+$' on 40 'a' then
    'b' never does, so the test cannot pass by the search ending in time on a fast machine."""
    with pytest.raises(ExpressionError, match="took longer than 1 s"):
        Renderer(timeout_s=1).render(template, {"body": "a" * 40 + "b"})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # ASCII classes, as Java's \d, \w and \b without (?U)
        ("{{ 'x٣y' | regexMatch(regex='\\\\d') }}", "false"),
        ("{{ 'x٣y' | regexMatch(regex='(?U)\\\\d') }}", "true"),
        ("{{ 'é' | regexMatch(regex='\\\\w') }}", "false"),
        # named groups and their references
        (
            "{{ '2024-07' | regexReplace(regex='(?<y>\\\\d+)-(?<m>\\\\d+)', replacement='${m}/${y}') }}",
            "07/2024",
        ),
        ("{{ 'abab' | regexMatch(regex='^(?<p>ab)\\\\k<p>$') }}", "true"),
        # POSIX and Unicode properties, quoting, unions, inline flags anywhere
        ("{{ 'abc1' | regexExtract(regex='\\\\p{Alpha}+') }}", "abc"),
        ("{{ '1éa' | regexExtract(regex='\\\\p{L}+') }}", "éa"),
        ("{{ 'a.b axb' | regexReplace(regex='\\\\Qa.b\\\\E', replacement='-') }}", "- axb"),
        ("{{ 'y' | regexMatch(regex='[a-c[x-z]]') }}", "true"),
        ("{{ 'aB' | regexMatch(regex='^a(?i)b$') }}", "true"),
        ("{{ 'AB' | regexMatch(regex='^a(?i)b$') }}", "false"),
        # $12 is group 1 then '2' when there are fewer than 12 groups; \\$ is a dollar
        ("{{ 'ab' | regexReplace(regex='(a)', replacement='$12') }}", "a2b"),
        ("{{ 'ab' | regexReplace(regex='a', replacement='\\\\$') }}", "$b"),
    ],
)
def test_regex_filters_read_patterns_as_java(template: str, expected: str) -> None:
    """java.util.regex.Pattern (Java 21): \\d, \\w, \\b are ASCII unless UNICODE_CHARACTER_CLASS, (?<name>)
    and \\k<name>, \\p{Alpha} and \\p{L}, \\Q...\\E, nested classes as unions, flags that hold from where they
    stand; Matcher.appendReplacement reads $n greedily while the group exists, ${name} and \\$."""
    assert render(template) == expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("[a-z&&[^aeiou]]", "intersection"), ("\\\\p{IsLatin}", "Unsupported character property")],
)
def test_regex_java_features_python_lacks_fail_clearly(pattern: str, message: str) -> None:
    """Class intersections and scripts have no equivalent in Python's re: a clear error, not a wrong match."""
    with pytest.raises(ExpressionError, match=message):
        render("{{ 'a' | regexMatch(regex='" + pattern + "') }}")


# ---------------------------------------------------------------------------------------------------------
# Operators of Kestra's extension: isIn, <, <=, >, >= (expression/*Expression.java)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "context", "expected"),
    [
        ("{{ state isIn ['SUCCESS', 'WARNING'] }}", {"state": "SUCCESS"}, "true"),
        ("{{ state isIn ['FAILED', 'KILLED'] }}", {"state": "SUCCESS"}, "false"),
        ("{{ key isIn map }}", {"map": {"key": "value"}, "key": "key"}, "true"),
        ("{{ value isIn map }}", {"map": {"key": "value"}, "value": "value"}, "true"),
        # items are compared printed, null and non-collections give false
        ("{{ 1 isIn ['1', '2'] }}", {}, "true"),
        ("{{ null isIn ['a'] }}", {}, "false"),
        ("{{ 'a' isIn 'abc' }}", {}, "false"),
        # at the precedence of ==: below filters and arithmetic, above 'and'
        ("{{ 1 + 1 isIn [2] and 'B' | lower isIn ['b'] }}", {}, "true"),
    ],
)
def test_is_in(template: str, context: dict[str, Any], expected: str) -> None:
    """InExpressionTest.inList and inMap; InExpression: both sides printed (toString), a map matches a key
    or a value, null on either side or another right side is false; Extension registers it at 30."""
    assert render(template, context) == expected


@pytest.mark.parametrize(
    ("template", "context", "expected"),
    [
        ("{{ left >= right }}", {"left": "b", "right": "a"}, "true"),
        ("{{ left >= left }}", {"left": "b"}, "true"),
        ("{{ right >= left }}", {"left": "b", "right": "a"}, "false"),
        ("{{ left < right }}", {"left": "a", "right": "b"}, "true"),
        ("{{ left < left }}", {"left": "a"}, "false"),
        ("{{ left > right }}", {"left": "b", "right": "a"}, "true"),
        ("{{ left <= right }}", {"left": "a", "right": "b"}, "true"),
        ("{{ five >= three }}", {"five": 5, "three": 3}, "true"),
        ("{{ three < five }}", {"five": 5, "three": 3}, "true"),
        ("{{ five <= three }}", {"five": 5, "three": 3}, "false"),
        ("{{ '2024-01-02' > '2023-12-31' }}", {}, "true"),
        # String.compareTo orders UTF-16 units: a supplementary character sorts below U+FFFD
        ("{{ '\U0001f600' < '\ufffd' }}", {}, "true"),
        # numbers of different kinds compare as decimals; null compares false
        ("{{ 0.1 == 0.1 and small < 1 }}", {"small": Decimal("0.5")}, "true"),
        ("{{ missing > 1 }}", {"missing": None}, "false"),
    ],
)
def test_comparison_operators(template: str, context: dict[str, Any], expected: str) -> None:
    """GreaterThan(Equals)ExpressionTest and LessThan(Equals)ExpressionTest: strings compare with
    String.compareTo, numbers as Pebble's OperatorUtils does (null on either side is false)."""
    assert render(template, context) == expected


@pytest.mark.parametrize("template", ["{{ 'a' < 1 }}", "{{ [1] < [2] }}", "{{ true > false }}"])
def test_comparison_of_other_operands_fails(template: str) -> None:
    """GreaterThanExpression: operands that are neither two strings nor two numbers cannot be compared
    ("Could not perform greater than comparison")."""
    with pytest.raises(ExpressionError, match=r"Could not perform .* comparison"):
        render(template)


# ---------------------------------------------------------------------------------------------------------
# ?? and ??? (expression/NullCoalescingExpressionTest.java, UndefinedCoalescingExpressionTest.java)
# ---------------------------------------------------------------------------------------------------------

BLOCK: dict[str, Any] = {"block": {"test": {"child": "awesome"}}, "inner": "test"}


@pytest.mark.parametrize(
    ("template", "context", "expected"),
    [
        # firstDefined
        ("{{ inner.bla ?? block.test.child }}", BLOCK, "awesome"),
        ("{{ block.test.child ?? inner.bla }}", BLOCK, "awesome"),
        # firstDefinedEval
        ("{{ block.test.child ?? null }}", BLOCK, "awesome"),
        ("{{ block[inner].child ?? null }}", BLOCK, "awesome"),
        ("{{ block[missing].child ?? block[inner].child }}", BLOCK, "awesome"),
        ("{{ block[missing].child ?? block[missing2].child ?? block[inner].child }}", BLOCK, "awesome"),
        ("{{ missing ?? block.test.child }}", BLOCK, "awesome"),
        # emptyObject
        ("{{ block ?? 'UNDEFINED' }}", {"block": {}}, "{}"),
        # nullOrUndefined, for ?? then ???
        ("{{ null ?? 'IS NULL' }}", {"null": None}, "IS NULL"),
        ("{{ undefined ?? 'IS UNDEFINED' }}", {"null": None}, "IS UNDEFINED"),
        ("{{ null ??? 'IS NULL' }}", {"null": None}, ""),
        ("{{ undefined ??? 'IS UNDEFINED' }}", {"null": None}, "IS UNDEFINED"),
    ],
)
def test_null_coalescing(template: str, context: dict[str, Any], expected: str) -> None:
    """NullCoalescingExpressionTest (firstDefined, firstDefinedEval, emptyObject, nullOrUndefined) and
    UndefinedCoalescingExpressionTest.nullOrUndefined: ``??`` falls back on a missing or null left side,
    ``???`` on a missing one only; a missing variable used as a key (``block[missing]``) is caught too."""
    assert render(template, context) == expected


def test_null_coalescing_of_two_missing_values_fails() -> None:
    """NullCoalescingExpressionTest.firstDefined and firstDefinedEval: ``missing ?? missing2`` throws."""
    with pytest.raises(ExpressionError, match="Unable to find `missing2`"):
        render("{{ missing ?? missing2 }}", BLOCK)


# ---------------------------------------------------------------------------------------------------------
# range() bounded (BoundedRangeFunctionTest; functions/BoundedRangeFunction.java)
# ---------------------------------------------------------------------------------------------------------


def test_bounded_range() -> None:
    """BoundedRangeFunctionTest: a normal range renders; 2e9 elements, ascending or descending, fail
    with 'cannot produce more than' (the size is counted before the direction is looked at)."""
    assert render("{{ range(1, 5) }}") == "[1,2,3,4,5]"
    for template in (
        "{{ range(0, 2000000000) }}",
        "{{ range(2000000000, 0, -1) }}",
        "{{ range(0, 2000000000, -1) }}",
    ):
        with pytest.raises(ExpressionError, match="cannot produce more than 1000000 elements"):
            render(template)
