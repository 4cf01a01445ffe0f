"""Kestra expressions: Pebble syntax on the Jinja sandbox, filters, errors, sandbox and limits."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tiercel.engine.expressions import (
    ExpressionError,
    ExpressionSecurityError,
    Renderer,
    is_truthy,
    to_text,
)
from tiercel.engine.expressions.javadate import DateError, add_to_date, format_date, to_datetime, zone_of


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


def render(template: str, context: dict[str, Any] | None = None, **kwargs: Any) -> str:
    return Renderer(**kwargs).render(template, context or {})


CTX: dict[str, Any] = {
    "inputs": {"name": "joe", "n": 3, "nothing": None, "blank": "  ", "js": '{"a": {"b": [1, 2]}}'},
    "outputs": {
        "task-id": {"value": "dashed"},
        "first": {"value": "one", "values": {"k": "from-map"}, "items": [1, 2]},
    },
    "taskrun": {"attemptsCount": 3, "value": None},
    "flow": {"id": "hello", "namespace": "company.team"},
    "numbers": [3, 1, 2],
    "mapping": {"b": 2, "a": 1},
}


# ---------------------------------------------------------------------------------------------------------
# Plain strings and output rules
# ---------------------------------------------------------------------------------------------------------


def test_text_without_delimiters_is_returned_untouched_without_compiling(renderer: Renderer) -> None:
    for text in ("plain text", "{ not a template }", "a } b {# no comment #}", ""):
        assert renderer.render(text, {}) == text
    assert renderer.cache_info().misses == 0


def test_non_string_values_are_returned_unchanged(renderer: Renderer) -> None:
    for value in (1, 2.5, None, True):
        assert renderer.render(value, {}) is value  # type: ignore[arg-type]
        assert renderer.render_value(value, {}) is value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"a": [1, "é", None, True]}, '{"a":[1,"é",null,true]}'),
        ([1, 2.5], "[1,2.5]"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        (1.0, "1.0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e20, "1.0E20"),
        (1.5e-5, "1.5E-5"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (42, "42"),
        ("text", "text"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2024-01-02T03:04:05+02:00"),
        (date(2024, 1, 2), "2024-01-02"),
        (Decimal("1.50"), "1.50"),
        ({"when": datetime(2024, 1, 2, tzinfo=UTC)}, '{"when":"2024-01-02T00:00:00Z"}'),
    ],
)
def test_to_text(value: Any, text: str) -> None:
    assert to_text(value) == text


def test_printed_values_go_through_to_text(renderer: Renderer) -> None:
    context = {"m": {"a": [1, True, None]}, "f": 2.0, "b": False, "n": None}
    assert (
        renderer.render("{{ m }}|{{ f }}|{{ b }}|{{ n }}|{{ 1.0 }}", context)
        == '{"a":[1,true,null]}|2.0|false||1.0'
    )


def test_a_single_expression_still_returns_text(renderer: Renderer) -> None:
    assert renderer.render("{{ numbers }}", CTX) == "[3,1,2]"
    assert renderer.render("{{ inputs.n }}", CTX) == "3"


def test_trailing_newline_is_kept(renderer: Renderer) -> None:
    assert renderer.render("{{ flow.id }}\n", CTX) == "hello\n"


def test_render_value_renders_keys_and_nested_values(renderer: Renderer) -> None:
    value = {
        "{{ flow.id }}": "{{ inputs.name }}",
        "list": ["{{ inputs.n }}", 4, {"x": "{{ flow.namespace }}"}],
        "k": 1.5,
    }
    assert renderer.render_value(value, CTX) == {
        "hello": "joe",
        "list": ["3", 4, {"x": "company.team"}],
        "k": 1.5,
    }


def test_rendering_happens_once(renderer: Renderer) -> None:
    assert renderer.render("{{ tpl }}", {"tpl": "{{ secret }}", "secret": "s3cr3t"}) == "{{ secret }}"


# ---------------------------------------------------------------------------------------------------------
# Pebble syntax
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # ?? and ???
        ("{{ outputs.default.value ?? outputs['error-t1'].value }}", "E"),
        ("{{ outputs['task-id'].value ?? 'x' }}", "dashed"),
        ("{{ inputs.nothing ?? 'fallback' }}", "fallback"),
        ("{{ inputs.nothing ??? 'fallback' }}", ""),
        ("{{ inputs.missing ??? 'fallback' }}", "fallback"),
        ("{{ inputs.missing ?? inputs.other ?? 'third' }}", "third"),
        ("{{ inputs.missing.deep.path ?? 'deep' }}", "deep"),
        ("{{ inputs.name ?? undefinedButNotNeeded }}", "joe"),
        ("{{ inputs.name ?? undefinedFn() }}", "joe"),
        # ternary
        ("{{ taskrun.attemptsCount == 3 ? 'ok' : ko }}", "ok"),
        ("{{ inputs.n > 5 ? 'big' : inputs.n > 2 ? 'mid' : 'small' }}", "mid"),
        ("{{ inputs.missing ?? false ? 'yes' : 'no' }}", "no"),
        ("{{ true ? inputs.missing ?? 'inner' : 'x' }}", "inner"),
        # equals / contains / in
        ("{{ inputs.n equals 3 }}", "true"),
        ("{{ numbers contains 2 }}", "true"),
        ("{{ numbers contains [1, 3] }}", "true"),
        ("{{ numbers contains 9 }}", "false"),
        ("{{ 'kestra' contains 'str' }}", "true"),
        ("{{ mapping contains 'a' }}", "true"),
        ("{{ mapping contains 'z' }}", "false"),
        ("{{ 1 in numbers }}", "true"),
        ("{{ 9 not in numbers }}", "true"),
        ("{{ 'a' in mapping }}", "true"),
        # tests
        ("{{ inputs.missing is defined }}", "false"),
        ("{{ inputs.name is defined }}", "true"),
        ("{{ inputs.missing is not defined }}", "true"),
        ("{{ inputs.nothing is null }}", "true"),
        ("{{ inputs.name is not null }}", "true"),
        ("{{ inputs.blank is empty }}", "true"),
        ("{{ numbers is not empty }}", "true"),
        ("{{ {} is empty }}", "true"),
        ("{{ inputs.js is json }}", "true"),
        ("{{ 'not json' is json }}", "false"),
        ("{{ 4 is even }}{{ 3 is odd }}{{ 3 is even }}", "truetruefalse"),
        ("{{ mapping is map }}{{ numbers is iterable }}", "truetrue"),
        ("{{ 'kestra' is startsWith('kes') }}", "true"),
        # boolean operators
        ("{{ true and false or true }}", "true"),
        ("{{ not inputs.nothing is null }}", "false"),
        ("{{ not (1 > 2) }}", "true"),
        # access
        ("{{ outputs['task-id'].value }}", "dashed"),
        ("{{ outputs.first.value }}", "one"),
        ("{{ outputs['first']['value'] }}", "one"),
        ("{{ outputs.first.values.k }}", "from-map"),
        ("{{ outputs.first.items[1] }}", "2"),
        ("{{ outputs.first.items.0 }}", "1"),
        ("{{ numbers[-1] }}", "2"),
        # concatenation and arithmetic
        ("{{ 'a' ~ 1 ~ true ~ null }}", "a1true"),
        ("{{ 'n=' ~ (inputs.n + 1) }}", "n=4"),
        ("{{ 'n=' ~ inputs.n + 1 }}", "n=31"),  # Pebble: ~ binds tighter than +, then + concatenates
        ("{{ 'a' + 1 }}", "a1"),
        ("{{ 1 + 2 * 3 }}", "7"),
        ("{{ (1 + 2) * 3 }}", "9"),
        ("{{ 7 / 2 }} {{ -7 / 2 }} {{ 7.0 / 2 }}", "3 -3 3.5"),
        ("{{ 7 % 3 }} {{ -7 % 3 }}", "1 -1"),
        ("{{ 10 // 3 }} {{ 2 ** 10 }}", "3 1024"),
        ("{{ numbers + 4 }} {{ numbers - 1 }}", "[3,1,2,4] [3,2]"),
        ("{{ -inputs.n }}", "-3"),
        # literals and interpolation
        ('{{ "Hello #{inputs.name | upper}!" }}', "Hello JOE!"),
        ("{{ 'single #{not} interpolated' }}", "single #{not} interpolated"),
        ("{{ {'a': [1, 2.5, null], 'b': {'c': true}} }}", '{"a":[1,2.5,null],"b":{"c":true}}'),
        ('{{ \'it\\\'s\' }} {{ "say \\"hi\\"" }}', 'it\'s say "hi"'),
        ("{{ 'back\\\\slash' }}", "back\\slash"),
        ("{{ 'a\\nb' }}", "a\\nb"),
        ("{{ null }}{{ none }}|{{ TRUE }}", "|true"),
        # ranges
        ("{{ 1..4 }}", "[1,2,3,4]"),
        ("{{ 'a'..'c' }}", '["a","b","c"]'),
    ],
)
def test_pebble_expressions(template: str, expected: str) -> None:
    context = {**CTX, "outputs": {**CTX["outputs"], "error-t1": {"value": "E"}}}
    assert render(template, context) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # filters, ~ and arithmetic bind tighter than ?? and ???
        ("{{ inputs.missing ?? 'ab' | upper }}", "AB"),
        ("{{ 'p-' ~ inputs.missing ?? 'x' }}", "x"),
        ("{{ 'p-' ~ inputs.name ?? 'x' }}", "p-joe"),
        ("{{ 'p-' ~ (inputs.missing ?? 'x') }}", "p-x"),
        ("{{ inputs.missing ?? 'a' ~ 'b' }}", "ab"),
        ("{{ inputs.missing ?? 1 + 1 }}", "2"),
        ("{{ inputs.missing.size + 1 ?? 0 }}", "0"),
        ("{{ inputs.missing | upper ?? 'none' }}", "none"),
        ("{{ inputs.name | upper ?? 'none' }}", "JOE"),
        # the filters of kestra.io's "null values" guide apply to the fallback only
        ("{{ inputs.start ?? '2024-05-31' | dateAdd(-1, 'MONTHS') | date('yyyy-MM-dd') }}", "2024-04-30"),
        ("{{ inputs.name ?? '2024-05-31' | dateAdd(-1, 'MONTHS') | date('yyyy-MM-dd') }}", "joe"),
        # null concatenates as nothing: the left side is "p-", not null
        ("{{ 'p-' ~ inputs.nothing ?? 'x' }}", "p-"),
        ("{{ 'p-' ~ inputs.nothing ??? 'x' }}", "p-"),
        ("{{ 'p-' ~ inputs.missing ??? 'x' }}", "x"),
        ("{{ inputs.missing ??? 'u' ~ '!' }}", "u!"),
        # the level of ==, < and isIn, left to right
        ("{{ inputs.n > inputs.missing ?? 'no number' }}", "no number"),
        ("{{ inputs.missing == 1 ?? 'no value' }}", "no value"),
        ("{{ inputs.missing ?? 'a' == 'a' }}", "true"),
        ("{{ inputs.missing ?? 3 > 2 }}", "true"),
        # above contains, and, or and the ternary
        ("{{ numbers contains inputs.missing ?? 2 }}", "true"),
        ("{{ inputs.missing ?? false or true }}", "true"),
        ("{{ 'a' ~ inputs.missing ?? false ? 'yes' : 'no' }}", "no"),
        # chains go left to right, and a failing fallback falls to the next one
        ("{{ inputs.missing ~ 1 ?? inputs.missing2 ~ 2 ?? 'third' }}", "third"),
        ("{{ ('a' ~ (inputs.missing ~ 'b' ?? 'c')) ?? 'd' }}", "ac"),
        # the left side sees loop variables, set variables and works inside interpolation
        ("{% for n in numbers %}{{ n ~ inputs.missing ?? n * 10 }},{% endfor %}", "30,10,20,"),
        ("{% for n in numbers %}{{ loop.index ~ inputs.missing ?? loop.index }}{% endfor %}", "012"),
        ("{% set p = 'P' %}{{ p ~ inputs.missing ?? p ~ '?' }}", "P?"),
        ('{{ "<#{inputs.name ~ inputs.missing ?? inputs.name}>" }}', "<joe>"),
        ("{% if 'a' ~ inputs.missing ?? false %}yes{% else %}no{% endif %}", "no"),
        # a variable named like the helpers' own names stays a variable
        ("{{ result ~ inputs.missing ?? result }}", "R"),
    ],
)
def test_coalescing_operators_bind_below_filters_and_arithmetic(template: str, expected: str) -> None:
    """Kestra PR #16127 ("operators should have a lower precedence than filters") registers ``??`` and
    ``???`` at precedence 30, with ``==`` and ``isIn`` (Extension.java at 1e87364a): ``'p-' ~ x ?? 'y'`` reads
    ``('p-' ~ x) ?? 'y'``. NullCoalescingExpression and UndefinedCoalescingExpression catch the
    AttributeNotFoundException thrown anywhere while evaluating that left side, so a missing variable inside
    it gives the fallback (``x``, where the old reading gave ``p-x``)."""
    assert render(template, {**CTX, "result": "R"}) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 1 / 0 ?? 'x' }}", "division by zero"),
        ("{{ 'x' | fromJson ?? 'y' }}", "invalid JSON"),
        ("{{ 1 < 'a' ??? 'z' }}", "not supported"),
        ("{{ 'p-' ~ inputs.missing ?? 'q-' ~ inputs.other }}", "Unable to find `other`"),
    ],
)
def test_coalescing_operators_catch_only_missing_variables(template: str, message: str) -> None:
    """NullCoalescingExpression and UndefinedCoalescingExpression (Kestra PR #16127) catch only Pebble's
    AttributeNotFoundException: other failures of the left side, and any failure of the fallback, are
    errors."""
    with pytest.raises(ExpressionError, match=re.escape(message)):
        render(template, CTX)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% if inputs.n > 5 %}big{% elseif inputs.n > 2 %}mid{% else %}small{% endif %}", "mid"),
        ("{% if inputs.n > 5 %}big{% elif inputs.n > 1 %}mid{% endif %}", "mid"),
        ("{% if inputs.missing is defined %}x{% else %}no{% endif %}", "no"),
        ("{% for n in numbers %}{{ n }},{% endfor %}", "3,1,2,"),
        ("{% for n in [] %}x{% else %}empty{% endfor %}", "empty"),
        ("{% for n in inputs.nothing %}x{% else %}null-is-empty{% endfor %}", "null-is-empty"),
        ("{% for n in numbers %}{{ loop.index }}{{ loop.revindex }}{% endfor %}", "021120"),
        (
            "{% for n in numbers %}{{ loop.first }}/{{ loop.last }}/{{ loop.length }} {% endfor %}",
            "true/false/3 false/false/3 false/true/3 ",
        ),
        ("{% for e in mapping %}{{ e.key }}={{ e.value }};{% endfor %}", "b=2;a=1;"),
        ("{% for k, v in mapping %}{{ k }}{{ v }}{% endfor %}", "b2a1"),
        ("{% for i in 0..2 %}{{ i }}{% endfor %}", "012"),
        ("{% for i in range(1, 3) %}{{ i }}{% endfor %}", "123"),
        ("{% set total = inputs.n * 2 %}{{ total }}", "6"),
        ("{% filter upper %}shout {{ inputs.name }}{% endfilter %}", "SHOUT JOE"),
        ("a  {{- ' b ' -}}  c", "a b c"),
        ("a\n{%- if true -%}\n  b\n{%- endif -%}\n c", "abc"),
        ("{% raw %}{{ kept }}{% endraw %}", "{{ kept }}"),
        ("{% verbatim %}{{ kept }} {% if %}{% endverbatim %}", "{{ kept }} {% if %}"),
        ("{# a comment #}x{# another {{ one }} #}", "x"),
        ("{{ {'a': {'b': 1}}}}", '{"a":{"b":1}}'),
        ("{% if numbers contains 3 and mapping.a == 1 %}ok{% endif %}", "ok"),
    ],
)
def test_pebble_tags(template: str, expected: str) -> None:
    assert render(template, CTX) == expected


def test_callables_from_the_context_can_be_called() -> None:
    context = {
        "errorLogs": lambda: [{"taskId": "t1", "message": "boom"}, {"taskId": "t2", "message": "bang"}],
        "kv": lambda key, namespace=None: f"{namespace}:{key}",
    }
    template = "{%- for log in errorLogs() -%}{{ log.taskId }}={{ log.message }};{%- endfor -%}"
    assert render(template, context) == "t1=boom;t2=bang;"
    assert render("{{ kv('k', namespace='ns') }}", context) == "ns:k"


def test_multiline_expressions_and_tags() -> None:
    template = "{{\n  inputs.n\n  + 1\n}}\n{%\n if true\n%}x{% endif %}"
    assert render(template, CTX) == "4\nx"


# ---------------------------------------------------------------------------------------------------------
# Filters and functions
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ mapping | json }}", '{"b":2,"a":1}'),
        ("{{ 'é' | toJson }}", '"é"'),
        ("{{ null | json }}", "null"),
        ("{{ inputs.js | fromJson }}", '{"a":{"b":[1,2]}}'),
        ("{{ (inputs.js | fromJson).a.b[1] }}", "2"),
        ("{{ fromJson(inputs.js).a.b | first }}", "1"),
        ("{{ json(inputs.js).a.b | last }}", "2"),
        ("{{ inputs.js | jq('.a.b[]') }}", "[1,2]"),
        ("{{ inputs.js | jq('.a.b') | first }}", "[1,2]"),
        ("{{ mapping | jq('.a') | first }}", "1"),
        ("{{ inputs.missing | default('d') }}", "d"),
        ("{{ inputs.nothing | default('d') }}", "d"),
        ("{{ inputs.blank | default('d') }}", "d"),
        ("{{ [] | default('d') }}", "d"),
        ("{{ inputs.name | default('d') }}", "joe"),
        ("{{ 0 | default('d') }}", "0"),
        ("{{ 'Hello' | upper }} {{ 'Hello' | lower }}", "HELLO hello"),
        ("{{ 'hello wORLD' | capitalize }} {{ 'hello wORLD' | title }}", "Hello wORLD Hello WORLD"),
        ("{{ '  x  ' | trim }}|", "x|"),
        ("{{ 'abc' | length }} {{ numbers | length }} {{ mapping | length }} {{ null | length }}", "3 3 2 0"),
        ("{{ mapping | keys }} {{ mapping | values }}", '["b","a"] [2,1]'),
        ("{{ numbers | first }} {{ numbers | last }} {{ 'abc' | first }} {{ 'abc' | last }}", "3 2 a c"),
        ("{{ numbers | join(', ') }} {{ numbers | join }}", "3, 1, 2 312"),
        ("{{ 'a,b,,c,,' | split(',') }}", '["a","b","","c"]'),
        ("{{ 'a.b.c' | split('\\.') }}", '["a","b","c"]'),
        ("{{ 'a-b-c' | split('-', 2) }}", '["a","b-c"]'),
        ("{{ 'abcdef' | slice(1, 3) }} {{ numbers | slice(1) }}", "bc [1,2]"),
        (
            "{{ numbers | sort }} {{ numbers | rsort }} {{ numbers | reverse }} {{ 'abc' | reverse }}",
            "[1,2,3] [3,2,1] [2,1,3] cba",
        ),
        ("{{ 'The quick brown fox' | abbreviate(10) }}", "The qui..."),
        ("{{ 'short' | abbreviate(10) }}", "short"),
        ("{{ 'abc-abc' | replace({'a': 'x', 'b': 'y'}) }}", "xyc-xyc"),
        ("{{ 'abc' | replace('b', 'B') }}", "aBc"),
        ("{{ 'a1b22' | replace({'[0-9]+': '#'}, true) }}", "a#b#"),
        ("{{ 'john smith' | replace({'(\\w+) (\\w+)': '$2, $1'}, regexp=true) }}", "smith, john"),
        ("{{ ['a1', {'k': 'a2'}] | replace({'a': 'b'}) }}", '["b1",{"k":"b2"}]'),
        ("{{ 'a/b/c' | substringBefore('/') }} {{ 'a/b/c' | substringBeforeLast('/') }}", "a a/b"),
        ("{{ 'a/b/c' | substringAfter('/') }} {{ 'a/b/c' | substringAfterLast('/') }}", "b/c c"),
        ("{{ 'abc' | substringBefore('z') }}|{{ 'abc' | substringAfter('z') }}|", "abc||"),
        ("{{ 'kestra' | startsWith('kes') }} {{ 'kestra' | endsWith('x') }}", "true false"),
        (
            "{{ '42' | number + 1 }} {{ '4.5' | number }} {{ '0x1F' | number }} {{ '7' | number('DOUBLE') }}",
            "43 4.5 31 7.0",
        ),
        ("{{ 1234567.891 | numberformat('#,##0.00') }}", "1,234,567.89"),
        (
            "{{ 0.5 | numberformat('#.##') }} {{ 2.5 | numberformat('0') }} {{ 3.5 | numberformat('0') }}",
            ".5 2 4",
        ),
        ("{{ 0.256 | numberFormat('0.0%') }} {{ 1234.5678 | numberformat }}", "25.6% 1,234.568"),
        ("{{ {'a': 1} | merge({'b': 2}) }} {{ [1] | merge([2, 3]) }}", '{"a":1,"b":2} [1,2,3]'),
        ("{{ 'hi' | base64encode }} {{ 'aGk=' | base64decode }}", "aGk= hi"),
        ("{{ 'a b&c/é~*' | urlencode }} {{ 'a+b%26c' | urldecode }}", "a+b%26c%2F%C3%A9%7E* a b&c"),
        ("{{ 'hello' | sha256 }}", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        ("{{ 'hello' | md5 }}", "5d41402abc4b2a76b9719d911017c592"),
        ("{{ 'hello' | sha1 }}", "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"),
        ("{{ ' Hello World, ÉTÉ! ' | slugify }}", "hello-world-ete"),
        ("{{ 'a\nb\nc' | indent(2) }}", "a\n  b\n  c"),
        ("{{ 'a\nb' | nindent(2, '-') }}", "\n--a\n--b"),
        ("{{ mapping | yaml }}", "b: 2\na: 1\n"),
        (
            "{{ [1, [2, 3]] | flatten }} {{ [1, 1, 2, 1] | distinct }} {{ [1, 2, 3] | chunk(2) }}",
            "[1,2,3] [1,2] [[1,2],[3]]",
        ),
        ("{{ -3 | abs }} {{ numbers | sum }} {{ 2.567 | round(1) }}", "3 6 2.6"),
        ("{{ '12' | int + 1 }} {{ 'x' | int }} {{ '1.5' | float }}", "13 0 1.5"),
        ("{{ 3 | string ~ 'x' }} {{ 'ab' | list }}", '3x ["a","b"]'),
        # functions
        ("{{ range(1, 5) }} {{ range(5, 1, -2) }} {{ range(3) }}", "[1,2,3,4,5] [5,3,1] [0,1,2]"),
        ("{{ max(1, 5, 3) }} {{ min([4, 2, 8]) }}", "5 2"),
        ("{{ yaml('a: [1, 2]').a }}", "[1,2]"),
        ("{{ uuid() | length }}", "36"),
    ],
)
def test_filters_and_functions(template: str, expected: str) -> None:
    assert render(template, CTX) == expected


def test_random_int_stays_in_bounds() -> None:
    values = {int(render("{{ randomInt(1, 4) }}")) for _ in range(60)}
    assert values <= {1, 2, 3}
    assert len(values) > 1


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # Kestra's EscapeCharFilter: single and double quotes backslashed, shell quotes closed and reopened.
        ("{{ \"it's\" | escapeChar('single') }}", "it\\'s"),
        ("{{ 'say \"hi\"' | escapeChar(type='double') }}", 'say \\"hi\\"'),
        ("{{ \"it's\" | escapeChar('SHELL') }}", "it'\\''s"),
        (
            "{{ {'a': \"x'y\", 'b': [\"'\"]} | escapeChar('single') | json }}",
            '{"a":"x\\\\\'y","b":["\\\\\'"]}',
        ),
        # ClassNameFilter: the Java class of the value.
        ("{{ 'a' | className }}", "java.lang.String"),
        ("{{ 1 | className }}", "java.lang.Long"),
        ("{{ 1.5 | className }}", "java.lang.Double"),
        ("{{ true | className }}", "java.lang.Boolean"),
        ("{{ [1] | className }}", "java.util.ArrayList"),
        ("{{ {'a': 1} | className }}", "java.util.LinkedHashMap"),
    ],
)
def test_escape_char_and_class_name_filters(template: str, expected: str) -> None:
    assert render(template) == expected


def test_escape_char_needs_a_known_type() -> None:
    with pytest.raises(ExpressionError, match="'single', 'double' or 'shell'"):
        render("{{ 'a' | escapeChar('csv') }}")


def test_id_is_a_new_execution_shaped_id() -> None:
    """Kestra's IDFunction returns IdUtils.create(): the shape of execution ids."""
    first, second = render("{{ id() }}"), render("{{ id() }}")
    assert re.fullmatch(r"[0-9A-Za-z]{22}", first) and first != second


def test_random_int_of_equal_bounds_is_that_bound() -> None:
    """Kestra's RandomIntFunction (core/.../pebble/functions/RandomIntFunction.java) refuses only
    upper < lower: floor(random * 0) + lower is lower."""
    assert render("{{ randomInt(10, 10) }}") == "10"
    with pytest.raises(ExpressionError, match="'upper' to be at least 'lower'"):
        render("{{ randomInt(10, 9) }}")


def test_uuid_is_a_time_ordered_version_7_uuid() -> None:
    """Kestra's UUIDFunction: Generators.timeBasedEpochRandomGenerator, a UUIDv7."""
    before = int(datetime.now(UTC).timestamp() * 1000)
    first, second = render("{{ uuid() }}"), render("{{ uuid() }}")
    after = int(datetime.now(UTC).timestamp() * 1000)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first)
    assert first != second
    assert before <= int(first.replace("-", "")[:12], 16) <= after  # its first 48 bits: the millisecond


