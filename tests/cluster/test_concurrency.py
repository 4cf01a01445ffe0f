"""A flow's concurrency limit counts the executions of every server of a cluster (real PostgreSQL,
real `tiercel server` processes): started through two servers, they never overlap past the limit;
over it, CANCEL ends the newcomer on whichever server; a slot held by a server killed with `kill -9`
is freed when the server that adopts the execution ends it."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from pathlib import Path

from tests.cluster.harness import HEARTBEAT_TIMEOUT, Cluster
from tests.cluster.test_servers import HOOK, all_ended, post_all, states
from tests.waiting import until


def limited_flow(cluster: Cluster, behavior: str, script: str) -> None:
    cluster.flow(
        "limited",
        "id: limited\nnamespace: cluster\nconcurrency:\n  limit: 1\n"
        f"  behavior: {behavior}\ntasks:\n"
        f'  - id: work\n    type: io.kestra.plugin.scripts.shell.Script\n    script: "{script}"\n' + HOOK,
    )


def intervals(log: Path) -> list[tuple[float, float]]:
    """The (start, end) of each run the script logged, by start."""
    found: dict[str, dict[str, float]] = {}
    for line in log.read_text().splitlines():
        what, run, at = line.split()
        found.setdefault(run, {})[what] = float(at)
    return sorted((times["start"], times["end"]) for times in found.values())


def test_executions_started_through_two_servers_keep_to_the_flows_limit(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    limited_flow(
        cluster,
        "QUEUE",
        f"echo start $$ $(date +%s.%N) >> {log}; sleep 0.3; echo end $$ $(date +%s.%N) >> {log}",
    )
    first, second = cluster.server(worker=True), cluster.server(worker=True)
    ids = asyncio.run(
        post_all([cluster.webhooks_of(first), cluster.webhooks_of(second)], "cluster", "limited", 6)
    )
    assert set(all_ended(cluster, ids, timeout=60).values()) == {"SUCCESS"}
    runs = intervals(log)
    assert len(runs) == 6
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(runs)), runs
    # Both servers ran some, and queued some behind the other's.
    owners = cluster.sql("SELECT owner, count(*) FROM executions GROUP BY owner")
    assert len(owners) == 2, owners
    assert cluster.sql("SELECT count(*) FROM flow_slots") == [(0,)]


def test_over_the_limit_cancel_ends_an_execution_started_through_another_server(
    cluster: Cluster, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    limited_flow(cluster, "CANCEL", f"while [ ! -e {release} ]; do sleep 0.05; done")
    first, second = cluster.server(worker=True), cluster.server(worker=True)
    [held] = asyncio.run(post_all([cluster.webhooks_of(first)], "cluster", "limited", 1))
    asyncio.run(until(lambda: states(cluster, [held]) == {held: "RUNNING"}))
    [refused] = asyncio.run(post_all([cluster.webhooks_of(second)], "cluster", "limited", 1))
    assert all_ended(cluster, [refused], timeout=30) == {refused: "CANCELLED"}
    release.touch()
    assert all_ended(cluster, [held], timeout=30) == {held: "SUCCESS"}
    [after] = asyncio.run(post_all([cluster.webhooks_of(second)], "cluster", "limited", 1))
    assert all_ended(cluster, [after], timeout=30) == {after: "SUCCESS"}  # the slot is free again


def test_a_slot_held_by_a_killed_server_goes_on_when_its_adopter_ends_the_execution(
    cluster: Cluster, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    limited_flow(cluster, "QUEUE", f"while [ ! -e {release} ]; do sleep 0.05; done")
    doomed = cluster.server()
    cluster.server()
    cluster.worker()
    [held] = asyncio.run(post_all([cluster.webhooks_of(doomed)], "cluster", "limited", 1))
    asyncio.run(until(lambda: states(cluster, [held]) == {held: "RUNNING"}))
    [queued] = asyncio.run(post_all([cluster.webhooks_of(doomed)], "cluster", "limited", 1))
    asyncio.run(until(lambda: states(cluster, [queued]) == {queued: "QUEUED"}))
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    release.touch()
    ended = all_ended(cluster, [held, queued], timeout=HEARTBEAT_TIMEOUT + 30)
    assert ended == {held: "SUCCESS", queued: "SUCCESS"}
