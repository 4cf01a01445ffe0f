"""Servers and workers as separate processes on one PostgreSQL store: task runs go to workers through
the shared queue, once each; a worker that dies has its task runs run again elsewhere (or failed, for
tasks marked not idempotent), and its programs are killed when a worker starts again on its machine;
kills reach the worker that runs the task; workerGroup routes; a server restarting waits for what
workers still run instead of running it again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from tests.cluster.harness import Cluster, pid_alive
from tests.waiting import blocking_until, until
from tiercel.engine import Execution, StateType, connect


async def run_all(cluster: Cluster, flow_id: str, count: int) -> list[StateType]:
    async with connect(cluster.url, local=False) as engine:
        ids = [await engine.trigger("cluster", flow_id) for _ in range(count)]
        ended = await asyncio.gather(*(engine.wait(execution_id) for execution_id in ids))
    return [execution.state.current for execution in ended]


def five_tasks(side_effects: Path) -> str:
    """A flow of five script tasks, each adding a line to `side_effects`."""
    tasks = "".join(
        f"""  - id: t{n}
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ['echo "{{{{ execution.id }}}} t{n}" >> {side_effects}']
"""
        for n in range(5)
    )
    return f"id: five\nnamespace: cluster\ntasks:\n{tasks}"


@pytest.mark.slow
def test_two_workers_run_every_task_run_once(cluster: Cluster, tmp_path: Path) -> None:
    side_effects = tmp_path / "side-effects.txt"
    cluster.flow("five", five_tasks(side_effects))
    cluster.server()
    for _ in range(2):
        cluster.worker("--concurrency", "4")
    states = asyncio.run(run_all(cluster, "five", 40))
    assert states == [StateType.SUCCESS] * 40
    lines = side_effects.read_text().splitlines()
    assert len(lines) == 200
    assert len(set(lines)) == 200
    assert cluster.sql("SELECT count(*) FROM worker_jobs") == [(0,)]
    assert cluster.sql("SELECT count(*) FROM worker_results") == [(0,)]
    assert cluster.sql("SELECT count(*) FROM workers") == [(2,)]


def slow_first_time(tmp_path: Path, *, labels: str = "") -> str:
    """A flow whose task records its pid, then sleeps long the first time it runs, not after."""
    marker, pids = tmp_path / "ran-once", tmp_path / "pids.txt"
    script = f"echo $$ >> {pids}; if [ -e {marker} ]; then echo again; else touch {marker}; sleep 300; fi"
    return f"""
id: slow
namespace: cluster
{labels}
tasks:
  - id: s
    type: io.kestra.plugin.scripts.shell.Script
    script: "{script}"
"""


async def start_one(cluster: Cluster, flow_id: str) -> str:
    async with connect(cluster.url, local=False) as engine:
        return await engine.trigger("cluster", flow_id)


async def wait_for(cluster: Cluster, execution_id: str) -> Execution:
    async with connect(cluster.url, local=False) as engine:
        return await engine.wait(execution_id)


def run_to_end(cluster: Cluster, flow_id: str) -> Execution:
    """Start an execution of the flow through the cluster's server and wait for its end."""
    return asyncio.run(wait_for(cluster, asyncio.run(start_one(cluster, flow_id))))


def claimed_by(cluster: Cluster) -> int:
    """The pid of the worker that claimed the one job there is."""
    found: list[tuple[int]] = []

    def claimed() -> bool:
        found[:] = cluster.sql("SELECT w.pid FROM worker_jobs AS j JOIN workers AS w ON w.id = j.worker_id")
        return bool(found)

    asyncio.run(until(claimed, what="a worker to claim the job"))
    return found[0][0]


def started(pids: Path, count: int) -> list[int]:
    asyncio.run(until(lambda: pids.exists() and len(pids.read_text().split()) >= count))
    return [int(pid) for pid in pids.read_text().split()]


