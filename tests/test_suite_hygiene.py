"""Rules that keep the test suite quick to iterate on and steady on a busy machine.

A test waits for a condition with the one helper in tests/waiting.py, and asserts what happened
(an ordering of events, a count) rather than how long it took: a wall-clock bound in an assert
fails when the machine is busy, not when the behaviour is wrong. Hangs are caught by generous
timeouts (`until`, `asyncio.wait_for`), timings are measured in bench/.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
WAITING = TESTS / "waiting.py"

# Calls that read a clock (or time a call): the difference of two readings is a measured time.
CLOCK_CALLS = frozenset(
    {"monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "time", "time_ns", "timeit", "repeat"}
)
# Names that, by convention in this suite, hold a measured duration.
DURATION_NAME = re.compile(r"(^|_)(elapsed|took|latency|latencies|lag|lags|waited|total_seconds)($|_)")

# Asserts that knowingly bound a measured time from above, as "file::function": keep this list
# short, and say why each one is not a statement about the machine's speed.
WALL_CLOCK_EXCEPTIONS = frozenset(
    {
        # A 300-fold margin over the measured 0.6 µs: it fails only if masking a clean line starts
        # scanning it once per character or per secret pattern, whatever the machine's load.
        "tests/engine/test_secrets.py::test_masking_a_clean_log_line_is_cheap",
    }
)


def _test_files() -> Iterator[Path]:
    for path in sorted(TESTS.rglob("*.py")):
        if "__snapshots__" not in path.parts:
            yield path


def _called_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


class _Measured:
    """Which expressions of one test module hold a measured time.

    A clock reading, a name assigned from one (directly or through other such names), a call of a
    function of the module that returns one, and names such as `elapsed` or `lags`. A busy machine
    only makes measured times longer, so it is their upper bounds that fail under load.
    """

    def __init__(self, tree: ast.Module) -> None:
        self.functions: set[str] = set()
        self.names: set[str] = set()
        defs = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
        assignments: list[tuple[set[str], ast.AST]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and node.value is not None:
                assigned = node.targets if isinstance(node, ast.Assign) else [node.target]
                # `elapsed, megabytes = measure()` leaves `megabytes` alone; `elapsed` is known by its name.
                simple = [target for target in assigned if not isinstance(target, ast.Tuple)]
                assignments.append(({name for target in simple for name in _names(target)}, node.value))
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension) and isinstance(
                node.target, ast.Name
            ):
                # Only a plain loop name: `for a, b in zip(times, bounds)` taints neither.
                assignments.append(({node.target.id}, node.iter))
        changed = True
        while changed:
            changed = False
            for targets, value in assignments:
                if not targets <= self.names and self.holds(value):
                    self.names |= targets
                    changed = True
            for function in defs:
                returns = [
                    node.value for node in ast.walk(function) if isinstance(node, ast.Return) and node.value
                ]
                if function.name not in self.functions and any(self.holds(value) for value in returns):
                    self.functions.add(function.name)
                    changed = True

    def holds(self, node: ast.AST) -> bool:
        for child in ast.walk(node):
            if isinstance(child, ast.Call):
                name = _called_name(child)
                if name == "len":
                    continue
                if name in self.functions or (name in CLOCK_CALLS and not child.args and not child.keywords):
                    return True
                if name in ("timeit", "repeat") and isinstance(child.func, ast.Attribute):
                    return True
        return any(name in self.names or DURATION_NAME.search(name) for name in _names(node, skip_len=True))


def _names(node: ast.AST, skip_len: bool = False) -> Iterator[str]:
    """The names and attribute names in an expression (those inside `len(...)` skipped on request)."""
    if skip_len and isinstance(node, ast.Call) and _called_name(node) == "len":
        return
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    for child in ast.iter_child_nodes(node):
        yield from _names(child, skip_len)


def wall_clock_asserts(path: Path, root: Path = TESTS.parent) -> Iterator[tuple[str, int]]:
    """("file::function", line) of each assert that bounds a measured time from above."""
    tree = ast.parse(path.read_text(), filename=str(path))
    measured = _Measured(tree)
    relative = path.relative_to(root).as_posix()
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Assert) and _bounds_from_above(node.test, measured):
                yield f"{relative}::{function.name}", node.lineno


def _bounds_from_above(test: ast.AST, measured: _Measured) -> bool:
    for compare in ast.walk(test):
        if not isinstance(compare, ast.Compare):
            continue
        sides = [compare.left, *compare.comparators]
        for index, op in enumerate(compare.ops):
            if not isinstance(op, ast.Lt | ast.LtE | ast.Gt | ast.GtE):
                continue
            smaller, larger = sides[index : index + 2]
            if isinstance(op, ast.Gt | ast.GtE):
                smaller, larger = larger, smaller
            # A bound of HANG (tests/waiting.py) catches a hang, which no busy machine reaches.
            if measured.holds(smaller) and "HANG" not in _names(larger):
                return True
    return False


def test_until_is_defined_once_in_the_shared_waiting_helper() -> None:
    copies = [
        f"{path.relative_to(TESTS.parent)}:{node.lineno}"
        for path in _test_files()
        if path != WAITING
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in ("until", "_until")
    ]
    assert copies == [], "import `until` from tests/waiting.py instead of defining it again"


@functools.cache
def _suite_wall_clock_asserts() -> dict[str, int]:
    """Every wall-clock assert of the suite (parsed once for the tests below)."""
    return {place: line for path in _test_files() for place, line in wall_clock_asserts(path)}


def test_no_assert_compares_a_wall_clock_time() -> None:
    found = _suite_wall_clock_asserts()
    new = sorted(
        f"{place} (line {line})" for place, line in found.items() if place not in WALL_CLOCK_EXCEPTIONS
    )
    assert new == [], "assert an ordering of events or a count, not a duration; bound hangs with a timeout"


def test_every_documented_exception_still_exists() -> None:
    assert sorted(WALL_CLOCK_EXCEPTIONS - set(_suite_wall_clock_asserts())) == []


def test_the_check_finds_wall_clock_asserts(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import time\n"
        "def test_direct():\n"
        "    started = time.monotonic()\n"
        "    assert time.monotonic() - started < 0.5\n"
        "def test_through_a_name(loop):\n"
        "    started = loop.time()\n"
        "    spent = loop.time() - started\n"
        "    assert spent < 2\n"
        "def test_by_convention(took):\n"
        "    assert took <= 1.0\n"
        "def test_counts_are_fine(items):\n"
        "    assert len(items) < 3\n"
        "def test_equality_of_a_parsed_duration(seconds):\n"
        "    assert seconds == 5\n"
        "def test_a_time_of_day(dt):\n"
        "    assert dt.time(12, 0) < dt.time(13, 0)\n"
        "def test_a_lower_bound_holds_on_a_busy_machine():\n"
        "    started = time.monotonic()\n"
        "    assert time.monotonic() - started >= 0.2\n"
        "def measure():\n"
        "    started = time.monotonic()\n"
        "    return time.monotonic() - started\n"
        "def test_through_a_function():\n"
        "    assert 0.1 > measure()\n"
        "def measure_both():\n"
        "    started = time.monotonic()\n"
        "    return time.monotonic() - started, 3\n"
        "def test_a_memory_figure_beside_a_time(elapsed_too):\n"
        "    elapsed, megabytes = measure_both()\n"
        "    assert megabytes < 10\n"
        "def test_a_hang_guard():\n"
        "    assert measure() < HANG\n"
    )
    found = [place.split("::")[1] for place, _ in wall_clock_asserts(sample, root=tmp_path)]
    assert found == ["test_direct", "test_through_a_name", "test_by_convention", "test_through_a_function"]
