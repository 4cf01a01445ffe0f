"""The sample flows a newcomer runs first must parse and end as their descriptions promise.

Every sample is validated by `tiercel validate` and run on a real engine and SQLite file. What a
sample shows is then checked on its own: the long run's progress, the approval resumed with inputs
through `tiercel resume`, the webhook called through `tiercel server`, files passed between real
shell and Python processes, an HTTP call against a local server (the machine has no internet), the
KV store across two runs, and a secret plus namespace files.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import hmac
import io
import json
import os
import re
import select
import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.engine.helpers import logs_of, messages, one_run, run, runs_of
from tests.postgres import engine_store
from tests.waiting import HANG, blocking_until, until
from tiercel.engine import is_test_file
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
    ("acme.data.pipelines", "orders_etl"): StateType.SUCCESS,
    ("acme.data.pipelines", "revenue_pipeline"): StateType.SUCCESS,  # without a webhook to post to
    ("acme.data.ingest", "exchange_rates"): StateType.SUCCESS,  # against RatesServer
    ("acme.data.ingest", "incremental_orders"): StateType.SUCCESS,
    ("acme.data.warehouse", "daily_revenue"): StateType.SUCCESS,  # with the signing key set
}
# The sleepy sample lasts about two minutes by default; these inputs keep its shape and take a second.
SHORT_SLEEPY = {"batches": 3, "batch_time": "PT0.05S"}
SIGNING_KEY = "dev-signing-key-4f1c"
RATES = {
    "amount": 1.0,
    "base": "EUR",
    "date": "2026-10-01",
    "rates": {"GBP": 0.8412, "JPY": 162.3, "USD": 1.0876},
}


class RatesServer:
    """A local stand-in for the public exchange-rates API, on 127.0.0.1 in a thread."""

    def __init__(self) -> None:
        self.body = json.dumps(RATES).encode()
        self.requests: list[tuple[str, str | None]] = []  # (path, Accept header)
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.requests.append((self.path, self.headers.get("Accept")))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                self.wfile.write(served.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/v1/latest?base=EUR&symbols=USD,GBP,JPY"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> RatesServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join()


@pytest.fixture
def rates_server() -> Iterator[RatesServer]:
    with RatesServer() as server:
        yield server


@pytest.fixture
def signing_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The secret REPORT_SIGNING_KEY, set as Kestra's open-source edition reads it (base64)."""
    monkeypatch.setenv("SECRET_REPORT_SIGNING_KEY", base64.b64encode(SIGNING_KEY.encode()).decode())
    return SIGNING_KEY


@asynccontextmanager
async def sample_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """An engine on a copy of sample_flows (namespace files included) and a fresh database."""
    shutil.copytree(SAMPLES, tmp_path / "flows")
    store = await Store.open(engine_store(tmp_path))
    engine = Engine(store, flows_dir=tmp_path / "flows")
    await engine.start(control=False)
    try:
        yield engine
    finally:
        await engine.stop()


def inputs_for(uid: tuple[str, str], rates: RatesServer) -> dict[str, Any]:
    """The inputs a sample runs with here."""
    if uid == ("acme.platform.ops", "sleepy"):
        return SHORT_SLEEPY
    if uid == ("acme.data.ingest", "exchange_rates"):
        return {"url": rates.url}
    return {}


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
    found = {parse_flow_file(path).uid for path in SAMPLES.rglob("*.yml") if not is_test_file(path)}
    assert found == set(EXPECTED)


