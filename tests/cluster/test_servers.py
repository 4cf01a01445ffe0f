"""Several servers on one PostgreSQL store, each as if on a machine of its own: executions come in
through any server's webhooks and each is run by one executor; a server killed has its executions
carried on by another, and the store refuses the writes of a server declared gone; the scheduler runs
in one server at a time, another taking it over when that one dies, each (trigger, date) firing once."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.cluster.harness import HEARTBEAT_TIMEOUT, Cluster
from tests.waiting import until

TERMINAL = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED")


HOOK = "triggers:\n  - id: hook\n    type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n"


async def post_all(urls: list[str], namespace: str, flow_id: str, count: int) -> list[str]:
    """`count` executions through the webhooks of the servers in turn; their ids."""
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(n: int) -> str:
            async with limit:
                url = f"{urls[n % len(urls)]}/api/v1/executions/webhook/{namespace}/{flow_id}/k"
                answer = await client.post(url)
                assert answer.status_code == 200, answer.text
                return str(answer.json()["id"])

        return await asyncio.gather(*(one(n) for n in range(count)))


def held_flow(cluster: Cluster, release: Path, then: str = "") -> None:
    """The flow `held`: a script task that waits for `release` to exist, then runs `then`; then a
    task that logs (the executor that carries on sends it out)."""
    cluster.flow("held", held_text(release, then))


def held_text(release: Path, then: str = "", flow_id: str = "held", namespace: str = "cluster") -> str:
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n"
        "  - id: wait\n    type: io.kestra.plugin.scripts.shell.Script\n"
        f'    script: "while [ ! -e {release} ]; do sleep 0.05; done{then}"\n' + AFTER_TASK + HOOK
    )


AFTER_TASK = "  - id: after\n    type: io.kestra.plugin.core.log.Log\n    message: after\n"


def states(cluster: Cluster, ids: list[str]) -> dict[str, str]:
    return dict(cluster.sql("SELECT id, state FROM executions WHERE id = ANY(%s)", [ids]))


def all_ended(cluster: Cluster, ids: list[str], timeout: float) -> dict[str, str]:
    def ended() -> bool:
        found = states(cluster, ids)
        return len(found) == len(ids) and all(state in TERMINAL for state in found.values())

    asyncio.run(until(ended, timeout=timeout, what="every execution's end"))
    return states(cluster, ids)


def server_ids(cluster: Cluster) -> dict[int, str]:
    """The servers of the cluster by pid, as their rows say."""
    return {int(pid): str(server_id) for server_id, pid in cluster.sql("SELECT id, pid FROM servers")}


@pytest.mark.slow
def test_two_servers_and_three_workers_run_a_thousand_executions_each_task_once(cluster: Cluster) -> None:
    tasks = "".join(
        f"  - id: t{n}\n    type: io.kestra.plugin.core.log.Log\n    message: 'once {{{{ execution.id }}}}'\n"
        for n in range(5)
    )
    cluster.flow("five", f"id: five\nnamespace: cluster\ntasks:\n{tasks}{HOOK}")
    servers = [cluster.server(machine=f"machine-{n}") for n in range(2)]
    for _ in range(3):
        cluster.worker("--concurrency", "8")
    ids = asyncio.run(post_all([cluster.webhooks_of(s) for s in servers], "cluster", "five", 1000))
    ended = all_ended(cluster, ids, timeout=600)
    assert set(ended.values()) == {"SUCCESS"}
    # Every task run ran once: one line of each task of each execution, written by the worker.
    counts = cluster.sql(
        "SELECT count(*), count(DISTINCT (execution_id, task_id)) FROM logs WHERE message LIKE 'once %%'"
    )
    assert counts == [(5000, 5000)]
    owners = cluster.sql("SELECT owner, count(*) FROM executions GROUP BY owner")
    assert len(owners) == 2 and all(count > 0 for _, count in owners)
    assert set(dict(owners)) == set(server_ids(cluster).values())


def test_servers_started_together_on_a_new_store_store_each_flow_once(cluster: Cluster) -> None:
    task = "  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
    for n in range(40):
        cluster.flow(f"f{n}", f"id: f{n}\nnamespace: cluster\ntasks:\n{task}")
    servers = cluster.servers_at_once("a", "b", "c")
    cluster.flow("f0", (cluster.flows / "f0.yml").read_text().replace("hi", "changed"))
    asyncio.run(until(lambda: cluster.sql("SELECT count(*) FROM flow_revisions") == [(41,)]))
    assert all(server.poll() is None for server in servers)
    assert cluster.sql(
        "SELECT count(*), count(DISTINCT (namespace, flow_id, revision)) FROM flow_revisions"
    ) == [(41, 41)]


def test_a_killed_servers_executions_are_carried_on_by_another(cluster: Cluster, tmp_path: Path) -> None:
    release = tmp_path / "release"
    done = tmp_path / "done.txt"
    held_flow(cluster, release, f"; echo {{{{execution.id}}}} >> {done}")
    doomed = cluster.server(machine="a")
    survivor = cluster.server(machine="b")
    cluster.worker("--concurrency", "8")
    ids = asyncio.run(post_all([cluster.webhooks_of(doomed)], "cluster", "held", 5))
    asyncio.run(until(lambda: len(cluster.sql("SELECT 1 FROM worker_jobs WHERE worker_id IS NOT NULL")) == 5))
    doomed_id = server_ids(cluster)[doomed.pid]
    assert cluster.sql("SELECT DISTINCT owner FROM executions") == [(doomed_id,)]
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    release.touch()  # the attempts end while their server is gone: their results wait for another
    ended = all_ended(cluster, ids, timeout=HEARTBEAT_TIMEOUT + 30)
    assert set(ended.values()) == {"SUCCESS"}
    assert sorted(done.read_text().split()) == sorted(ids)  # each attempt ran once, none again
    assert cluster.sql("SELECT DISTINCT owner FROM executions") == [(server_ids(cluster)[survivor.pid],)]
    assert doomed_id not in server_ids(cluster).values()


def test_a_server_declared_gone_can_no_longer_write_its_executions(cluster: Cluster, tmp_path: Path) -> None:
    release = tmp_path / "release"
    held_flow(cluster, release)
    paused = cluster.server(machine="a")
    survivor = cluster.server(machine="b")
    cluster.worker()
    [execution_id] = asyncio.run(post_all([cluster.webhooks_of(paused)], "cluster", "held", 1))
    asyncio.run(until(lambda: bool(cluster.sql("SELECT 1 FROM worker_jobs WHERE worker_id IS NOT NULL"))))
    paused_id = server_ids(cluster)[paused.pid]
    os.kill(paused.pid, signal.SIGSTOP)  # silent, not dead: as a machine cut off the network
    try:
        survivor_id = server_ids(cluster)[survivor.pid]
        taken = lambda: _owner(cluster, execution_id) == survivor_id  # noqa: E731
        asyncio.run(until(taken, timeout=HEARTBEAT_TIMEOUT + 30))
        # What the paused server would write now is refused by the store, whatever it believes.
        with (
            pytest.raises(psycopg.DatabaseError, match="declared gone"),
            psycopg.connect(cluster.url, autocommit=True) as conn,
        ):
            conn.execute("SELECT set_config('tiercel.server', %s, false)", [paused_id])
            conn.execute("UPDATE executions SET state = 'FAILED' WHERE id = %s", [execution_id])
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    # Woken, it finds its place gone and stops, saying why; the execution goes on elsewhere.
    assert paused.wait(timeout=30) == 1
    release.touch()
    assert all_ended(cluster, [execution_id], timeout=30) == {execution_id: "SUCCESS"}


def test_kill_and_resume_reach_the_server_that_runs_the_execution(cluster: Cluster, tmp_path: Path) -> None:
    release = tmp_path / "release"
    held_flow(cluster, release)
    cluster.flow(
        "paused",
        "id: paused\nnamespace: cluster\ntasks:\n  - id: stop\n    type: io.kestra.plugin.core.flow.Pause\n"
        "  - id: after\n    type: io.kestra.plugin.core.log.Log\n    message: resumed\n" + HOOK,
    )
    runs_them = cluster.server(machine="a")
    cluster.server(machine="b")
    cluster.worker()
    urls = [cluster.webhooks_of(runs_them)]
    [held] = asyncio.run(post_all(urls, "cluster", "held", 1))
    [paused] = asyncio.run(post_all(urls, "cluster", "paused", 1))
    asyncio.run(until(lambda: states(cluster, [held, paused]) == {held: "RUNNING", paused: "PAUSED"}))
    # Through the other machine's server, which does not run them.
    cluster.cli("kill", held, machine="b")
    cluster.cli("resume", paused, machine="b")
    assert all_ended(cluster, [held, paused], timeout=30) == {held: "KILLED", paused: "SUCCESS"}
    assert {_owner(cluster, held), _owner(cluster, paused)} == {server_ids(cluster)[runs_them.pid]}


def test_a_resume_from_another_machine_reads_no_file_on_the_server_that_runs_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    private = tmp_path / "private.txt"
    private.write_text("a file of the machine that runs the execution")
    cluster.flow(
        "gate",
        "id: gate\nnamespace: cluster\ntasks:\n  - id: stop\n    type: io.kestra.plugin.core.flow.Pause\n"
        "    onResume:\n      - {id: doc, type: FILE}\n" + HOOK,
    )
    runs_it = cluster.server(machine="a")
    cluster.server(machine="b")
    [paused] = asyncio.run(post_all([cluster.webhooks_of(runs_it)], "cluster", "gate", 1))
    asyncio.run(until(lambda: states(cluster, [paused]) == {paused: "PAUSED"}))
    done = cluster.command("resume", paused, "--input", f"doc={private}", machine="b")
    assert done.returncode != 0 and "kestra://" in done.stderr
    assert states(cluster, [paused]) == {paused: "PAUSED"}


def test_a_trigger_switched_through_any_server_reaches_the_scheduler(cluster: Cluster) -> None:
    cluster.flow(
        "ticks",
        "id: ticks\nnamespace: cluster\ntasks:\n  - id: log\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: tick\ntriggers:\n  - id: every\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        "    cron: '* * * * * *'\n    withSeconds: true\n",
    )
    for name in ("a", "b"):
        cluster.server(machine=name)
    cluster.worker()
    asyncio.run(until(lambda: scheduler_holder(cluster) is not None))
    holder = scheduler_holder(cluster)
    other = next(
        name for name, process in zip("ab", cluster.processes, strict=False) if process.pid != holder
    )
    cluster.cli("triggers", "--disable", "cluster", "ticks", "every", machine=other)
    count = lambda: cluster.sql("SELECT count(*) FROM executions")[0][0]  # noqa: E731
    asyncio.run(until(lambda: cluster.sql("SELECT enabled FROM triggers") == [(0,)]))
    before = count()
    time.sleep(2.5)  # slots pass while the trigger is off
    assert count() - before <= 1  # (one fired as the switch came, at most)


def test_commands_on_a_machine_without_a_server_join_the_cluster_for_their_time(
    cluster: Cluster, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    held_flow(cluster, release)
    cluster.flow("quick", "id: quick\nnamespace: cluster\ntasks:\n" + AFTER_TASK)
    runs_held = cluster.server(machine="a")
    cluster.worker()
    cluster.cli("run", "cluster", "quick", machine="elsewhere")  # (it must succeed)
    assert cluster.sql("SELECT state FROM executions WHERE flow_id = 'quick'") == [("SUCCESS",)]
    [held] = asyncio.run(post_all([cluster.webhooks_of(runs_held)], "cluster", "held", 1))
    asyncio.run(until(lambda: states(cluster, [held]) == {held: "RUNNING"}))
    cluster.cli("kill", held, machine="elsewhere")
    assert all_ended(cluster, [held], timeout=30) == {held: "KILLED"}
    # The commands left the cluster as they ended: one server is left.
    assert list(server_ids(cluster)) == [runs_held.pid]
    ran = cluster.sql("SELECT count(*) FROM logs WHERE message = 'after'")
    assert ran == [(1,)]  # the run's task, by the cluster's worker


def test_a_schedule_goes_on_when_the_execution_it_waits_for_ends_on_another_server(
    cluster: Cluster, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    cluster.flow(
        "slow",
        "id: slow\nnamespace: cluster\ntasks:\n"
        "  - id: wait\n    type: io.kestra.plugin.scripts.shell.Script\n"
        f'    script: "while [ ! -e {release} ]; do sleep 0.05; done"\n'
        "triggers:\n  - id: every\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        "    cron: '* * * * * *'\n    withSeconds: true\n",
    )
    first = cluster.server(machine="a", worker=True)
    asyncio.run(until(lambda: scheduler_holder(cluster) == first.pid))
    asyncio.run(until(lambda: bool(cluster.sql("SELECT 1 FROM executions WHERE state = 'RUNNING'"))))
    [(running_id,)] = cluster.sql("SELECT id FROM executions")  # the schedule does not overlap
    second = cluster.server(machine="b")
    # The scheduler moves to the second server (its first's session cut, as by a network blip) while
    # the first goes on running the execution the schedule waits for.
    while scheduler_holder(cluster) != second.pid:
        cluster.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
            [f"tiercel server {server_ids(cluster)[first.pid]} scheduler"],
        )
        asyncio.run(until(lambda: scheduler_holder(cluster) is not None))
    release.touch()  # it ends on the first server, which does not run the scheduler any more
    asyncio.run(until(lambda: len(cluster.sql("SELECT 1 FROM executions")) >= 3, what="the next fires"))
    assert states(cluster, [running_id]) == {running_id: "SUCCESS"}


def test_files_of_executions_pass_between_machines_through_the_store(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A FILE input stored by a command on machine c, turned into an output file by a worker on b,
    read by the execution's own executor on c: three machines, no folder in common."""
    cluster.flow(
        "handoff",
        "id: handoff\nnamespace: cluster\ninputs:\n  - {id: data, type: FILE}\ntasks:\n"
        "  - id: shout\n    type: io.kestra.plugin.scripts.shell.Commands\n    outputFiles: [out.txt]\n"
        '    commands: ["tr a-z A-Z < {{ inputs.data }} > out.txt"]\n'
        "outputs:\n  - id: loud\n    type: STRING\n"
        "    value: \"{{ read(outputs.shout.outputFiles['out.txt']) }}\"\n",
    )
    cluster.server(machine="a")
    cluster.worker(home="b")
    data = tmp_path / "words.txt"
    data.write_text("quiet words")
    ran = json.loads(
        cluster.cli("run", "cluster", "handoff", "--input", f"data={data}", "--json", machine="c")
    )
    assert ran["state"]["current"] == "SUCCESS"
    assert ran["outputs"] == {"loud": "QUIET WORDS"}
    assert cluster.sql("SELECT count(*) FROM files") == [(2,)]
    # each machine holds copies of the files it wrote or read, and of no other
    copies = {
        machine: sorted(path.name for path in (cluster.folder / machine).glob("**/storage/**/*.txt"))
        for machine in "bc"
    }
    assert copies == {"b": ["out.txt", "words.txt"], "c": ["out.txt", "words.txt"]}


