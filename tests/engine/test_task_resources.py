"""What each attempt's programs used: CPU time and peak memory, from the kernel, per process tree.

Real programs allocate real memory and burn real CPU; the figures are checked against what they did
(at least what they allocated or burnt, never wildly more), on the spawned path, the forkserver path
and for an orphan the engine adopts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.engine.helpers import flow, one_run, run, run_flow, running_engine
from tiercel.engine.model import Attempt, Execution, State, StateType
from tiercel.engine.model.resources import CPU_TIME_METRIC, PEAK_MEMORY_METRIC, ResourceUsage
from tiercel.engine.processes.peaks import resident_peak

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="figures read from Linux /proc")

MIB = 1024 * 1024
# A loop that keeps a CPU busy for about a fifth of a second.
BURN = "sum(range(4_000_000))"


def usage_of(execution: Execution, task_id: str) -> ResourceUsage:
    usage = one_run(execution, task_id).attempts[-1].usage
    assert usage is not None, f"`{task_id}` has no figures"
    return usage


def test_cpu_time_is_shown_in_at_most_six_characters() -> None:
    shown = [
        ResourceUsage(seconds, None).cpu_text for seconds in (0.004, 12.34, 125, 6000, 3600 * 99.9, 10**6)
    ]
    assert shown == ["0.00s", "12.3s", "2m05s", "1h40m", "99h54m", "277h"]
    assert all(len(text) <= 6 for text in shown)


def test_figures_add_up_cpu_and_keep_the_larger_peak() -> None:
    one, other = ResourceUsage(0.25, 10 * MIB), ResourceUsage(0.5, None)
    assert one + other == ResourceUsage(0.75, 10 * MIB)
    assert (other + ResourceUsage(0.0, 3 * MIB)).with_peak(None) == ResourceUsage(0.5, 3 * MIB)
    assert ResourceUsage(1.0, 5 * MIB).with_peak(7 * MIB).peak_memory == 7 * MIB
    attempt = Attempt(State.new(StateType.SUCCESS), one)
    assert Attempt.from_json(attempt.to_json()).usage == one
    assert Attempt.from_json(attempt.to_json()) == attempt


async def test_a_spawned_program_reports_its_peak_and_cpu_beyond_the_engines_own_size(tmp_path: Path) -> None:
    # More than the test process holds, so the kernel's figure is the program's own.
    size = (resident_peak("self") or 0) + 150 * MIB
    source = flow(
        f"""
        tasks:
          - id: big
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - {sys.executable} -c "x = bytearray({size}); {BURN}"
          - id: quiet
            type: io.kestra.plugin.core.log.Log
            message: no program
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is StateType.SUCCESS
    big = usage_of(execution, "big")
    assert big.peak_memory is not None and size <= big.peak_memory < size + 100 * MIB
    assert 0.05 < big.cpu_seconds < 30
    assert one_run(execution, "quiet").attempts[-1].usage is None


async def test_a_small_program_is_sampled_while_it_runs_not_sized_as_the_engine(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: small
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - sleep 0.5
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    small = usage_of(execution, "small")
    engine_size = resident_peak("self") or 0
    # /bin/sh and sleep hold a few MiB: nothing like the engine that started them.
    assert small.peak_memory is not None and 0 < small.peak_memory < min(engine_size, 32 * MIB)
    assert small.cpu_seconds < 0.5


async def test_a_python_task_forked_from_the_warm_interpreter_reports_its_figures(tmp_path: Path) -> None:
    source = flow(
        f"""
        tasks:
          - id: py
            type: io.kestra.plugin.scripts.python.Script
            script: |
              import time
              x = bytearray({200 * MIB})
              {BURN}
              time.sleep(0.3)  # seen by the sampler too, should the task be spawned after all
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    py = usage_of(execution, "py")
    assert py.peak_memory is not None and 200 * MIB <= py.peak_memory < 300 * MIB
    assert py.cpu_seconds > 0.05


async def test_an_orphan_the_engine_adopts_counts_for_the_task_that_started_it(tmp_path: Path) -> None:
    # The burner is left behind by a subshell that exits at once: the engine (the subreaper) waits for it.
    burner = f"{sys.executable} -c \"{BURN}; {BURN}; open('done', 'w')\""
    source = flow(
        f"""
        tasks:
          - id: orphan
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - ( {burner} & )
              - while [ ! -f done ]; do sleep 0.05; done; sleep 0.2
        """
    )
    execution, _ = await run_flow(tmp_path, source)
    assert execution.state.current is StateType.SUCCESS
    assert usage_of(execution, "orphan").cpu_seconds > 0.1


async def test_the_figures_are_metrics_of_the_task_run(tmp_path: Path) -> None:
    source = flow(
        f"""
        tasks:
          - id: big
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - {sys.executable} -c "x = bytearray({(resident_peak("self") or 0) + 100 * MIB})"
        """
    )
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "ns", "f")
        usage = usage_of(execution, "big")
        metrics = {entry.name: entry for entry in await engine.store.metrics(execution.id)}
    assert metrics[CPU_TIME_METRIC].type == "timer"
    assert metrics[CPU_TIME_METRIC].value == pytest.approx(usage.cpu_seconds * 1000)
    assert metrics[PEAK_MEMORY_METRIC].value == usage.peak_memory