def test_now_prints_iso_with_microseconds_in_utc() -> None:
    before = datetime.now(UTC)
    text = render("{{ now() }}")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert abs(datetime.fromisoformat(text) - before) < timedelta(seconds=5)
    assert render("{{ now(format='yyyy') }}") == str(datetime.now(UTC).year)
    paris = render("{{ now(timeZone='Europe/Paris') }}")
    assert paris.endswith(("+01:00", "+02:00"))


def test_render_function_renders_in_the_current_context() -> None:
    context = {"inputs": {"tpl": "{{ inputs.word }}", "deep": "{{ inputs.tpl }}", "word": "hi"}}
    assert render("{{ render(inputs.tpl) }}", context) == "hi"
    assert render("{{ render(inputs.deep) }}", context) == "hi"
    assert render("{{ render(inputs.deep, recursive=false) }}", context) == "{{ inputs.word }}"
    assert render("{{ renderOnce(inputs.deep) }}", context) == "{{ inputs.word }}"
    assert render("{{ render({'k': inputs.tpl}) }}", context) == '{"k":"hi"}'


def test_render_function_reports_the_nested_template() -> None:
    with pytest.raises(ExpressionError) as info:
        render("{{ render(t) }}", {"t": "{{ gone }}"})
    assert str(info.value) == "Unable to find `gone` used in the expression `{{ gone }}`"


