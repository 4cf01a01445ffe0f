"""Flow tests in Kestra's unit-test format (`tiercel test`): test files read and checked (suites),
fixtures put in place of tasks (fixtures), assertions (assertions), the cases run in a throwaway engine
(runner), and the last results of each flow kept for the dashboard (results)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..flows.catalog import is_test_file
from ..parser import FlowError, FlowParseError
from .results import RESULTS_FILE, FlowTestSummary, load_summaries, save_results
from .runner import ERROR, FAILED, PASSED, SKIPPED, AssertionResult, CaseResult, is_passing, run_suites
from .suites import TestCase, TestSuite, read_suite

__all__ = [
    "ERROR",
    "FAILED",
    "PASSED",
    "RESULTS_FILE",
    "SKIPPED",
    "AssertionResult",
    "CaseResult",
    "FlowTestSummary",
    "TestCase",
    "TestSuite",
    "find_suites",
    "is_passing",
    "is_test_file",
    "load_summaries",
    "read_suite",
    "run_suites",
    "save_results",
]


def find_suites(paths: Iterable[Path]) -> tuple[list[TestSuite], list[FlowError]]:
    """The test files under `paths` (files, or folders searched for YAML files with `testCases`),
    read, and the problems of those that could not be."""
    suites: list[TestSuite] = []
    problems: list[FlowError] = []
    for path in paths:
        files = [path] if path.is_file() else sorted(
            found for pattern in ("*.yml", "*.yaml") for found in path.rglob(pattern)
            if not any(part.startswith(".") for part in found.relative_to(path).parts)
        )  # fmt: skip
        for file in files:
            if path.is_file() or is_test_file(file):
                try:
                    suites.append(read_suite(file))
                except FlowParseError as error:
                    problems.extend(error.errors)
    return suites, problems
