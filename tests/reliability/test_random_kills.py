"""Random kills: 100 kill -9 of the engine at random moments while executions of a 3-task flow with
retries keep arriving; after each kill the database is sound, and after the last restart every
execution has ended, no task run has more than maxAttempt + 1 attempts and no state history holds a
transition Kestra's state semantics forbid. The delays come from a seeded random, so a failure can
be replayed."""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import (
    TERMINAL,
    TIERCEL,
    EngineProcess,
    executions,
    holding_tokens,
    illegal_transitions,
    integrity_check,
    recorded_processes,
    start_server,
    wait_until,
    write_flow,
)

pytestmark = pytest.mark.reliability

SEED = 20261125
KILLS = 100
# Executions started per engine life (at most): enough to keep every task busy, few enough that the
# backlog drains in the final run.
FEED = 3
MAX_ATTEMPT = {"first": 2, "second": 2, "third": 3}
_READY = re.compile(rb"webhooks on (http://\S+)")


def flow(flow_id: str, labels: str = "") -> str:
    # Each task fails its first attempt(s) on purpose, so retries happen in every execution.
    return f"""
id: {flow_id}
namespace: rel.kills
{labels}
tasks:
  - id: first
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 0.2
      - test {{{{ taskrun.attemptsCount }}}} -ge 1
    retry: {{type: constant, interval: PT0.1S, maxAttempt: {MAX_ATTEMPT["first"]}}}
  - id: second
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 0.1
    retry: {{type: constant, interval: PT0.1S, maxAttempt: {MAX_ATTEMPT["second"]}}}
  - id: third
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 0.2
      - test {{{{ taskrun.attemptsCount }}}} -ge 2
    retry: {{type: constant, interval: PT0.1S, maxAttempt: {MAX_ATTEMPT["third"]}}}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: kills-key
"""


def _one_life(flows: Path, db: Path, delay: float, flow_ids: list[str], accepted: list[str]) -> bool:
    """Start an engine, feed it executions, kill -9 it `delay` seconds after it was spawned.

    Returns whether it had started listening before it died."""
    log = db.with_name("life.stderr")
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(TIERCEL), "server", "--flows", str(flows), "--db", str(db), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    engine = EngineProcess(proc, log)
    killer = threading.Timer(delay, os.kill, (proc.pid, signal.SIGKILL))
    killer.start()
    try:
        while proc.poll() is None and not engine.url:
            found = _READY.search(log.read_bytes())
            if found:
                engine.url = found.group(1).decode()
            else:
                time.sleep(0.01)
        for index in range(FEED):
            if proc.poll() is not None:
                break
            try:
                accepted.append(
                    engine.webhook("rel.kills", flow_ids[index % len(flow_ids)], "kills-key")["id"]
                )
            except OSError:
                break  # the engine died under the request: not acknowledged
            time.sleep(0.05)
        proc.wait(timeout=30)
    finally:
        killer.join()
        if proc.poll() is None:
            engine.kill9()
    assert proc.returncode == -signal.SIGKILL, engine.stderr()
    return bool(engine.url)


def test_100_random_kill_9(tmp_path: Path, engines: list[EngineProcess]) -> None:
    flows, db = tmp_path / "flows", tmp_path / "tiercel.db"
    write_flow(flows, "triple.yml", flow("triple"))
    write_flow(flows, "triple_once.yml", flow("triple_once", 'labels:\n  tiercel.notIdempotent: "*"'))
    rng = random.Random(SEED)
    accepted: list[str] = []
    tokens: set[str] = set()
    listening = 0
    started = time.monotonic()
    for _ in range(KILLS):
        listening += _one_life(flows, db, rng.uniform(0.05, 1.2), ["triple", "triple_once"], accepted)
        if db.exists():
            assert integrity_check(db) == "ok"
            tokens |= {token for _, _, token in recorded_processes(db)}
    killing = time.monotonic() - started

    last = start_server(flows, db)
    engines.append(last)
    assert wait_until(
        lambda: all(e["state"]["current"] in TERMINAL for e in executions(db).values()), 120, interval=0.2
    ), collections.Counter(e["state"]["current"] for e in executions(db).values())
    last.stop()
    assert last.proc.returncode == 0, last.stderr()
    assert integrity_check(db) == "ok"

    stored = executions(db)
    assert set(accepted) <= set(stored), "an acknowledged execution is missing"
    problems: list[str] = []
    most = collections.Counter[str]()
    for execution in stored.values():
        for before, after in illegal_transitions(execution["state"]["histories"]):
            problems.append(f"execution {execution['id']}: {before} -> {after}")
        for run in execution["taskRunList"]:
            attempts = run.get("attempts") or []
            most[run["taskId"]] = max(most[run["taskId"]], len(attempts))
            if len(attempts) > MAX_ATTEMPT[run["taskId"]] + 1:
                problems.append(f"task run {run['id']} ({run['taskId']}): {len(attempts)} attempts")
            if run["state"]["current"] not in TERMINAL:
                problems.append(f"task run {run['id']} ({run['taskId']}) is {run['state']['current']}")
            for before, after in illegal_transitions(run["state"]["histories"]):
                problems.append(f"task run {run['id']} ({run['taskId']}): {before} -> {after}")
            for number, attempt in enumerate(attempts):
                for before, after in illegal_transitions(attempt["state"]["histories"]):
                    problems.append(f"attempt {number} of task run {run['id']}: {before} -> {after}")
    assert not problems, "\n".join(problems[:20])
    assert recorded_processes(db) == []
    # Every process token starts with its task run id: none of this database's programs is left,
    # recorded or not.
    tokens |= {f"{run['id']}." for execution in stored.values() for run in execution["taskRunList"]}
    assert holding_tokens(tokens) == set()
    by_state = collections.Counter(e["state"]["current"] for e in stored.values())
    by_flow: dict[str, Any] = collections.Counter(e["flowId"] for e in stored.values())
    print(
        f"\nrandom kills: {KILLS} kill -9 in {killing:.1f} s ({listening} after the engine listened), "
        f"integrity_check ok {KILLS}/{KILLS}, {len(accepted)} executions acknowledged "
        f"({dict(by_flow)}), all terminal after the last restart ({dict(by_state)}), "
        f"most attempts per task {dict(most)} (limit maxAttempt + 1: "
        f"{ {task: limit + 1 for task, limit in MAX_ATTEMPT.items()} }), 0 illegal transitions"
    )