def test_render_function_cannot_recurse_forever() -> None:
    with pytest.raises(ExpressionError, match="nested deeper than the limit of 10"):
        render("{{ render(t) }}", {"t": "{{ render(t) }}"})


def test_current_each_output_walks_nested_loop_values() -> None:
    outputs = {
        "value 1": {"inner a": {"value": "1a"}, "inner b": {"value": "1b"}},
        "value 2": {"inner a": {"value": "2a"}, "inner b": {"value": "2b"}},
    }
    context = {
        "outputs": {"each": outputs},
        # nearest first; a parent without a value (a Sequential, say) is skipped
        "parents": [{"taskrun": {"value": "value 2"}}, {"taskrun": {"value": None}}, {"other": 1}],
        "taskrun": {"value": "inner b"},
    }
    assert render("{{ currentEachOutput(outputs.each).value }}", context) == "2b"
    three_levels = {"x": {"y": {"z": {"value": "deep"}}}}
    context = {
        "outputs": {"each": three_levels},
        "parents": [{"taskrun": {"value": "y"}}, {"taskrun": {"value": "x"}}],
        "taskrun": {"value": "z"},
    }
    assert render("{{ currentEachOutput(outputs.each).value }}", context) == "deep"
    single = {"outputs": {"each": {"a": {"value": 1}}}, "taskrun": {"value": "a"}}
    assert render("{{ currentEachOutput(outputs.each) }}", single) == '{"value":1}'


