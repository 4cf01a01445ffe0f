"""The bench workloads written for Dagster as its users write them: ops in a job, executed in process.

    bench/.venv-dagster/bin/python bench/peers/dagster_jobs.py WORKLOAD

The instance is the persistent one under DAGSTER_HOME (SQLite run and event-log storage), so every
step event and log line is stored, as Tiercel stores them. The run id is printed on stdout.
"""

import subprocess
import sys
from collections.abc import Callable

from dagster import DagsterInstance, DynamicOut, DynamicOutput, In, JobDefinition, OpExecutionContext, job, op


@op
def only() -> str:
    return "done"


def make_step(index: int) -> Callable[..., str]:
    if index == 0:

        @op(name="t0")
        def first() -> str:
            return "0"

        return first

    @op(name=f"t{index}", ins={"previous": In(str)})
    def step(previous: str) -> str:
        return f"{previous}-{index}"

    return step


STEPS = [make_step(index) for index in range(100)]


@op(out=DynamicOut(int))
def fan_out() -> object:
    for value in range(1000):
        yield DynamicOutput(value, mapping_key=str(value))


@op
def item(value: int) -> int:
    return value


@op
def collect(values: list[int]) -> int:
    return len(values)


def make_shell(index: int) -> Callable[..., str]:
    @op(name=f"s{index}")
    def shell() -> str:
        return subprocess.run(["sh", "-c", "echo hi"], capture_output=True, text=True, check=True).stdout

    return shell


SHELLS = [make_shell(index) for index in range(20)]


@op
def printer(context: OpExecutionContext) -> None:
    for number in range(1, 100_001):
        context.log.info(str(number))


def fibo(n: int) -> int:
    return n if n <= 1 else fibo(n - 1) + fibo(n - 2)


@op(out=DynamicOut(int))
def iterations() -> object:
    for value in range(40):
        yield DynamicOutput(value, mapping_key=str(value))


@op
def python(value: int) -> int:
    return fibo(10)


@job
def empty() -> None:
    only()


@job
def seq100() -> None:
    value = STEPS[0]()
    for step in STEPS[1:]:
        value = step(value)


@job
def fan1000() -> None:
    collect(fan_out().map(item).collect())


@job
def shell20() -> None:
    for shell in SHELLS:
        shell()


@job
def logs100k() -> None:
    printer()


@job
def python40() -> None:
    iterations().map(python)  # the in-process executor runs one step at a time


JOBS: dict[str, JobDefinition] = {j.name: j for j in (empty, seq100, fan1000, shell20, logs100k, python40)}


if __name__ == "__main__":
    with DagsterInstance.get() as instance:
        result = JOBS[sys.argv[1]].execute_in_process(instance=instance, raise_on_error=False)
    print(f"run_id={result.run_id}")
    print(f"success={result.success}")
    sys.exit(0 if result.success else 1)
