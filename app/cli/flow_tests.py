"""`tiercel test`: run flow tests (Kestra's unit-test format) and report as pytest does.

Each test case runs its flow once in a throwaway engine (a copy of the flows folder and a database
of its own, removed afterwards), with its fixtures, then checks its assertions. A line per case as
it ends, the failures in detail, a summary; the exit code is 0 when every case passed (or was
skipped), 1 otherwise, 2 when no test was found. The results per flow are kept beside the database
(`test-results.json`) for the dashboard.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tiercel.engine import is_url, visible

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_db_option,
    add_flows_option,
    add_json_option,
    command,
    flows_folder,
    resolve_db,
    say,
    stop_requested,
)

if TYPE_CHECKING:
    from tiercel.engine import CaseResult

OUTCOMES = ("PASSED", "FAILED", "ERROR", "SKIPPED")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "test",
        "run flow tests (test files with `testCases`: fixtures and assertions)",
        ["tiercel test", "tiercel test tests/orders.yml", "tiercel test --flows flows tests/ --json"],
    )
    add_flows_option(parser)
    add_db_option(parser)
    add_json_option(parser, "every case's result")
    parser.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS",
        help="how long one case's execution may run before it is killed (default: 300)",
    )  # fmt: skip
    parser.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH",
        help="test files, or folders searched for them (default: the flows folder)",
    )  # fmt: skip


async def cmd_test(args: argparse.Namespace) -> int:
    from tiercel.engine import find_suites, is_passing, run_suites, save_results

    flows = flows_folder(args.flows)
    paths = args.paths or [flows]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        say(f"tiercel: no such file or folder: {', '.join(missing)}", err=True)
        return EXIT_USAGE
    suites, problems = find_suites(paths)
    for problem in problems:
        say(f"error: {visible(str(problem))}", err=True)
    if not suites:
        if not problems:
            say(
                f"tiercel: no test file (a YAML file with `testCases`) under {', '.join(map(str, paths))}",
                err=True,
            )
        return EXIT_USAGE if not problems else EXIT_FAILED
    started = time.monotonic()

    def heard(result: CaseResult) -> None:
        if not args.json:
            where = f"{result.suite.path}::{result.suite.id}::{result.case.id}"
            say(f"{visible(where)} {result.outcome} ({result.seconds:.2f} s)")

    # Ctrl-C or SIGTERM stops the run cleanly: the case under way is killed and the throwaway
    # engine, its processes and its folder go, as at the end of a run.
    stopping = stop_requested()
    results = await run_suites(suites, flows, timeout=args.timeout, on_result=heard, stopping=stopping)
    if stopping.is_set():
        say("tiercel: interrupted: the tests did not all run", err=True)
        return EXIT_FAILED
    db = resolve_db(args.db)
    if not is_url(db):
        save_results(Path(db).parent, results)
    if args.json:
        say(json.dumps([result.to_json() for result in results], indent=2))
    else:
        _report(results, time.monotonic() - started)
    return EXIT_OK if is_passing(results) and not problems else EXIT_FAILED


def _report(results: list[CaseResult], seconds: float) -> None:
    failed = [result for result in results if result.outcome in ("FAILED", "ERROR")]
    if failed:
        say("\n=== failures ===")
    for result in failed:
        line = f":{result.case.line}" if result.case.line else ""
        name = f"{result.suite.id}::{result.case.id} ({result.suite.path}{line})"
        say(f"\n--- {visible(name)} ---")
        if result.error:
            say(f"  error: {visible(result.error)}")
        if result.execution_id:
            say(f"  execution {result.execution_id} ended {result.execution_state}")
        for checked in result.assertions:
            if checked.passed:
                continue
            at = f" (line {checked.assertion.line})" if checked.assertion.line else ""
            say(f"  assertion{at}: {visible(checked.assertion.value)}")
            if checked.error:
                say(f"    error: {visible(checked.error)}")
                continue
            say(f"    actual: {'null' if checked.actual is None else visible(repr(checked.actual))}")
            for failure in checked.failures:
                say(f"    expected: {visible(failure)}")
    counts = {outcome: sum(r.outcome == outcome for r in results) for outcome in OUTCOMES}
    shown = ", ".join(
        f"{count} {outcome.lower()}{'s' if outcome == 'ERROR' and count != 1 else ''}"
        for outcome, count in counts.items()
        if count
    )
    say(f"\n=== {shown or 'no case'} in {seconds:.2f} s ===")