def test_current_each_output_reports_a_missing_parent_value() -> None:
    context = {
        "outputs": {"each": {"v1": {}}},
        "parents": [{"taskrun": {"value": "v9"}}],
        "taskrun": {"value": "a"},
    }
    with pytest.raises(ExpressionError, match="no outputs for the loop value 'v9'"):
        render("{{ currentEachOutput(outputs.each) }}", context)


# ---------------------------------------------------------------------------------------------------------
# Dates (Java patterns)
# ---------------------------------------------------------------------------------------------------------

MOMENT = "2024-01-02T03:04:05.123456Z"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("iso", "2024-01-02T03:04:05.123456Z"),
        ("iso_sec", "2024-01-02T03:04:05Z"),
        ("sql", "2024-01-02 03:04:05.123456"),
        ("sql_seq", "2024-01-02 03:04:05"),
        ("iso_date_time", "2024-01-02T03:04:05.123456Z[UTC]"),
        ("iso_local_date", "2024-01-02"),
        ("iso_local_date_time", "2024-01-02T03:04:05.123456"),
        ("iso_date", "2024-01-02Z"),
        ("iso_time", "03:04:05.123456Z"),
        ("iso_instant", "2024-01-02T03:04:05.123456Z"),
        ("iso_ordinal_date", "2024-002Z"),
        ("iso_week_date", "2024-W01-2Z"),
        ("rfc_1123_date_time", "Tue, 2 Jan 2024 03:04:05 GMT"),
        ("medium", "Jan 2, 2024, 3:04:05\u202fAM"),
        ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2024-01-02T03:04:05.123Z"),
        ("EEE, d MMM yy h:mm a", "Tue, 2 Jan 24 3:04 AM"),
        ("EEEE MMMM", "Tuesday January"),
        ("dd/MM/yyyy HH:mm:ss.SS", "02/01/2024 03:04:05.12"),
        ("Z x xxx O", "+0000 +00 +00:00 GMT"),
        ("D w Q QQQ", "2 1 1 Q1"),
        ("''yyyy'' 'o''clock'", "'2024' o'clock"),
        ("[yyyy]", "2024"),
    ],
)
def test_date_formats(fmt: str, expected: str) -> None:
    assert render("{{ d | date(fmt) }}", {"d": MOMENT, "fmt": fmt}) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ '2024-01-02T10:00:00+02:00' | date('HH:mm XXX') }}", "08:00 Z"),
        ("{{ '2024-07-01T10:00:00Z' | date('HH:mm XXX', timeZone='Europe/Paris') }}", "12:00 +02:00"),
        (
            "{{ '2024-07-01T10:00:00Z' | date('HH:mm VV z', timeZone='America/New_York') }}",
            "06:00 America/New_York EDT",
        ),
        ("{{ '2024-07-01T10:00:00' | date('HH:mm XXX', timeZone='+05:30') }}", "10:00 +05:30"),
        ("{{ '2024-07-01' | date('iso') }}", "2024-07-01T00:00:00.000000Z"),
        ("{{ 1700000000 | date('yyyy-MM-dd HH:mm:ss') }}", "2023-11-14 22:13:20"),
        (
            "{{ '02/01/2024 13:45' | date('iso_sec', existingFormat='dd/MM/yyyy HH:mm') }}",
            "2024-01-02T13:45:00Z",
        ),
        ("{{ '20240102' | date('yyyy-MM-dd', existingFormat='yyyyMMdd') }}", "2024-01-02"),
        ("{{ 'Jan 5, 2024 3:04 PM' | date('HH:mm', existingFormat='MMM d, yyyy h:mm a') }}", "15:04"),
        # Named formats read as well as print (Java's DateTimeFormatter.RFC_1123_DATE_TIME).
        (
            "{{ 'Tue, 3 Jun 2008 11:05:30 GMT' | date('iso_sec', existingFormat='rfc_1123_date_time') }}",
            "2008-06-03T11:05:30Z",
        ),
        (
            "{{ '3 Jun 2008 11:05:30 +0200' | date('rfc_1123_date_time', "
            "existingFormat='rfc_1123_date_time') }}",
            "Tue, 3 Jun 2008 09:05:30 GMT",
        ),
        ("{{ '2024-01-31T10:00:00Z' | dateAdd(1, 'MONTHS', 'yyyy-MM-dd') }}", "2024-02-29"),
        ("{{ '2024-01-01T00:00:00Z' | dateAdd(-1, 'DAYS', 'yyyy-MM-dd') }}", "2023-12-31"),
        ("{{ '2024-01-01T00:00:00Z' | dateAdd(90, 'MINUTES', 'HH:mm') }}", "01:30"),
        ("{{ '2024-01-01T00:00:00Z' | dateAdd(2, 'WEEKS', 'yyyy-MM-dd') }}", "2024-01-15"),
        ("{{ '2024-01-01T00:00:00Z' | dateAdd(1, 'YEARS', 'yyyy') }}", "2025"),
        ("{{ '2024-01-01T00:00:00Z' | timestamp }}", "1704067200"),
        ("{{ '2024-01-01T00:00:00.5Z' | timestampMilli }}", "1704067200500"),
        ("{{ '2024-01-01T00:00:00.5Z' | timestampMicro }}", "1704067200500000"),
        ("{{ '2024-01-01T00:00:00Z' | timestampNano }}", "1704067200000000000"),
        ("{{ null | date('yyyy') }}|", "|"),
    ],
)
def test_date_filters(template: str, expected: str) -> None:
    assert render(template) == expected


