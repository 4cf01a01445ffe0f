"""A Process runner's `memory` and `cpu` (the founding article's, in Kubernetes notation) hold a task's
programs: in a cgroup of their own where one can be made, else by rlimits and a lower priority.

The programs look at themselves (their cgroup's files, their rlimit, their niceness) and allocate
real memory; the cgroup cases run where this machine lets the engine make cgroups.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.engine.helpers import flow, logs_of, messages, one_run, run_flow, running_engine
from tests.waiting import until
from tiercel.engine.model import StateType
from tiercel.engine.parser import FlowParseError, parse_flow
from tiercel.engine.processes.confinement import CGROUP_ENV, confine
from tiercel.engine.processes.limits import LimitError, ResourceLimits, parse_cpu, parse_memory

MIB = 1 << 20


def cgroups_here() -> bool:
    confinement = confine(ResourceLimits(memory=64 * MIB, cpu=0.5, memory_text="64Mi", cpu_text="500m"))
    try:
        return "cgroup v" in confinement.description
    finally:
        confinement.close()


needs_cgroups = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not cgroups_here(), reason="no cgroup can be made here"
)


def limited(limits: str, command: str, task_type: str = "io.kestra.plugin.scripts.shell.Commands") -> str:
    return flow(
        f"""
        tasks:
          - id: t
            type: {task_type}
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
              {limits}
            commands:
              - {command}
        """
    )


@pytest.mark.parametrize(
    ("text", "size"),
    [("512Mi", 512 * MIB), ("1Gi", 1 << 30), ("500M", 500_000_000), ("2G", 2 * 10**9), ("1.5Gi", 3 << 29)],
)
def test_memory_is_read_in_kubernetes_notation(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    ("text", "cores"), [("250m", 0.25), ("2", 2.0), ("0.5", 0.5), (4, 4.0), ("1500m", 1.5)]
)
def test_cpu_is_read_in_cores_or_millicores(text: str | int, cores: float) -> None:
    assert parse_cpu(text) == cores


@pytest.mark.parametrize(
    ("kind", "value", "reason"),
    [
        ("memory", "lots", "is not a quantity"),
        ("memory", "512Xi", "unknown unit `Xi`"),
        ("memory", "512", "too little to run a program"),
        ("memory", True, "must be a quantity"),
        ("cpu", "2 cores", "is not a quantity"),
        ("cpu", "250k", "millicores"),
        ("cpu", "0m", "less than a millicore"),
    ],
)
def test_a_wrong_limit_says_what_is_wrong(kind: str, value: object, reason: str) -> None:
    with pytest.raises(LimitError, match=re.escape(reason)):
        (parse_memory if kind == "memory" else parse_cpu)(value)


def test_a_wrong_limit_is_a_validation_error_at_its_line() -> None:
    source = limited("memory: lots\n              cpu: 250m", "echo hi")
    with pytest.raises(FlowParseError) as raised:
        parse_flow(source)
    (problem,) = [error for error in raised.value.errors if "lots" in str(error)]
    assert "memory `lots` is not a quantity" in problem.message and problem.line == 9


@needs_cgroups
async def test_a_task_over_its_memory_fails_with_the_limit_it_passed(tmp_path: Path) -> None:
    hog = f'{sys.executable} -c "x = [bytearray({16 * MIB}) for _ in range(64)]"'
    execution, logs = await run_flow(tmp_path, limited("memory: 128Mi", hog))
    assert one_run(execution, "t").state.current is StateType.FAILED
    said = messages(logs)
    assert "memory limit exceeded (128Mi)" in said
    assert any("enforced on all the task's processes together by cgroup" in line for line in said)


@needs_cgroups
async def test_the_programs_run_in_a_cgroup_with_the_limits_which_goes_with_the_task(tmp_path: Path) -> None:
    source = flow(
        f"""
        tasks:
          - id: t
            type: io.kestra.plugin.scripts.python.Script
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
              memory: 256Mi
              cpu: 250m
            script: |
              {CGROUP_PROBE}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is StateType.SUCCESS, messages(logs)
    seen = dict(line.split("=", 1) for line in messages(logs) if line.startswith(("memory=", "cpu=")))
    assert int(seen["memory"]) == 256 * MIB
    assert seen["cpu"] in ("25000 100000", "25000/100000")
    folders = re.findall(FOLDER, next(m for m in messages(logs) if "cgroup v" in m))
    assert folders and not any(Path(folder).exists() for folder in folders)