@pytest.mark.slow
def test_a_dead_workers_task_runs_again_on_another_and_its_program_is_killed_when_one_starts_there(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.flow("slow", slow_first_time(tmp_path))
    cluster.server()
    cluster.worker()
    cluster.worker()
    execution_id = asyncio.run(start_one(cluster, "slow"))
    [first] = started(tmp_path / "pids.txt", 1)
    os.kill(claimed_by(cluster), signal.SIGKILL)
    ended = asyncio.run(wait_for(cluster, execution_id))
    assert ended.state.current is StateType.SUCCESS
    [run] = ended.task_runs
    assert [attempt.state.current for attempt in run.attempts] == [StateType.FAILED, StateType.SUCCESS]
    assert pid_alive(first)  # the dead worker's program outlived it...
    cluster.worker()
    # ...until a worker started on its machine: it signals the group at start, which then ends.
    blocking_until(lambda: not pid_alive(first), what="the dead worker's program to end")


@pytest.mark.slow
def test_a_dead_workers_task_marked_not_idempotent_fails_instead(cluster: Cluster, tmp_path: Path) -> None:
    labels = "labels:\n  tiercel.notIdempotent: s"
    cluster.flow("slow", slow_first_time(tmp_path, labels=labels))
    cluster.server()
    cluster.worker()
    execution_id = asyncio.run(start_one(cluster, "slow"))
    started(tmp_path / "pids.txt", 1)
    os.kill(claimed_by(cluster), signal.SIGKILL)
    ended = asyncio.run(wait_for(cluster, execution_id))
    assert ended.state.current is StateType.FAILED
    assert len((tmp_path / "pids.txt").read_text().split()) == 1


def test_a_kill_reaches_the_worker_running_the_task(cluster: Cluster, tmp_path: Path) -> None:
    cluster.flow("slow", slow_first_time(tmp_path))
    cluster.server()
    cluster.worker()
    execution_id = asyncio.run(start_one(cluster, "slow"))
    [program] = started(tmp_path / "pids.txt", 1)

    async def kill() -> Execution:
        async with connect(cluster.url, local=False) as engine:
            await engine.kill(execution_id)
            return await engine.wait(execution_id)

    ended = asyncio.run(kill())
    assert ended.state.current is StateType.KILLED
    asyncio.run(until(lambda: not pid_alive(program), what="the task's program to end"))


@pytest.mark.slow
def test_worker_groups_route_task_runs(cluster: Cluster, tmp_path: Path) -> None:
    cluster.flow(
        "gpu",
        "id: gpu\nnamespace: cluster\ntasks:\n"
        "  - id: train\n    type: io.kestra.plugin.core.log.Log\n    message: trained\n"
        "    workerGroup:\n      key: gpu\n",
    )
    cluster.server()
    cluster.worker()  # of no group: it never takes the task
    execution_id = asyncio.run(start_one(cluster, "gpu"))
    asyncio.run(until(lambda: cluster.sql("SELECT worker_group FROM worker_jobs") == [("gpu",)]))
    # A heartbeat 1.5 s after the job came: the worker has looked for jobs since (every second).
    [(queued_at,)] = cluster.sql("SELECT now()")
    beat = "SELECT count(*) FROM workers WHERE heartbeat > %s + interval '1.5 seconds'"
    asyncio.run(until(lambda: cluster.sql(beat, [queued_at]) == [(1,)]))
    assert cluster.sql("SELECT worker_id FROM worker_jobs") == [(None,)]
    listed = json.loads(cluster.cli("workers", "--json"))
    assert listed["waiting"] == [{"group": "gpu", "waiting": 1}]
    assert [(w["group"], w["running"]) for w in listed["workers"]] == [(None, 0)]
    cluster.worker("--group", "gpu")
    ended = asyncio.run(wait_for(cluster, execution_id))
    assert ended.state.current is StateType.SUCCESS


def test_a_restarted_server_waits_for_what_a_worker_still_runs(cluster: Cluster, tmp_path: Path) -> None:
    done = tmp_path / "done.txt"
    release = tmp_path / "release"
    cluster.flow(
        "held",
        "id: held\nnamespace: cluster\ntasks:\n"
        "  - id: s\n    type: io.kestra.plugin.scripts.shell.Script\n"
        f'    script: "while [ ! -e {release} ]; do sleep 0.05; done; echo once >> {done}"\n',
    )
    server = cluster.server()
    cluster.worker()
    execution_id = asyncio.run(start_one(cluster, "held"))
    claimed_by(cluster)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    release.touch()  # the attempt ends while no server runs: its result waits in the queue
    asyncio.run(until(lambda: done.exists()))
    cluster.server()
    ended = asyncio.run(wait_for(cluster, execution_id))
    assert ended.state.current is StateType.SUCCESS
    [run] = ended.task_runs
    assert len(run.attempts) == 1
    assert done.read_text() == "once\n"


def test_error_logs_reach_the_tasks_of_an_errors_branch_on_a_worker(cluster: Cluster) -> None:
    cluster.flow(
        "errors",
        "id: errors\nnamespace: cluster\ntasks:\n"
        "  - id: broken\n    type: io.kestra.plugin.core.execution.Fail\n    errorMessage: disk on fire\n"
        "errors:\n"
        "  - id: report\n    type: io.kestra.plugin.core.log.Log\n"
        '    message: "{% for log in errorLogs() %}{{ log.taskId }} said {{ log.message }}{% endfor %}"\n',
    )
    cluster.server()
    cluster.worker()

    async def run() -> list[str]:
        async with connect(cluster.url, local=False) as engine:
            execution_id = await engine.trigger("cluster", "errors")
            ended = await engine.wait(execution_id)
            assert ended.state.current is StateType.FAILED
            return [entry.message for _, entry in await engine.logs(execution_id, task_id="report")]

    assert asyncio.run(run()) == ["broken said disk on fire"]


def test_metrics_reported_on_a_worker_are_read_through_a_server(cluster: Cluster) -> None:
    cluster.flow(
        "metrics",
        "id: metrics\nnamespace: cluster\ntasks:\n"
        "  - id: count\n    type: io.kestra.plugin.scripts.python.Script\n"
        "    script: |\n"
        "      from kestra import Kestra\n"
        "      Kestra.counter('rows', 5, {'table': 'orders'})\n",
    )
    cluster.server()
    cluster.worker()

    async def run() -> list[tuple[str | None, str, float, dict[str, str]]]:
        async with connect(cluster.url, local=False) as engine:
            execution_id = await engine.trigger("cluster", "metrics")
            ended = await engine.wait(execution_id)
            assert ended.state.current is StateType.SUCCESS
            entries = await engine.metrics(execution_id)
            # The figures of the worker's program (cpu, peak memory) come back with the worker's result.
            assert {"process.cpu.time"} <= {e.name for e in entries}
            assert ended.task_runs[0].usage is not None
            return [
                (e.task_id, e.name, e.value, dict(e.tags))
                for e in entries
                if not e.name.startswith("process.")
            ]

    assert asyncio.run(run()) == [("count", "rows", 5.0, {"table": "orders"})]


@pytest.mark.slow
def test_connections_cut_under_load_lose_no_execution(cluster: Cluster, tmp_path: Path) -> None:
    """Every connection of the cluster's processes to PostgreSQL is cut, three times, while
    executions run (as a server restart or a network cut would): they reconnect, and every
    execution ends SUCCESS with each of its tasks run once."""
    side_effects = tmp_path / "side-effects.txt"
    cluster.flow("five", five_tasks(side_effects))
    cluster.server()
    cluster.worker("--concurrency", "4")
    cut = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'tiercel%%'"
    )

    cuts: list[int] = []

    async def run_while_cutting() -> list[StateType]:
        running = asyncio.create_task(run_all(cluster, "five", 30))
        for _ in range(3):
            await asyncio.sleep(0.4)
            [(count,)] = await asyncio.to_thread(cluster.sql, cut)
            cuts.append(count)
        return await running

    states = asyncio.run(run_while_cutting())
    assert cuts[0] >= 5 and all(cuts), cuts  # the server's and the worker's, then those they made again
    assert states == [StateType.SUCCESS] * 30
    lines = side_effects.read_text().splitlines()
    assert sorted(lines) == sorted(set(lines))
    assert len(lines) == 150