def test_date_add_keeps_wall_clock_time_across_daylight_saving() -> None:
    paris = zone_of("Europe/Paris")
    start = to_datetime("2024-03-30T10:00:00", paris)
    assert add_to_date(start, 1, "DAYS").isoformat() == "2024-03-31T10:00:00+02:00"
    assert add_to_date(start, 24, "HOURS").isoformat() == "2024-03-31T11:00:00+02:00"
    assert format_date(datetime(2024, 3, 30, 12, tzinfo=UTC), "HH:mm", "Europe/Paris") == "13:00"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 'x' | date('yyyy') }}", "could not be parsed"),
        ("{{ 'now' | date('yyyy', timeZone='Mars/Base') }}", "Unknown time-zone ID: Mars/Base"),
        ("{{ '2024-01-01' | date('yyyy-bb') }}", "Unknown pattern letter: b"),
        ("{{ '2024-01-01' | dateAdd(1, 'FORTNIGHTS') }}", "Unknown unit 'FORTNIGHTS'"),
    ],
)
def test_bad_dates_are_reported(template: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        render(template)


def test_javadate_rejects_malformed_patterns() -> None:
    with pytest.raises(DateError, match="incomplete string literal"):
        format_date(MOMENT, "yyyy 'open")
    with pytest.raises(DateError, match="reserved character"):
        format_date(MOMENT, "yyyy#")


# ---------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "context", "message"),
    [
        ("{{inputs.invalid}}", {}, "Unable to find `inputs` used in the expression `{{inputs.invalid}}`"),
        ("{{missingVar}}", {}, "Unable to find `missingVar` used in the expression `{{missingVar}}`"),
        (
            "{{ outputs.notexists == 2 }}",
            {"outputs": {}},
            "Unable to find `notexists` used in the expression `{{ outputs.notexists == 2 }}`",
        ),
        (
            "{{ taskrun.attemptsCount == 3 ? 'ok' : ko }}",
            {"taskrun": {"attemptsCount": 1}},
            "Unable to find `ko` used in the expression `{{ taskrun.attemptsCount == 3 ? 'ok' : ko }}`",
        ),
        (
            "{{ outputs.a.b.c }}",
            {"outputs": {}},
            "Unable to find `a` used in the expression `{{ outputs.a.b.c }}`",
        ),
        ("{{ items[5] }}", {"items": [1]}, "Unable to find `5` used in the expression `{{ items[5] }}`"),
    ],
)
def test_undefined_variables_use_kestra_message(template: str, context: dict[str, Any], message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        render(template, context)
    assert str(info.value) == message
    assert not isinstance(info.value, ExpressionSecurityError)


@pytest.mark.parametrize(
    "template",
    [
        "{% for x in missing %}{% endfor %}",
        "{% if missing %}{% endif %}",
        "{{ missing() }}",
        "{{ missing | upper }}",
        "{{ missing | length }}",
        "{{ missing + 1 }}",
        "{{ missing < 1 }}",
        "{{ missing ~ 'x' }}",
        "{{ missing is null }}",
        "{{ missing is empty }}",
        "{{ [missing] }}",
        "{{ numbers contains missing }}",
    ],
)
def test_undefined_values_fail_when_used(template: str) -> None:
    with pytest.raises(ExpressionError, match=r"^Unable to find `missing` used in the expression"):
        render(template, {"numbers": [1]})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ missing is defined }}", "false"),
        ("{{ missing.deep['path'].x is defined }}", "false"),
        ("{{ missing ?? 'ok' }}", "ok"),
        ("{{ missing.deep ??? 'ok' }}", "ok"),
        ("{{ missing | default('ok') }}", "ok"),
        ("{% if missing is defined and missing > 1 %}x{% else %}ok{% endif %}", "ok"),
        ("{{ false ? missing : 'ok' }}", "ok"),
    ],
)
def test_undefined_values_are_fine_when_guarded(template: str, expected: str) -> None:
    assert render(template) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ 1 + }}", "Invalid expression `{{ 1 + }}`: Unexpected end of expression (line 1)"),
        (
            "{{ a ? b }}",
            "Invalid expression `{{ a ? b }}`: Expected ':' but found end of expression (line 1)",
        ),
        ("{{ 'abc }}", "Invalid expression `{{ 'abc }}`: Unclosed string literal (line 1)"),
        ("{{ x | nofilter }}", "Invalid expression `{{ x | nofilter }}`: Unknown filter 'nofilter' (line 1)"),
        ("{{ x is nothing }}", "Invalid expression `{{ x is nothing }}`: Unknown test 'nothing' (line 1)"),
        ("{% if x %}", "Invalid expression `{% if x %}`: Unclosed 'if' tag (line 1)"),
        ("{% endfor %}", "Invalid expression `{% endfor %}`: Unexpected 'endfor' tag (line 1)"),
        ("{{ }}", "Invalid expression `{{ }}`: Empty expression (line 1)"),
        ("{{ x", "Invalid expression `{{ x`: Unexpected end of template, expecting '}}' (line 1)"),
        ("{{ (1 }}", 'Invalid expression `{{ (1 }}`: Unclosed "(" (line 1)'),
        (
            "{% include 'x' %}",
            "Invalid expression `{% include 'x' %}`: The 'include' tag is not supported (line 1)",
        ),
        ("{% foo %}", "Invalid expression `{% foo %}`: Unknown tag 'foo' (line 1)"),
        (
            "a\nb {{ ok }}\n\n{{ a b }}",
            "Invalid expression `a\nb {{ ok }}\n\n{{ a b }}`: Unexpected 'b' (line 4)",
        ),
        ("{% if a %}{% else %}{% elseif b %}{% endif %}", "Unexpected 'elseif' tag after 'else' (line 1)"),
    ],
)
def test_syntax_errors(template: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        render(template, {"x": 1, "a": 1, "b": 2, "ok": 1})
    assert str(info.value).endswith(message)


def test_error_messages_quote_at_most_200_characters_of_the_template() -> None:
    template = "{{ missing }}" + "x" * 500
    with pytest.raises(ExpressionError) as info:
        render(template)
    assert str(info.value) == f"Unable to find `missing` used in the expression `{template[:200]}...`"


def test_runtime_failures_are_expression_errors() -> None:
    for template, message in [
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ 'x' | fromJson }}", "invalid JSON"),
        ("{{ 'x' | jq('.[') }}", "invalid jq expression"),
        ("{{ 'abc' | number }}", "'abc' is not a valid number"),
        ("{{ 1 < 'a' }}", "not supported"),
        ("{{ {} | merge([1]) }}", "cannot merge"),
    ]:
        with pytest.raises(ExpressionError, match=re.escape(message)):
            render(template)


