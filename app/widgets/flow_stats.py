"""Per flow of a namespace: the last state, how many runs, the success rate and durations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from rich.text import Text

from tiercel.engine import FlowTestSummary, visible

from .charts import RunLike, oldest_first, percentile, seconds, short_duration, success_rate
from .history_chart import when_label
from .states import state_text

COLUMNS = ("flow", "last", "runs", "ok", "p50", "p95", "last run", "tests")


class FlowRunLike(RunLike, Protocol):
    """A run that names its flow; the engine's `ExecutionSummary` is one."""

    @property
    def namespace(self) -> str: ...

    @property
    def flow_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class FlowStats:
    """One flow's figures over the runs given."""

    namespace: str
    flow_id: str
    last: RunLike
    runs: int
    ok: int
    finished: int
    p50: float | None
    p95: float | None

    def cells(
        self, namespace: str, now: datetime, tests: FlowTestSummary | None = None
    ) -> tuple[str | Text, ...]:
        """The table row: the flow named below `namespace`, its last state, counts and durations, and
        how its tests last went (passed of all cases run)."""
        name = _below(namespace, self.namespace, self.flow_id)
        rate = f"{round(100 * self.ok / self.finished)}%" if self.finished else "-"
        return (
            name,
            state_text(self.last.state),
            str(self.runs),
            rate,
            short_duration(self.p50) if self.p50 is not None else "-",
            short_duration(self.p95) if self.p95 is not None else "-",
            when_label(self.last, now),
            tests_cell(tests),
        )


def untested_cells(
    shown_namespace: str, namespace: str, flow_id: str, tests: FlowTestSummary
) -> tuple[str | Text, ...]:
    """The row of a flow with tests but no execution among those read."""
    return (_below(shown_namespace, namespace, flow_id), "-", "0", "-", "-", "-", "-", tests_cell(tests))


def _below(shown_namespace: str, namespace: str, flow_id: str) -> str:
    """A flow's name as seen from the namespace shown (`finance.close` from `acme`)."""
    name = f"{namespace}.{flow_id}"
    if shown_namespace and name.startswith(shown_namespace + "."):
        name = name[len(shown_namespace) + 1 :]
    return visible(name)


def tests_cell(tests: FlowTestSummary | None) -> str | Text:
    """`3/4` cases passed, green when none failed, red otherwise; `-` when never tested."""
    if tests is None:
        return "-"
    run = sum(count for outcome, count in tests.outcomes.items() if outcome != "SKIPPED")
    passed = tests.outcomes.get("PASSED", 0)
    return Text(f"{passed}/{run}", style="green" if tests.passing else "red")


def flow_stats(runs: Iterable[FlowRunLike], now: datetime) -> list[FlowStats]:
    """The figures of each flow among `runs`, by namespace then flow id."""
    by_flow: dict[tuple[str, str], list[FlowRunLike]] = {}
    for run in runs:
        by_flow.setdefault((run.namespace, run.flow_id), []).append(run)
    stats = []
    for (namespace, flow_id), flow_runs in sorted(by_flow.items()):
        ordered = oldest_first(flow_runs, now)
        ok, finished = success_rate(ordered)
        done = [seconds(run, now) for run in ordered if run.end_date is not None]
        stats.append(
            FlowStats(
                namespace,
                flow_id,
                ordered[-1],
                len(ordered),
                ok,
                finished,
                percentile(done, 0.5),
                percentile(done, 0.95),
            )
        )
    return stats