# Prints the memory limit and CPU quota of the cgroup the program runs in (v1 or v2), on one line
# of Python (it is put into a YAML block as is).
CGROUP_PROBE = "; ".join(
    [
        "import pathlib",
        "lines = pathlib.Path('/proc/self/cgroup').read_text().splitlines()",
        "paths = {c: p for _, cs, p in (l.split(':', 2) for l in lines) for c in cs.split(',')}",
        "v1 = pathlib.Path('/sys/fs/cgroup/memory' + paths.get('memory', '-')) / 'memory.limit_in_bytes'",
        "cpu1 = pathlib.Path('/sys/fs/cgroup/cpu' + paths.get('cpu', '-'))",
        "v2 = pathlib.Path('/sys/fs/cgroup' + paths.get('', '-'))",
        "print('memory=' + (v1 if v1.exists() else v2 / 'memory.max').read_text().strip())",
        "quota = cpu1 / 'cpu.cfs_quota_us'",
        "period = cpu1 / 'cpu.cfs_period_us'",
        "shown = quota.read_text().strip() + '/' + period.read_text().strip() if quota.exists() else None",
        "print('cpu=' + (shown or (v2 / 'cpu.max').read_text().strip()))",
    ]
)


async def test_without_a_cgroup_each_process_gets_an_rlimit_and_a_lower_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CGROUP_ENV, "none")
    probe = (
        "import os, resource; print('data', resource.getrlimit(resource.RLIMIT_DATA)[0], 'nice', os.nice(0))"
    )
    execution, logs = await run_flow(
        tmp_path, limited("memory: 256Mi\n              cpu: 250m", f'{sys.executable} -c "{probe}"')
    )
    assert execution.state.current is StateType.SUCCESS
    said = messages(logs)
    expected_nice = max(0, min(19, round(19 * (1 - 0.25 / (os.cpu_count() or 1)))))
    assert f"data {256 * MIB} nice {expected_nice}" in said
    assert any(
        f"no cgroup can be made here ({CGROUP_ENV}=none)" in line and "RLIMIT_DATA" in line for line in said
    )


async def test_without_a_cgroup_an_allocation_past_the_limit_fails_in_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CGROUP_ENV, "none")
    hog = f'{sys.executable} -c "x = bytearray({512 * MIB})"'
    execution, logs = await run_flow(tmp_path, limited("memory: 256Mi", hog))
    assert one_run(execution, "t").state.current is StateType.FAILED
    assert any("MemoryError" in line for line in messages(logs))


async def test_an_expression_limit_is_checked_when_the_task_runs(tmp_path: Path) -> None:
    source = flow(
        """
        inputs:
          - id: size
            type: STRING
            defaults: plenty
        tasks:
          - id: t
            type: io.kestra.plugin.scripts.shell.Commands
            taskRunner:
              type: io.kestra.plugin.core.runner.Process
              memory: "{{ inputs.size }}"
            commands: ["echo never"]
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert one_run(execution, "t").state.current is StateType.FAILED
    assert "`taskRunner`: memory `plenty` is not a quantity such as 512Mi" in messages(logs)
    assert "never" not in messages(logs)


@needs_cgroups
async def test_a_killed_task_leaves_neither_processes_nor_its_cgroup(tmp_path: Path) -> None:
    source = limited("memory: 128Mi", "sleep 60")
    async with running_engine(tmp_path, source) as engine:
        execution_id = await engine.trigger("ns", "f")

        async def cgroup_named() -> list[str]:
            await engine.flush_logs()
            said = [entry.message for entry in await logs_of(engine, execution_id)]
            return [folder for line in said if "cgroup v" in line for folder in re.findall(FOLDER, line)]

        folders = await until(cgroup_named, what="the task's cgroup in its log")
        assert all(Path(folder).is_dir() for folder in folders)
        await until(lambda: any(p.read_text().split() for p in Path(folders[0]).glob("cgroup.procs")))
        await engine.kill(execution_id)
        ended = await engine.wait(execution_id)
    assert ended.state.current is StateType.KILLED
    assert not any(Path(folder).exists() for folder in folders)


FOLDER = r"(/\S+/tiercel-[0-9a-f]+)"


def test_a_named_cgroup_that_cannot_hold_the_limits_says_why_and_rlimits_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = ResourceLimits(memory=64 * MIB, memory_text="64Mi")
    monkeypatch.setenv(CGROUP_ENV, str(tmp_path))
    assert (
        f"no cgroup can be made here ({CGROUP_ENV}={tmp_path} is not a cgroup)" in confine(limits).description
    )
    # A cgroup v2 folder whose children cannot have the memory controller.
    folder = tmp_path / "v2"
    folder.mkdir()
    (folder / "cgroup.procs").write_text("")
    (folder / "cgroup.subtree_control").write_text("cpu io\n")
    monkeypatch.setenv(CGROUP_ENV, str(folder))
    described = confine(limits).description
    assert f"({folder} does not delegate the memory controller)" in described and "RLIMIT_DATA" in described