def test_tiercel_validate_accepts_every_sample() -> None:
    checked = tiercel("validate", SAMPLES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    flows = {line.split()[-1] for line in checked.stdout.splitlines() if line.startswith("OK ")}
    assert {f"({namespace}.{flow_id})" for namespace, flow_id in EXPECTED} <= flows
    assert ", 0 invalid" in checked.stderr


@pytest.mark.parametrize(("namespace", "flow_id"), sorted(EXPECTED))
async def test_sample_flow_ends_as_described(
    tmp_path: Path, rates_server: RatesServer, signing_key: str, namespace: str, flow_id: str
) -> None:
    async with sample_engine(tmp_path) as engine:
        inputs = inputs_for((namespace, flow_id), rates_server)
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
        "Waiting for PT0.05S",  # each Sleep says so, as Kestra's does
        "Batch 1/3 loaded",
        "Waiting for PT0.05S",
        "Batch 2/3 loaded",
        "Waiting for PT0.05S",
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


# -- scripts and files ------------------------------------------------------------------------------


async def test_orders_etl_passes_files_between_a_shell_and_a_python_process(tmp_path: Path) -> None:
    async with sample_engine(tmp_path) as engine:
        execution = await run(engine, "acme.data.pipelines", "orders_etl", timeout=HANG)
        lines = messages(await logs_of(engine, execution.id))
        extract, transform = one_run(execution, "extract"), one_run(execution, "transform")
        assert extract.outputs is not None and transform.outputs is not None
        orders = engine.storage.read_text(extract.outputs["outputFiles"]["orders.csv"])
        revenue = json.loads(
            engine.storage.read_text(transform.outputs["outputFiles"]["revenue_by_country.json"])
        )
    assert execution.state.current is StateType.SUCCESS, lines
    # The shell dropped the row without an amount and the duplicate; Python summed the rest.
    assert [row["order_id"] for row in csv.DictReader(io.StringIO(orders))] == [
        "1001", "1002", "1004", "1005", "1006"
    ]  # fmt: skip
    assert extract.outputs["vars"] == {"rows": 5}
    assert revenue == {"FR": 1300.4, "GB": 5120.0, "US": 3240.25}
    assert transform.outputs["vars"] == {"total": 9660.65, "top_country": "GB", "countries": 3}
    assert "Extracted 5 clean orders of 2026-10-01 (2 rows dropped)" in lines
    assert "2026-10-01: 5 orders, 9660.65 in 3 countries, led by GB;" in lines[-1]
    assert execution.outputs is not None
    assert (
        execution.outputs["revenue_by_country"] == transform.outputs["outputFiles"]["revenue_by_country.json"]
    )


class WebhookReceiver:
    """A local stand-in for a Slack incoming webhook, on 127.0.0.1 in a thread: keeps what it gets."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/services/T000/B000/XXXX"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join()


async def test_revenue_pipeline_extracts_converts_transforms_loads_and_notifies(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    try:
        async with sample_engine(tmp_path) as engine:
            inputs = {"day": "2026-10-02", "webhook_url": receiver.url}
            execution = await run(engine, "acme.data.pipelines", "revenue_pipeline", inputs, timeout=HANG)
            lines = messages(await logs_of(engine, execution.id))
            extract = one_run(execution, "extract").outputs or {}
            orders = engine.storage.read_text(one_run(execution, "to_csv").outputs["uri"])  # type: ignore[index]
            assert execution.outputs is not None
            database = tmp_path / "revenue.db"
            database.write_bytes(engine.storage.read_bytes(execution.outputs["database"]))
    finally:
        receiver.close()
    assert execution.state.current is StateType.SUCCESS, lines
    assert extract["size"] == 200
    rows = list(csv.DictReader(io.StringIO(orders)))
    assert len(rows) == 200 and rows[0]["day"] == "2026-10-02"
    by_region: dict[str, float] = {}
    for row in rows:
        by_region[row["region"]] = by_region.get(row["region"], 0.0) + float(row["amount"])
    with sqlite3.connect(database) as connection:
        stored = connection.execute("SELECT region, orders, revenue FROM revenue ORDER BY region").fetchall()
    assert [(region, orders) for region, orders, _ in stored] == [("AMER", 67), ("APAC", 66), ("EMEA", 67)]
    assert all(revenue == pytest.approx(by_region[region]) for region, _, revenue in stored)
    total = round(sum(by_region.values()), 2)
    assert receiver.bodies == [{"text": f"Revenue of 2026-10-02: {total} from 200 orders in 3 regions."}]


# -- HTTP ---------------------------------------------------------------------------------------------


async def test_exchange_rates_reads_json_and_archives_the_raw_answer(
    tmp_path: Path, rates_server: RatesServer
) -> None:
    async with sample_engine(tmp_path) as engine:
        inputs = {"url": rates_server.url, "currency": "GBP"}
        execution = await run(engine, "acme.data.ingest", "exchange_rates", inputs, timeout=HANG)
        lines = messages(await logs_of(engine, execution.id))
        archive = one_run(execution, "archive")
        assert archive.outputs is not None
        archived = engine.storage.read_bytes(archive.outputs["uri"])
    assert execution.state.current is StateType.SUCCESS, lines
    assert "1 EUR = 0.8412 GBP on 2026-10-01 (HTTP 200)" in lines
    assert one_run(execution, "rates").outputs == {"values": {"date": "2026-10-01", "rate": "0.8412"}}
    assert archived == rates_server.body
    # The Request (asking for JSON), then the Download, of the URL given as an input.
    path = "/v1/latest?base=EUR&symbols=USD,GBP,JPY"
    assert [request[0] for request in rates_server.requests] == [path, path]
    assert rates_server.requests[0][1] == "application/json"


# -- KV store ------------------------------------------------------------------------------------------


async def test_incremental_orders_starts_where_the_last_run_stopped(tmp_path: Path) -> None:
    async with sample_engine(tmp_path) as engine:
        first = await run(engine, "acme.data.ingest", "incremental_orders", {"new_orders": 100})
        second = await run(engine, "acme.data.ingest", "incremental_orders", {"new_orders": 50})
        first_lines = messages(await logs_of(engine, first.id))
        second_lines = messages(await logs_of(engine, second.id))
        watermark = await engine.store.kv_get("acme.data.ingest", "orders_watermark")
        last_run = await engine.store.kv_get("acme.data.ingest", "orders_last_run")
    assert first.state.current is StateType.SUCCESS and second.state.current is StateType.SUCCESS
    assert first_lines[0] == "Loading 100 orders after order id 0 (first run: full load)"
    assert second_lines[0] == "Loading 50 orders after order id 100 (incremental)"
    assert second_lines[-1] == f"Watermark now 150, saved by execution {second.id}"
    assert watermark == (True, 150)
    assert last_run == (True, {"execution": second.id, "loaded": 50})


# -- secrets and namespace files ---------------------------------------------------------------------


async def test_daily_revenue_runs_a_namespace_sql_file_and_signs_with_a_secret(
    tmp_path: Path, signing_key: str
) -> None:
    async with sample_engine(tmp_path) as engine:
        execution = await run(engine, "acme.data.warehouse", "daily_revenue", timeout=HANG)
        lines = messages(await logs_of(engine, execution.id))
        report = one_run(execution, "report")
        assert report.outputs is not None
        signed = engine.storage.read_bytes(report.outputs["outputFiles"]["daily_revenue.csv"])
    assert execution.state.current is StateType.SUCCESS, lines
    sql = (SAMPLES / "_files" / "acme.data.warehouse" / "queries" / "daily_revenue.sql").read_text()
    assert lines[0] == f"Running queries/daily_revenue.sql for 2026-10-01:\n{sql}"  # read()
    # The namespace's query ran on the namespace's seed file (its 2026-10-02 orders left out).
    assert signed.decode().splitlines() == [
        "country,orders,revenue",
        "GB,1,5120.0",
        "US,2,3240.25",
        "FR,2,1300.4",
    ]
    # The task got the secret's real value: its signature checks out with the key.
    expected = hmac.new(signing_key.encode(), signed, hashlib.sha256).hexdigest()
    assert report.outputs["vars"]["signature"] == expected
    assert lines[-1] == f"Revenue of 2026-10-01: 9660.65 in 3 countries, signed {expected}"
    assert not any(signing_key in line for line in lines)


async def test_daily_revenue_without_its_secret_fails_and_says_which(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_REPORT_SIGNING_KEY", raising=False)
    monkeypatch.delenv("TIERCEL_SECRETS_FILE", raising=False)
    async with sample_engine(tmp_path) as engine:
        execution = await run(engine, "acme.data.warehouse", "daily_revenue")
        logs = await logs_of(engine, execution.id)
    assert execution.state.current is StateType.FAILED
    assert runs_of(execution, "publish") == []
    errors = [entry.message for entry in logs if entry.level is LogLevel.ERROR and entry.task_id == "report"]
    assert errors == ["Cannot find secret for key 'REPORT_SIGNING_KEY'."]


def test_daily_revenue_reads_its_secret_from_a_secrets_file_through_tiercel_run(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"REPORT_SIGNING_KEY={SIGNING_KEY}\n")
    secrets.chmod(0o600)
    env = clean_env(TIERCEL_SECRETS_FILE=str(secrets))
    env = {key: value for key, value in env.items() if not key.startswith("SECRET_")}
    db = tmp_path / "t.db"
    done = tiercel(
        "run", "--db", db, "--flows", SAMPLES, "--json", "acme.data.warehouse", "daily_revenue", env=env
    )
    assert done.returncode == 0, done.stderr
    execution = json.loads(done.stdout)
    (report,) = [run for run in execution["taskRunList"] if run["taskId"] == "report"]
    # csv.writer ends its lines with CRLF, as RFC 4180 says.
    signed = b"country,orders,revenue\r\nGB,1,5120.0\r\nUS,2,3240.25\r\nFR,2,1300.4\r\n"
    expected = hmac.new(SIGNING_KEY.encode(), signed, hashlib.sha256).hexdigest()
    assert report["outputs"]["vars"]["signature"] == expected