# ---------------------------------------------------------------------------------------------------------
# Truthiness
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "truth"),
    [
        (None, False),
        ("", False),
        ("   ", False),
        ("false", False),
        ("FALSE", False),
        (" False ", False),
        ("0", False),
        ("-0", False),
        (" 0 ", False),
        ("true", True),
        ("1", True),
        ("no", True),
        ("0.0", True),
        ("null", True),
        ("anything", True),
    ],
)
def test_truthiness(text: str | None, truth: bool) -> None:
    assert is_truthy(text) is truth


def test_renderer_is_truthy_renders_first(renderer: Renderer) -> None:
    assert renderer.is_truthy("{{ inputs.n > 2 }}", CTX) is True
    assert renderer.is_truthy("{{ inputs.n > 5 }}", CTX) is False
    assert renderer.is_truthy("{{ inputs.nothing }}", CTX) is False
    assert renderer.is_truthy("{{ 0 }}", CTX) is False
    assert renderer.is_truthy("true", CTX) is True
    with pytest.raises(ExpressionError, match="Unable to find `notexists`"):
        renderer.is_truthy("{{ outputs.notexists == 2 }}", {"outputs": {}})


# ---------------------------------------------------------------------------------------------------------
# Sandbox
# ---------------------------------------------------------------------------------------------------------