def test_a_worker_given_the_flows_folder_reads_namespace_files(cluster: Cluster) -> None:
    files = cluster.flows / "_files" / "cluster" / "queries"
    files.mkdir(parents=True)
    (files / "report.sql").write_text("SELECT 42")
    cluster.flow(
        "files",
        "id: files\nnamespace: cluster\ntasks:\n"
        "  - id: query\n    type: io.kestra.plugin.core.debug.Return\n"
        "    format: \"{{ read('queries/report.sql') }}\"\n",
    )
    cluster.server()
    cluster.worker("--flows", str(cluster.flows))

    ended = run_to_end(cluster, "files")
    assert ended.state.current is StateType.SUCCESS
    assert ended.task_runs[0].outputs == {"value": "SELECT 42"}


def test_a_worker_without_a_flows_folder_reads_the_namespace_files_the_servers_publish(
    cluster: Cluster,
) -> None:
    files = cluster.flows / "_files" / "cluster" / "queries"
    files.mkdir(parents=True)
    (files / "report.sql").write_text("SELECT 42")
    (files / "old.sql").write_text("SELECT 0")
    cluster.flow(
        "files",
        "id: files\nnamespace: cluster\ntasks:\n"
        "  - id: query\n    type: io.kestra.plugin.core.debug.Return\n"
        "    format: \"{{ read('queries/report.sql') }}\"\n"
        "  - id: copy\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    namespaceFiles: {enabled: true}\n    outputFiles: [seen.txt]\n"
        "    commands: ['ls queries > seen.txt']\n",
    )
    cluster.server()
    cluster.worker(home="other-machine")

    def seen(ended: Execution) -> tuple[object, str]:
        assert ended.state.current is StateType.SUCCESS
        [query, copy] = ended.task_runs
        uri = str((copy.outputs or {})["outputFiles"]["seen.txt"])
        [(listing,)] = cluster.sql("SELECT convert_from(data, 'UTF8') FROM file_chunks WHERE uri = %s", [uri])
        return (query.outputs or {}).get("value"), str(listing).split()

    assert seen(run_to_end(cluster, "files")) == ("SELECT 42", ["old.sql", "report.sql"])
    # Edited and deleted in the server's folder while it runs: published within seconds.
    (files / "report.sql").write_text("SELECT 43")
    (files / "old.sql").unlink()
    asyncio.run(
        until(lambda: not cluster.sql("SELECT 1 FROM files WHERE uri LIKE %s", ["%/old.sql"]), timeout=10)
    )
    assert seen(run_to_end(cluster, "files")) == ("SELECT 43", ["report.sql"])


