"""The sample flows a newcomer runs first must parse and end as their descriptions promise.

Every sample is validated by `tiercel validate` and run on a real engine and SQLite file. What a
sample shows is then checked on its own: the long run's progress, the approval resumed with inputs
through `tiercel resume`, and the webhook called through `tiercel server`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import logs_of, messages, run, runs_of
from tests.waiting import HANG, blocking_until, until
from tiercel.engine.engine import Engine
from tiercel.engine.model import LogLevel, StateType
from tiercel.engine.parser import parse_flow_file
from tiercel.engine.store import Store

SAMPLES = Path(__file__).resolve().parents[2] / "sample_flows"
TIERCEL = Path(sys.executable).parent / "tiercel"

# Every sample, and how it ends when run here: no network, nobody to click (the inputs below).
EXPECTED = {
    ("acme", "hello_world"): StateType.SUCCESS,
    ("acme.finance.reports", "monthly_report"): StateType.SUCCESS,
    ("acme.finance.reports", "archive_report"): StateType.SUCCESS,
    ("acme.marketing.analytics", "campaign_fanout"): StateType.SUCCESS,
    ("acme.platform.ops", "flaky_sync"): StateType.FAILED,  # retried, then the error branch on purpose
    ("acme.platform.ops", "nightly_pipeline"): StateType.SUCCESS,
    ("acme.platform.ops", "sleepy"): StateType.SUCCESS,
    ("acme.finance.payments", "payout_approval"): StateType.PAUSED,  # waits for a person to resume it
    ("acme.sales.crm", "new_lead"): StateType.SUCCESS,  # a manual run, without a webhook body
}
# The sleepy sample lasts about two minutes by default; these inputs keep its shape and take a second.
SHORT_SLEEPY = {"batches": 3, "batch_time": "PT0.05S"}


@asynccontextmanager
async def sample_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine on a copy of sample_flows (namespace files included) and a fresh database."""
    shutil.copytree(SAMPLES, tmp_path / "flows")
    store = await Store.open(tmp_path / "tiercel.db")
    engine = Engine(store, flows_dir=tmp_path / "flows")
    await engine.start(control=False)
    try:
        yield engine
    finally:
        await engine.stop()


def inputs_for(uid: tuple[str, str]) -> dict[str, Any]:
    """The inputs a sample runs with here."""
    return SHORT_SLEEPY if uid == ("acme.platform.ops", "sleepy") else {}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without a database chosen elsewhere, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key != "TIERCEL_DB"}
    env.update(extra)
    return env


def tiercel(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TIERCEL), *map(str, args)],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=HANG,
    )


def executions_of(db: Path, flow_id: str) -> list[dict[str, Any]]:
    listed = tiercel("executions", "--db", db, "--flow", flow_id, "--json")
    assert listed.returncode == 0, listed.stderr
    rows: list[dict[str, Any]] = json.loads(listed.stdout)
    return rows


# -- every sample ------------------------------------------------------------------------------------


def test_every_sample_flow_parses_and_is_listed_here() -> None:
    found = {parse_flow_file(path).uid for path in SAMPLES.rglob("*.yml")}
    assert found == set(EXPECTED)


