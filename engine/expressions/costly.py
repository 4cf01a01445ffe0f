"""Operations whose cost a template does not bound: jq programs, regular expressions, parsing, HTTP.

A jq program such as ``last(range(3e8))`` or a regular expression such as ``^(a+)+$`` can run for minutes
inside C code that no check of the render's time limit interrupts. Each such operation is a plain
function of its arguments (a :class:`Job`), so that :mod:`.offload` can run it in a worker process that it
kills at the time limit. The few calls that are provably cheap (a path-only jq program on a small
document, a regular expression without repetition or alternation) run in place.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import resource
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final, NamedTuple

import jq
import yaml

from ..ion import IonError, loads as load_ion
from .core import MAX_ITEMS, LimitExceeded, RenderFailure
from .httpjob import http_request
from .javaregex import JavaRegexError, compile_java, expand, java_replacement

__all__ = [
    "Job",
    "Outcome",
    "check_items",
    "describe",
    "is_cheap",
    "perform",
    "serve",
]

# Inputs up to this size are parsed in place; larger ones go to a worker process.
INLINE_JSON_CHARS: Final = 1_000_000
INLINE_YAML_CHARS: Final = 64_000
# A cheap jq program or regular expression runs in place on texts up to this size.
INLINE_TEXT_CHARS: Final = 256_000
INLINE_PATTERN_CHARS: Final = 64
# Address space of a worker process: a runaway program fails there, not in the engine.
WORKER_MEMORY_BYTES: Final = 2 << 30


class Job(NamedTuple):
    """One costly operation: its name in :data:`OPERATIONS` and its arguments (hashable, picklable)."""

    op: str
    args: tuple[Any, ...]


class Outcome(NamedTuple):
    """What a job gave: ``kind`` is ``ok`` (``value`` is the result), ``failure`` or ``limit`` (a message)."""

    kind: str
    value: Any


def check_items(count: int, what: str) -> None:
    """Raise :class:`LimitExceeded` when a built collection holds more than ``MAX_ITEMS`` items."""
    if count > MAX_ITEMS:
        raise LimitExceeded(f"{what} of {count} items exceeds the limit of {MAX_ITEMS} items")


# -- the operations --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _jq_program(expression: str) -> Any:
    try:
        return jq.compile(expression)
    except ValueError as exc:
        raise RenderFailure(f"invalid jq expression '{expression}': {exc}") from None


def jq_results(expression: str, text: str) -> list[Any]:
    """Every result of a jq program applied to a JSON text."""
    program = _jq_program(expression)
    results: list[Any] = []
    try:
        for result in program.input_text(text):
            results.append(result)
            check_items(len(results), "jq results")
    except ValueError as exc:
        raise RenderFailure(f"unable to apply jq '{expression}' to {text[:100]!r}: {exc}") from None
    return results


def compile_regex(pattern: str, invalid: str = "invalid regular expression") -> re.Pattern[str]:
    """A Java pattern compiled for Python (:mod:`.javaregex`), or a :class:`RenderFailure` naming it."""
    try:
        return compile_java(pattern)
    except JavaRegexError as exc:
        raise RenderFailure(f"{invalid} '{pattern}': {exc}") from None


def regex_replace(pattern: str, replacement: str, text: str, max_chars: int, kestra: bool = False) -> str:
    """Java's ``Matcher.replaceAll``: every match of ``pattern`` replaced, ``$1`` naming groups.

    ``kestra`` words an invalid pattern as Kestra's regex filters do ("Invalid regex ...").
    """
    compiled = compile_regex(pattern, "Invalid regex" if kestra else "invalid regular expression")
    try:
        parts = java_replacement(replacement, compiled)
    except JavaRegexError as exc:
        raise RenderFailure(f"invalid replacement '{replacement}': {exc}") from None
    count = sum(1 for _ in compiled.finditer(text))
    size = len(text) + count * len(replacement)
    if size > max_chars:
        raise LimitExceeded(
            f"replace result of {size} characters exceeds the limit of {max_chars} characters"
        )
    return compiled.sub(lambda match: expand(parts, match), text)


def regex_find(pattern: str, text: str) -> bool:
    """Java's ``Matcher.find``: whether some part of ``text`` matches ``pattern``."""
    return compile_regex(pattern, "Invalid regex").search(text) is not None


def regex_extract(pattern: str, text: str, group: int) -> str | None:
    """Group ``group`` of the first match of ``pattern`` in ``text`` (null without a match or a group)."""
    compiled = compile_regex(pattern, "Invalid regex")
    match = compiled.search(text)
    if match is None:
        return None
    if group > compiled.groups:
        raise RenderFailure(
            f"Group index {group} is out of bounds: the pattern has only {compiled.groups} capture group(s)."
        )
    return match.group(group)


def regex_split(pattern: str, text: str, max_parts: int) -> list[str]:
    """Java's ``String.split``: the delimiter is a regular expression; ``max_parts`` 0 means no limit."""
    compiled = compile_regex(pattern)
    parts: list[str] = []
    last = 0
    for match in compiled.finditer(text):
        if max_parts > 0 and len(parts) == max_parts - 1:
            break
        if match.end() == 0:
            continue  # Java drops the empty leading part of a zero-width match at the start
        parts.append(text[last : match.start()])
        last = match.end()
        check_items(len(parts), "split result")
    parts.append(text[last:])
    if max_parts == 0 and len(parts) > 1:
        while len(parts) > 1 and parts[-1] == "":
            parts.pop()
    return parts