def test_a_worker_given_the_flows_folder_applies_the_namespace_plugin_defaults(cluster: Cluster) -> None:
    (cluster.flows / "_namespace.yaml").write_text(
        "id: cluster\npluginDefaults:\n"
        "  - type: io.kestra.plugin.core.debug.Return\n    values: {format: from the namespace}\n"
    )
    cluster.flow("defaults", "id: defaults\nnamespace: cluster\ntasks:\n"
         "  - id: r\n    type: io.kestra.plugin.core.debug.Return\n")  # fmt: skip
    cluster.server()
    cluster.worker("--flows", str(cluster.flows))

    ended = run_to_end(cluster, "defaults")
    assert ended.state.current is StateType.SUCCESS
    assert ended.task_runs[0].outputs == {"value": "from the namespace"}


def test_a_task_that_commands_the_engine_runs_on_the_server(cluster: Cluster) -> None:
    cluster.flow(
        "waiting",
        "id: waiting\nnamespace: cluster\ntasks:\n  - id: wait\n    type: io.kestra.plugin.core.flow.Pause\n",
    )
    cluster.flow(
        "resumer",
        "id: resumer\nnamespace: cluster\ninputs:\n  - {id: target, type: STRING}\ntasks:\n"
        "  - id: resume\n    type: io.kestra.plugin.core.execution.Resume\n"
        '    executionId: "{{ inputs.target }}"\n',
    )
    cluster.server()
    cluster.worker()

    async def run() -> tuple[Execution, Execution]:
        async with connect(cluster.url, local=False) as engine:
            paused = await engine.trigger("cluster", "waiting")
            await engine.wait(paused, until_paused=True)
            resumer = await engine.trigger("cluster", "resumer", {"target": paused})
            return await engine.wait(resumer), await engine.wait(paused)

    resumer, paused = asyncio.run(run())
    assert resumer.state.current is StateType.SUCCESS
    assert paused.state.current is StateType.SUCCESS


def test_a_worker_stopped_with_sigterm_hands_its_task_runs_over_at_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.flow("slow", slow_first_time(tmp_path))
    cluster.server("--heartbeat-timeout", "600")  # no waiting for a timeout: the worker says it leaves
    cluster.worker()
    cluster.worker()
    execution_id = asyncio.run(start_one(cluster, "slow"))
    [program] = started(tmp_path / "pids.txt", 1)
    os.kill(claimed_by(cluster), signal.SIGTERM)
    ended = asyncio.run(wait_for(cluster, execution_id))
    assert ended.state.current is StateType.SUCCESS
    [run] = ended.task_runs
    assert [attempt.state.current for attempt in run.attempts] == [StateType.FAILED, StateType.SUCCESS]
    assert not pid_alive(program)  # the stopping worker killed its program


def test_listing_the_workers_of_a_database_without_a_cluster_says_so(pg_url: str, tmp_path: Path) -> None:
    import subprocess

    from tests.cluster.harness import TIERCEL

    done = subprocess.run(
        [str(TIERCEL), "workers", "--db", pg_url], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "holds no Tiercel cluster (no server has opened it)" in done.stderr
