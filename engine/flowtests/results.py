"""The last results of each flow's tests, kept beside the database for the dashboard to show.

One JSON file, `test-results.json` in the database's folder: per flow (`namespace.flowId`), when its
tests last ran and how each case went. A run of some flows' tests replaces those flows' entries and
keeps the others.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model import iso, utcnow
from .runner import CaseResult

RESULTS_FILE = "test-results.json"


@dataclass(frozen=True, slots=True)
class FlowTestSummary:
    """How a flow's tests went when they last ran."""

    ran_at: str
    outcomes: dict[str, int]  # PASSED, FAILED, ERROR, SKIPPED: how many cases

    @property
    def passing(self) -> bool:
        return not self.outcomes.get("FAILED") and not self.outcomes.get("ERROR")

    def described(self) -> str:
        """`2 passed, 1 failed (2026-12-07 17:56 UTC)`."""
        counts = ", ".join(f"{count} {outcome.lower()}" for outcome, count in sorted(self.outcomes.items()))
        when = self.ran_at[:16].replace("T", " ")
        return f"{counts} ({when} UTC)" if when else counts


def save_results(folder: Path, results: Sequence[CaseResult]) -> Path:
    """Record the results of the flows tested (atomically: a reader never sees half a file)."""
    path = folder / RESULTS_FILE
    recorded = _read(path)
    now = iso(utcnow())
    by_flow: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_flow.setdefault(f"{result.suite.namespace}.{result.suite.flow_id}", []).append(result.to_json())
    for flow, cases in by_flow.items():
        recorded[flow] = {"ranAt": now, "cases": cases}
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".test-results-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(recorded, out, ensure_ascii=False, indent=1)
    os.replace(temporary, path)
    return path


def load_summaries(folder: Path) -> dict[tuple[str, str], FlowTestSummary]:
    """The last test results of each flow, by (namespace, flow id); nothing when none were kept."""
    found: dict[tuple[str, str], FlowTestSummary] = {}
    for flow, entry in _read(folder / RESULTS_FILE).items():
        namespace, _, flow_id = flow.rpartition(".")
        if not isinstance(entry, dict) or not namespace:
            continue
        outcomes: dict[str, int] = {}
        for case in entry.get("cases") or ():
            if isinstance(case, dict):
                outcome = str(case.get("outcome"))
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        found[(namespace, flow_id)] = FlowTestSummary(str(entry.get("ranAt") or ""), outcomes)
    return found


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