SANDBOX_PAYLOADS = [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ items.__class__.__base__.__subclasses__() }}",
    "{{ kv.__globals__ }}",
    "{{ kv.__code__ }}",
    "{{ items|attr('__globals__') }}",
    "{{ items|map(attribute='__class__') }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ joiner() }}",
    "{{ namespace(a=1) }}",
    "{{ lipsum() }}",
    "{{ dict(a=1) }}",
    "{{ self }}",
    "{{ self._TemplateReference__context }}",
    "{{ '{0.__class__}'.format(items) }}",
    "{{ '{x.__class__}'.format_map(data) }}",
    "{{ '%s' % data }}",
    "{{ items.append(3) }}",
    "{{ items.pop() }}",
    "{{ data.update({'b': 2}) }}",
    "{{ data.clear() }}",
    "{{ data.setdefault('z', 1) }}",
    "{% set f = items.append %}",
    "{{ items['__class__'] }}",
    "{{ items['__cla' ~ 'ss__'] }}",
    "{{ data['__cl' ~ 'ass__'] }}",
    "{{ kv['__glo' ~ 'bals__'] }}",
    "{{ missing['__cla' ~ 'ss__'] }}",
    "{{ range.__call__ }}",
    "{{ loop.__class__ }}",
    "{% for x in items %}{{ loop._iterator }}{% endfor %}",
    "{{ (1).real }}",
    "{{ ''.join }}",
    "{{ __builtins__ }}",
    "{{ kv(__import__='os') }}",
    "{% set self = 1 %}",
]


@pytest.mark.parametrize("template", SANDBOX_PAYLOADS)
def test_sandbox_payloads_are_refused(template: str) -> None:
    items = [1, 2]
    data = {"a": 1}
    calls: list[Any] = []
    context = {"items": items, "data": data, "kv": lambda *a, **k: calls.append((a, k))}
    with pytest.raises(ExpressionSecurityError) as info:
        render(template, context)
    assert str(info.value).startswith("Forbidden in the expression `")
    assert items == [1, 2]
    assert data == {"a": 1}
    assert calls == []