def test_tiercel_validate_accepts_every_sample() -> None:
    checked = tiercel("validate", SAMPLES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    flows = {line.split()[-1] for line in checked.stdout.splitlines() if line.startswith("OK ")}
    assert {f"({namespace}.{flow_id})" for namespace, flow_id in EXPECTED} <= flows
    assert ", 0 invalid" in checked.stderr


@pytest.mark.parametrize(("namespace", "flow_id"), sorted(EXPECTED))
async def test_sample_flow_ends_as_described(tmp_path: Path, namespace: str, flow_id: str) -> None:
    async with sample_engine(tmp_path) as engine:
        inputs = inputs_for((namespace, flow_id))
        execution = await run(engine, namespace, flow_id, inputs, timeout=HANG)
        lines = messages(await logs_of(engine, execution.id))
    assert execution.state.current is EXPECTED[(namespace, flow_id)], lines
    assert lines, "every sample flow logs something"
    assert not any("Unable to find" in line for line in lines if flow_id != "flaky_sync")


# -- the flows already there --------------------------------------------------------------------------


async def test_a_successful_monthly_report_is_archived_by_its_flow_trigger(tmp_path: Path) -> None:
    async with sample_engine(tmp_path) as engine:
        report = await run(engine, "acme.finance.reports", "monthly_report", {"region": "AMER"})
        assert report.state.current is StateType.SUCCESS

        async def archived() -> str | None:
            rows = await engine.store.list_executions(flow_id="archive_report")
            return rows[0].id if rows and rows[0].state == "SUCCESS" else None

        archive_id = await until(archived, what="archive_report's execution succeeded")
        lines = messages(await logs_of(engine, archive_id))
    assert lines == ["ACME Corp files 'Revenue AMER October 2026' in /srv/finance/archive (EUR)"]


# -- the long run -----------------------------------------------------------------------------------


def test_sleepy_lasts_a_minute_or_two_by_default() -> None:
    flow = parse_flow_file(SAMPLES / "acme" / "platform" / "ops" / "sleepy.yml")
    defaults = {spec.id: spec.defaults for spec in flow.inputs}
    match = re.fullmatch(r"PT(\d+)S", str(defaults["batch_time"]))
    assert match is not None, defaults
    planned = timedelta(seconds=int(defaults["batches"]) * int(match.group(1)))
    assert timedelta(minutes=1) <= planned <= timedelta(minutes=3)


def test_sleepy_logs_its_progress_batch_by_batch(tmp_path: Path) -> None:
    flow = SAMPLES / "acme" / "platform" / "ops" / "sleepy.yml"
    inputs = [arg for key, value in SHORT_SLEEPY.items() for arg in ("--input", f"{key}={value}")]
    done = tiercel("run", "--db", tmp_path / "t.db", *inputs, flow)
    assert done.returncode == 0, done.stderr
    # Each log line: date, level, task id, message.
    progress = [line.split(maxsplit=3) for line in done.stdout.splitlines()]
    progress = [fields[3] for fields in progress if len(fields) == 4 and fields[1] == "INFO"]
    assert progress == [
        "Loading 3 batches of clickstream events, PT0.05S each",
        "Batch 1/3 loaded",
        "Batch 2/3 loaded",
        "Batch 3/3 loaded",
        "All 3 batches loaded",
    ]
    (execution,) = executions_of(tmp_path / "t.db", "sleepy")
    loads = [run for run in execution["taskRunList"] if run["taskId"] == "load"]
    assert [run["value"] for run in loads] == ["1", "2", "3"]
    assert all(run["state"]["current"] == "SUCCESS" for run in loads)


# -- the approval -----------------------------------------------------------------------------------


def test_payout_approval_pauses_then_resumes_with_the_decision_through_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    flow = SAMPLES / "acme" / "finance" / "payments" / "payout_approval.yml"
    paused = tiercel("run", "--db", db, flow)
    assert paused.returncode == 3, paused.stderr  # left PAUSED
    assert "waits for approval" in paused.stdout
    (execution,) = executions_of(db, "payout_approval")
    assert execution["state"]["current"] == "PAUSED"

    missing = tiercel("resume", execution["id"], "--db", db, "--input", "approved=true")
    assert missing.returncode == 2 and "reason" in missing.stderr  # the reason is required
    reason = "Matches PO 4471, signed off by the CFO"
    resumed = tiercel(
        "resume", execution["id"], "--db", db, "--input", "approved=true", "--input", f"reason={reason}"
    )
    assert resumed.returncode == 0, resumed.stderr

    (execution,) = executions_of(db, "payout_approval")
    assert execution["state"]["current"] == "SUCCESS"
    assert {"key": "decision", "value": "approved"} in execution["labels"]
    assert execution["outputs"] == {"decision": f"approved: {reason}"}
    ran = {run["taskId"] for run in execution["taskRunList"]}
    assert "pay" in ran and "hold" not in ran
    logs = tiercel("logs", "--db", db, execution["id"])
    assert f"Released PAY-2026-W41 (48250.75 EUR): {reason}" in logs.stdout


async def test_a_rejected_payout_is_held_and_labelled(tmp_path: Path) -> None:
    async with sample_engine(tmp_path) as engine:
        paused = await run(engine, "acme.finance.payments", "payout_approval", {"batch": "PAY-7"})
        assert paused.state.current is StateType.PAUSED
        await engine.resume(paused.id, {"approved": False, "reason": "Supplier bank details changed"})
        execution = await asyncio.wait_for(engine.wait(paused.id), HANG)
        logs = await logs_of(engine, execution.id)
    assert execution.state.current is StateType.SUCCESS
    assert ("decision", "rejected") in {(label.key, label.value) for label in execution.labels}
    held = [entry for entry in logs if entry.task_id == "hold"]
    assert [(entry.level, entry.message) for entry in held] == [
        (LogLevel.WARN, "Held PAY-7: Supplier bank details changed")
    ]
    assert runs_of(execution, "pay") == []


# -- the webhook -----------------------------------------------------------------------------------


def read_until(stream: Any, pattern: bytes) -> re.Match[bytes]:
    """Read a pipe until `pattern` matches what arrived."""
    data = b""

    def arrived() -> re.Match[bytes] | None:
        nonlocal data
        ready, _, _ = select.select([stream], [], [], 0.1)
        if ready:
            chunk = os.read(stream.fileno(), 65536)
            assert chunk, f"the pipe closed before {pattern!r}; got {data!r}"
            data += chunk
        return re.search(pattern, data)

    return blocking_until(arrived, what=f"{pattern!r} on the server's stderr", interval=0)


def post(url: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=HANG) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_new_lead_runs_when_its_webhook_is_called_on_tiercel_server(tmp_path: Path) -> None:
    shutil.copytree(SAMPLES, tmp_path / "flows")
    db = tmp_path / "t.db"
    server = subprocess.Popen(
        [str(TIERCEL), "server", "--flows", str(tmp_path / "flows"), "--db", str(db), "--port", "0"],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert server.stderr is not None
        base = read_until(server.stderr, rb"webhooks on (http://127\.0\.0\.1:\d+)\n").group(1).decode()
        hook = f"{base}/api/v1/executions/webhook/acme.sales.crm/new_lead"
        lead = {"email": "ada@example.org", "company": "Analytical Engines", "plan": "enterprise"}
        code, answer = post(f"{hook}/contact-form-7f3a9c", lead)
        assert code == 200, answer
        assert answer["flowId"] == "new_lead" and answer["trigger"]["variables"]["body"] == lead
        assert post(f"{hook}/a-wrong-key", lead)[0] == 404

        def ended() -> dict[str, Any] | None:
            rows = [row for row in executions_of(db, "new_lead") if row["id"] == answer["id"]]
            return rows[0] if rows and rows[0]["state"]["current"] not in ("CREATED", "RUNNING") else None

        execution = blocking_until(ended, what="the webhook's execution ended", interval=0.1)
        assert execution["state"]["current"] == "SUCCESS"
        logs = tiercel("logs", "--db", db, answer["id"]).stdout
    finally:
        server.terminate()
        server.communicate(timeout=HANG)
    assert "New lead ada@example.org from Analytical Engines, plan enterprise" in logs
    assert "Lead ada@example.org assigned to enterprise-sales@acme.example" in logs
    assert server.returncode == 0
