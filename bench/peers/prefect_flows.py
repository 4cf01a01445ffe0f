"""The bench workloads written for Prefect 3 as its users write them: @flow and @task, run locally.

    bench/.venv-prefect/bin/python bench/peers/prefect_flows.py WORKLOAD

No server is started by hand: Prefect runs its ephemeral API against the SQLite database under
PREFECT_HOME. The flow run id is printed on stdout, so that the runner can count stored log lines.
"""

from __future__ import annotations

import subprocess
import sys

from prefect import flow, task


@task
def only() -> str:
    return "done"


@task
def first() -> str:
    return "0"


@task
def step(previous: str, index: int) -> str:
    return f"{previous}-{index}"


@task
def item(value: int) -> int:
    return value


@task
def collect(values: list[int]) -> int:
    return len(values)


@task
def shell() -> str:
    return subprocess.run(["sh", "-c", "echo hi"], capture_output=True, text=True, check=True).stdout


@task(log_prints=True)
def printer(count: int) -> None:
    for number in range(1, count + 1):
        print(number)


def fibo(n: int) -> int:
    return n if n <= 1 else fibo(n - 1) + fibo(n - 2)


@task
def python(value: int) -> int:
    return fibo(10)


@flow
def empty() -> str:
    return only()


@flow
def seq100() -> str:
    value = first()
    for index in range(1, 100):
        value = step(value, index)
    return value


@flow
def fan1000() -> int:
    futures = item.map(range(1000))
    return collect(futures.result())


@flow
def shell20() -> None:
    for _ in range(20):
        shell()


@flow
def logs100k() -> None:
    printer(100_000)


@flow
def python40() -> None:
    for value in range(40):  # one at a time, as the ForEach with concurrencyLimit 1
        python(value)


FLOWS = {f.name: f for f in (empty, seq100, fan1000, shell20, logs100k, python40)}


if __name__ == "__main__":
    chosen = FLOWS[sys.argv[1]]
    state = chosen(return_state=True)
    print(f"flow_run_id={state.state_details.flow_run_id}")
    print(f"state={state.type.value}")
    sys.exit(0 if state.is_completed() else 1)