def test_forbidden_templates_execute_nothing() -> None:
    calls: list[str] = []
    context = {"hit": lambda: calls.append("hit") or "", "items": [1]}
    for template in (
        "{{ hit() }}{{ ''.__class__ }}",
        "{{ hit() }}{{ items|attr('x') }}",
        "{{ hit() }}{{ self }}",
    ):
        with pytest.raises(ExpressionSecurityError):
            render(template, context)
    assert calls == []


def test_sandbox_still_allows_reading_data() -> None:
    context = {"s": "Ab", "d": {"_id": 1, "keys": "k", "update": "u"}, "items": [1, 2, 1]}
    assert (
        render("{{ s.upper() }} {{ s.startswith('A') }} {{ 'a,b'.split(',') }}", context)
        == 'AB true ["a","b"]'
    )
    assert render("{{ d._id }} {{ d.keys }} {{ d.update }} {{ d.get('_id') }}", context) == "1 k u 1"
    assert render("{{ items.count(1) }} {{ items.index(2) }}", context) == "2 1"


def test_jinja_globals_that_kestra_lacks_are_gone_but_context_names_win() -> None:
    assert render("{{ namespace }}", {"namespace": "ns"}) == "ns"
    with pytest.raises(ExpressionSecurityError, match="`cycler` is not available"):
        render("{{ cycler('a') }}")


# ---------------------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------------------

LIMIT_PAYLOADS = [
    "{{ 'a' * 10**9 }}",
    "{{ range(10**9) | list }}",
    "{{ range(0, 10**12) }}",
    "{{ 'x' * 99999 * 99999 }}",
    "{{ 2 ** 999999999 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ 10**5000 * 10**5000 }}",
    "{{ [1, 2] * 10**8 }}",
    "{{ 0..(10**10) }}",
    "{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}",
    "{% for i in range(0, 999999) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}",
    "{{ 'ab\nc' | indent(100000000) }}",
    "{{ ('aaaa' * 1000000) | replace('a', 'bbbbbbbbbbbbbbbbbbbb') }}",
    "{% set x = 'x' * 9000000 %}{{ [x] * 1000000 }}",
    "{% set x = 'x' * 9000000 %}{{ x ~ x }}",
    "{% set x = 'x' * 9000000 %}{{ x + x }}",
    "{% set x = 'x' * 9000000 %}{{ [x, x] | join }}",
]


@pytest.mark.parametrize("template", LIMIT_PAYLOADS)
def test_limits_fail_fast(template: str) -> None:
    # Each would need gigabytes if built before the check: the limit's error means it was not built.
    with pytest.raises(ExpressionError, match=r"exceeds the limit of \d+|more than the limit of \d+"):
        render(template)


def test_output_is_capped_at_max_output_chars() -> None:
    assert render("{{ 'x' * 100 }}", max_output_chars=100) == "x" * 100
    with pytest.raises(ExpressionError, match="exceeds the limit of 100 characters"):
        render("{{ 'x' * 101 }}", max_output_chars=100)
    with pytest.raises(ExpressionError, match="the rendered text exceeds the limit of 100 characters"):
        render("{% for i in range(1, 60) %}ab{% endfor %}", max_output_chars=100)


def test_rendering_time_is_capped() -> None:
    with pytest.raises(ExpressionError, match=r"took longer than the limit of 0\.05 s"):
        render("{% for i in range(1, 900000) %}{% set h = 'abc' | sha256 %}{% endfor %}", timeout_s=0.05)


# ---------------------------------------------------------------------------------------------------------
# Caching
# ---------------------------------------------------------------------------------------------------------


def test_compiled_templates_are_cached_by_source(renderer: Renderer) -> None:
    template = "{{ inputs.name | upper }}"
    assert renderer.render(template, CTX) == "JOE"
    first = renderer.cache_info()
    assert (first.misses, first.hits, first.size) == (1, 0, 1)
    assert renderer.render(template, {"inputs": {"name": "ann"}}) == "ANN"
    second = renderer.cache_info()
    assert (second.misses, second.hits, second.size) == (1, 1, 1)


def test_cache_is_bounded_and_least_recently_used_entries_go() -> None:
    renderer = Renderer(cache_size=2)
    renderer.render("{{ 1 }}", {})
    renderer.render("{{ 2 }}", {})
    renderer.render("{{ 1 }}", {})  # refresh 1
    renderer.render("{{ 3 }}", {})  # evicts 2
    assert renderer.cache_info().size == 2
    misses = renderer.cache_info().misses
    renderer.render("{{ 1 }}", {})
    assert renderer.cache_info().misses == misses
    renderer.render("{{ 2 }}", {})
    assert renderer.cache_info().misses == misses + 1


def test_invalid_templates_are_cached_too(renderer: Renderer) -> None:
    for _ in range(3):
        with pytest.raises(ExpressionError, match="Unexpected end of expression"):
            renderer.render("{{ 1 + }}", {})
    assert renderer.cache_info().misses == 1


def test_validate_checks_syntax_without_rendering(renderer: Renderer) -> None:
    renderer.validate("{{ whatever.is.undefined }}")
    renderer.validate("no template")
    with pytest.raises(ExpressionError, match="Unknown filter"):
        renderer.validate("{{ x | nope }}")
    with pytest.raises(ExpressionSecurityError):
        renderer.validate("{{ x.__class__ }}")


def test_a_repeated_render_uses_the_cached_template(renderer: Renderer) -> None:
    template = "{% for part in [task.id, taskrun.startDate] %}{{ part }} {% endfor %}"
    context = {"task": {"id": "t"}, "taskrun": {"startDate": "2024-01-01T00:00:00Z"}}
    renderer.render(template, context)
    first = renderer.cache_info()
    runs = 2000
    for _ in range(runs):
        assert renderer.render(template, context) == "t 2024-01-01T00:00:00Z "
    after = renderer.cache_info()
    assert (after.hits - first.hits, after.misses - first.misses) == (runs, 0)


def test_renderer_is_thread_safe(renderer: Renderer) -> None:
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for round_ in range(200):
                text = renderer.render(
                    "{{ a }}-{{ b ?? 'x' }}-{% for i in 1..2 %}{{ i }}{% endfor %}", {"a": index}
                )
                assert text == f"{index}-x-12", (text, round_)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_renders_do_not_share_state_between_calls(renderer: Renderer) -> None:
    # Iterations are counted per render, so many medium loops in a row are fine.
    template = "{% for i in range(1, 600000) %}{% endfor %}done"
    assert renderer.render(template, {}) == "done"
    assert renderer.render(template, {}) == "done"