def parse_json(text: str | bytes) -> Any:
    """Parse a JSON text."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise RenderFailure(f"invalid JSON: {exc}") from None


def parse_yaml(text: str) -> Any:
    """Parse a YAML text; anchors and aliases are refused (they can expand to huge values)."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise RenderFailure("YAML aliases are not allowed")
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RenderFailure(f"invalid YAML: {exc}") from None


def parse_ion(text: str) -> Any:
    """Parse the first value of an Ion text."""
    try:
        return load_ion(text)
    except IonError as exc:
        raise RenderFailure(f"Invalid ion: {exc}") from None


OPERATIONS: Final[dict[str, Callable[..., Any]]] = {
    "jq": jq_results,
    "replace": regex_replace,
    "regex_find": regex_find,
    "regex_extract": regex_extract,
    "split": regex_split,
    "json": parse_json,
    "yaml": parse_yaml,
    "ion": parse_ion,
    "http": http_request,
}


def perform(job: Job) -> Outcome:
    """Run a job here and now; failures become an :class:`Outcome` rather than an exception."""
    try:
        return Outcome("ok", OPERATIONS[job.op](*job.args))
    except LimitExceeded as exc:
        return Outcome("limit", str(exc))
    except RenderFailure as exc:
        return Outcome("failure", str(exc))
    except MemoryError:
        return Outcome("limit", f"{describe(job)} needs more memory than the limit")
    except RecursionError:
        return Outcome("failure", f"{describe(job)}: the data is nested too deeply")


def describe(job: Job) -> str:
    """The operation of a job as an error message names it."""
    if job.op == "jq":
        return f"jq '{_clip(job.args[0])}'"
    if job.op in _REGEX_OPS:
        return f"the regular expression '{_clip(job.args[0])}'"
    if job.op == "http":
        return f"the HTTP request {job.args[0]} {_clip(job.args[1])}"
    kind = {"json": "JSON", "ion": "Ion"}.get(job.op, "YAML")
    return f"parsing {kind} of {len(job.args[0])} characters"


def _clip(text: str) -> str:
    return text if len(text) <= 100 else text[:100] + "..."


# -- which calls are cheap enough to run in place ---------------------------------------------------------

# A jq program made of paths, pipes, commas and these builtins costs time linear in its input.
_JQ_LINEAR_BUILTINS: Final = frozenset(
    {"length", "keys", "keys_unsorted", "values", "first", "last", "tostring", "tonumber", "type", "not",
     "to_entries", "from_entries", "add", "reverse", "sort", "unique", "min", "max", "tojson",
     "ascii_downcase", "ascii_upcase", "empty", "null", "true", "false", "has", "floor", "ceil"}
)  # fmt: skip
_JQ_TOKEN: Final = re.compile(
    r"\s+|\.[A-Za-z_][A-Za-z0-9_]*|\.\"[^\"\\]*\"|\.(?!\.)|\[|\]|\(|\)|\?|\||,|-?\d+|\"[^\"\\]*\""
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
)
_REGEX_REPEATS: Final = frozenset("*+?{|")
_REGEX_OPS: Final = frozenset({"replace", "split", "regex_find", "regex_extract"})


@functools.lru_cache(maxsize=1024)
def _linear_jq(expression: str) -> bool:
    position = 0
    while position < len(expression):
        token = _JQ_TOKEN.match(expression, position)
        if token is None:
            return False
        name = token.group("name")
        if name is not None and name not in _JQ_LINEAR_BUILTINS:
            return False
        position = token.end()
    return True


def _linear_regex(pattern: str) -> bool:
    # Without repetition or alternation a match attempt is bounded by the pattern's length.
    return len(pattern) <= INLINE_PATTERN_CHARS and not _REGEX_REPEATS.intersection(pattern)


def is_cheap(job: Job) -> bool:
    """Whether a job is bounded by the size of its input, so that it may run without a time limit."""
    if job.op == "http":
        return False  # a server may take any time to answer
    if job.op == "jq":
        return len(job.args[1]) <= INLINE_TEXT_CHARS and _linear_jq(job.args[0])
    if job.op in _REGEX_OPS:
        text = job.args[2 if job.op == "replace" else 1]
        return len(text) <= INLINE_TEXT_CHARS and _linear_regex(job.args[0])
    if job.op in ("json", "ion"):
        return len(job.args[0]) <= INLINE_JSON_CHARS
    return len(job.args[0]) <= INLINE_YAML_CHARS


# -- the worker process -----------------------------------------------------------------------------------


def serve(conn: Connection) -> None:
    """The loop of a worker process: receive a job, send back its outcome (plain tuples), until EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = WORKER_MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(hard, WORKER_MEMORY_BYTES)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        outcome = perform(Job(*job))
        try:
            conn.send(tuple(outcome))
        except (OSError, ValueError):
            return
        except Exception as exc:  # a result that cannot be sent (too large to pickle, for instance)
            conn.send(("failure", f"{describe(Job(*job))}: {type(exc).__name__}: {exc}"))