def test_storage_names_the_folder_of_files_every_machine_shares(cluster: Cluster, tmp_path: Path) -> None:
    cluster.flow(
        "files",
        "id: files\nnamespace: cluster\ntasks:\n"
        "  - id: write\n    type: io.kestra.plugin.scripts.shell.Commands\n    outputFiles: [out.txt]\n"
        "    commands: [printf shared > out.txt]\n"
        "  - id: read\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        "    commands: [\"cat {{ outputs.write.outputFiles['out.txt'] }}\"]\n" + HOOK,
    )
    shared = tmp_path / "mnt"
    server = cluster.server("--storage", str(shared))
    cluster.worker("--storage", str(shared), home="other-machine")
    [execution_id] = asyncio.run(post_all([cluster.webhooks_of(server)], "cluster", "files", 1))
    assert all_ended(cluster, [execution_id], timeout=60) == {execution_id: "SUCCESS"}
    assert [path.read_text() for path in shared.glob("**/out.txt")] == ["shared"]
    assert cluster.sql("SELECT message FROM logs WHERE task_id = 'read' AND message = 'shared'")


def _owner(cluster: Cluster, execution_id: str) -> str | None:
    rows = cluster.sql("SELECT owner FROM executions WHERE id = %s", [execution_id])
    return str(rows[0][0]) if rows and rows[0][0] else None


def scheduler_holder(cluster: Cluster) -> int | None:
    """The pid of the server whose scheduler runs (it holds the scheduler's lock), if any."""
    rows = cluster.sql(
        "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = "
        "hashtextextended('tiercel scheduler ' || current_database() || '.' || current_schema(), 0)"
    )
    if not rows:
        return None
    server_id = str(rows[0][0]).split()[2]
    return next((pid for pid, found in server_ids(cluster).items() if found == server_id), None)


@pytest.mark.slow
def test_the_scheduler_moves_to_another_server_when_its_server_dies_and_fires_each_slot_once(
    cluster: Cluster,
) -> None:
    cluster.flow(
        "ticks",
        "id: ticks\nnamespace: cluster\ntasks:\n  - id: log\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: tick\ntriggers:\n  - id: every\n    type: io.kestra.plugin.core.trigger.Schedule\n"
        "    cron: '* * * * * *'\n    withSeconds: true\n",
    )
    servers: dict[int, subprocess.Popen[str]] = {}
    for n in range(3):
        started = cluster.server(machine=f"machine-{n}", worker=True)
        servers[started.pid] = started
    for kill in range(3):
        asyncio.run(until(lambda: scheduler_holder(cluster) is not None, timeout=30))
        time.sleep(3)
        holder = scheduler_holder(cluster)
        assert holder is not None
        os.kill(holder, signal.SIGKILL)
        servers.pop(holder).wait()
        started = cluster.server(machine=f"machine-again-{kill}", worker=True)
        servers[started.pid] = started
    asyncio.run(until(lambda: scheduler_holder(cluster) is not None, timeout=30))
    time.sleep(3)
    for process in servers.values():
        process.send_signal(signal.SIGTERM)
    for process in servers.values():
        process.wait(timeout=30)
    rows = cluster.sql("SELECT json FROM executions WHERE flow_id = 'ticks'")
    fired = sorted(
        datetime.fromisoformat(json.loads(text)["trigger"]["variables"]["date"]) for (text,) in rows
    )
    assert len(set(fired)) == len(fired)  # one execution per (trigger, date): none twice
    gaps = [later - earlier for earlier, later in itertools.pairwise(fired)]
    assert gaps and set(gaps) == {timedelta(seconds=1)}  # none missed across three takeovers
