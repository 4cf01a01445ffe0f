"""A runaway jq program or regular expression fails its task at the time limit; the engine keeps answering.

`{{ 1 | jq('last(range(3e8))') }}` used to hold the event loop for minutes (and end SUCCESS), and
`replace({'^(a+)+$': 'x'}, regexp=true)` on a 30-byte webhook body for half a minute: every other flow's
webhook timed out meanwhile. Both now run in a worker process that is killed at the limit.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from tests.reliability.conftest import EngineProcess, executions, start_server, wait_until, write_flow

pytestmark = pytest.mark.reliability

NS = "rel.expressions"
WORKER_MODULE = b"tiercel.engine.expressions.worker"
LIMIT_S = 5  # the renderer's default time limit


def hook_flow(flow_id: str, message: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: {NS}\n"
        "tasks:\n  - id: t\n    type: io.kestra.plugin.core.debug.Return\n"
        f"    format: {json.dumps(message)}\n"
        f"triggers:\n  - id: hook\n    type: io.kestra.plugin.core.trigger.Webhook\n    key: k\n"
    )


def post(engine: EngineProcess, flow_id: str, body: bytes) -> float:
    """POST a webhook; how long the answer took."""
    request = urllib.request.Request(
        f"{engine.url}/api/v1/executions/webhook/{NS}/{flow_id}/k",
        data=body,
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    return time.perf_counter() - started


def workers_of(pid: int) -> set[int]:
    """Live expression worker processes whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            status = (entry / "status").read_text()
            if f"\nPPid:\t{pid}\n" in status and WORKER_MODULE in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
    return found


def error_logs(db: Path, flow_id: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        rows = conn.execute("SELECT message FROM logs WHERE flow_id = ?", (flow_id,)).fetchall()
    return [str(row[0]) for row in rows]


def test_runaway_jq_and_regexp_fail_at_the_limit_while_other_webhooks_answer(
    tmp_path: Path, engines: list[EngineProcess]
) -> None:
    flows, db = tmp_path / "flows", tmp_path / "db" / "tiercel.db"
    write_flow(flows, "jq.yml", hook_flow("runaway_jq", "{{ 1 | jq('last(range(3e8))') }}"))
    write_flow(
        flows,
        "re.yml",
        hook_flow("runaway_re", "{{ trigger.body | replace({'^(a+)+$': 'x'}, regexp=true) }}"),
    )
    write_flow(flows, "echo.yml", hook_flow("echo", "{{ trigger.body }}"))
    write_flow(
        flows, "fine.yml", hook_flow("fine", "{{ trigger.body | replace({'(a+)b': '$1c'}, regexp=true) }}")
    )
    db.parent.mkdir()
    server = start_server(flows, db)
    engines.append(server)

    post(server, "echo", b"warm-up")
    post(server, "runaway_jq", b"")
    post(server, "runaway_re", b"a" * 29 + b"!")  # 30 bytes: 2^29 ways to fail the match
    assert wait_until(lambda: len(workers_of(server.pid)) >= 2, 5), "the expressions did not reach a worker"
    busy = workers_of(server.pid)

    latencies = []
    deadline = time.monotonic() + LIMIT_S - 2
    while time.monotonic() < deadline:
        latencies.append(post(server, "echo", b"still here"))
        time.sleep(0.2)
    print(
        f"\nwhile jq and the regexp ran: {len(latencies)} webhooks of another flow answered in at most "
        f"{max(latencies) * 1000:.0f} ms"
    )
    # A loop held by jq or the regexp would have answered once or twice in those seconds, at most.
    assert len(latencies) >= 5

    # The workers that ran them are killed at the limit and reaped, not left behind.
    assert wait_until(lambda: not busy & workers_of(server.pid), LIMIT_S + 10)

    # Killed, a worker is a zombie until the engine reaps it a moment later (a zombie's cmdline is
    # empty, so `workers_of` no longer counts it): it must then be gone.
    def left() -> list[int]:
        return [pid for pid in busy if Path(f"/proc/{pid}").exists()]

    assert wait_until(lambda: not left(), LIMIT_S + 10), f"workers {left()} were not reaped"
    # The engine still runs costly filters afterwards, in a new worker.
    post(server, "fine", b"aab")

    # The database is read once at the end: another process reading it while the engine saves has
    # been seen to hold up the engine's saves (a store matter, not this test's).
    time.sleep(3)
    found = {e["flowId"]: e for e in executions(db).values() if e["flowId"] != "echo"}
    for flow_id in ("runaway_jq", "runaway_re"):
        assert found[flow_id]["state"]["current"] == "FAILED", found[flow_id]["state"]
        messages = error_logs(db, flow_id)
        assert any(f"expression took longer than {LIMIT_S} s" in m for m in messages), messages
        assert any("Unable to render the expression `{{" in m for m in messages), messages
    assert found["fine"]["state"]["current"] == "SUCCESS", found["fine"]["state"]
    assert found["fine"]["taskRunList"][0]["outputs"] == {"value": "aac"}
