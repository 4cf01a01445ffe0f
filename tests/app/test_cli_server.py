"""`tiercel server` as users meet it: `tiercel run` handed to it while it owns the database, and its
log of executions and flow files on stderr. Each test runs a real server on a temporary database."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.test_cli import (
    FAILING,
    HELLO,
    PAUSING,
    TYPED,
    WEBHOOK,
    executions,
    read_until,
    sleeping,
    start,
    tiercel,
    write,
)
from tests.waiting import HANG, blocking_until

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


class Server:
    """A `tiercel server` subprocess on a flows folder and a database, and what it logged so far."""

    def __init__(self, flows_dir: Path, db: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.proc = start("server", "--flows", flows_dir, "--db", db, "--port", "0", *extra, env=env)
        try:
            self.log = read_until(self.proc.stderr, b"webhooks on http://", timeout=HANG)
            while not re.search(rb'webhooks on http://[\d.]+:\d+["\n]', self.log):
                self.log += read_until(self.proc.stderr, b"\n", timeout=HANG)
        except BaseException:  # a server that never came up is not left behind
            self.proc.kill()
            self.proc.communicate(timeout=HANG)
            raise
        url = re.search(rb"webhooks on (http://[\d.]+:\d+)", self.log)
        assert url is not None, self.log
        self.url = url.group(1).decode()

    def wait_for(self, pattern: str) -> re.Match[str]:
        """Read the server's stderr until a line matches `pattern` (a regex); the match."""
        while (found := re.search(pattern, self.log.decode(), re.M)) is None:
            self.log += read_until(self.proc.stderr, b"\n", timeout=HANG)
        return found

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=HANG)
        self.log += err
        assert self.proc.returncode == 0, self.log
        return self.log.decode()


@pytest.fixture
def server(flows_dir: Path, tmp_path: Path) -> Iterator[Server]:
    for name, source in {
        "hello.yml": HELLO,
        "failing.yml": FAILING,
        "pausing.yml": PAUSING,
        "typed.yml": TYPED,
        "sleepy.yml": sleeping("PT1S"),
        "forever.yml": sleeping("PT1H", "forever"),
        "hook.yml": WEBHOOK,
    }.items():
        write(flows_dir, name, source)
    running = Server(flows_dir, tmp_path / "t.db")
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
        running.proc.communicate(timeout=HANG)


def test_run_goes_to_the_server_that_owns_the_database(server: Server, flows_dir: Path) -> None:
    db = server.db
    hello = tiercel("run", "--db", db, "acme", "hello", "--input", "name=Ada")
    assert hello.returncode == 0, hello.stderr
    assert "Hello, Ada" in hello.stdout
    assert re.search(r"TASK  greet +SUCCESS in", hello.stderr) and "ended SUCCESS" in hello.stderr

    as_json = tiercel("run", "--json", "--db", db, flows_dir / "hello.yml")
    assert as_json.returncode == 0, as_json.stderr
    execution = json.loads(as_json.stdout)  # the whole of stdout is the final execution
    assert execution["state"]["current"] == "SUCCESS" and execution["inputs"] == {"name": "world"}

    assert tiercel("run", "--db", db, "--flows", flows_dir, "acme.ops", "failing").returncode == 1
    paused = tiercel("run", "--db", db, "acme", "pausing")
    assert paused.returncode == 3, paused.stderr
    assert "before the pause" in paused.stdout and "after the pause" not in paused.stdout

    wrong = tiercel("run", "--db", db, "acme.data", "typed", "--input", "count=abc")
    assert wrong.returncode == 2 and "count" in wrong.stderr and "Traceback" not in wrong.stderr
    unknown = tiercel("run", "--db", db, "acme", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr

    states = sorted((e["flowId"], e["state"]["current"]) for e in executions(db))
    assert states == [
        ("failing", "FAILED"),
        ("hello", "SUCCESS"),
        ("hello", "SUCCESS"),
        ("pausing", "PAUSED"),
    ]
    # Every one of them ran in the server, which logged it.
    for execution in executions(db):
        server.wait_for(rf"^{STAMP} started  {execution['id']} ")


def test_run_file_needs_the_servers_content_of_that_flow(
    server: Server, flows_dir: Path, tmp_path: Path
) -> None:
    db = server.db
    same = write(tmp_path / "elsewhere", "hello.yml", HELLO)  # the server's content, in another folder
    assert tiercel("run", "--db", db, same).returncode == 0

    edited = write(tmp_path / "elsewhere", "edited.yml", HELLO.replace("Hello", "Bye"))
    refused = tiercel("run", "--db", db, edited)
    assert refused.returncode == 2
    assert str(flows_dir.resolve()) in refused.stderr and "another content" in refused.stderr
    unknown = write(tmp_path / "elsewhere", "new.yml", HELLO.replace("id: hello", "id: brand_new"))
    missing = tiercel("run", "--db", db, unknown)
    assert missing.returncode == 2 and "no flow" in missing.stderr and "brand_new" in missing.stderr

    other_folder = tiercel("run", "--db", db, "--flows", tmp_path / "elsewhere", "acme", "hello")
    assert other_folder.returncode == 2 and str(flows_dir.resolve()) in other_folder.stderr
    assert [e["flowId"] for e in executions(db)] == ["hello"]


def test_run_through_the_server_streams_logs_and_ctrl_c_kills(server: Server) -> None:
    db = server.db
    sleepy = start("run", "--db", db, "acme.ops", "sleepy")
    early = read_until(sleepy.stdout, b"first line", timeout=HANG)
    assert sleepy.poll() is None and b"second line" not in early  # shown while it runs
    rest, _ = sleepy.communicate(timeout=HANG)
    assert sleepy.returncode == 0 and b"second line" in rest

    forever = start("run", "--json", "--db", db, "acme.ops", "forever")
    read_until(forever.stderr, b"first line", timeout=HANG)
    forever.send_signal(signal.SIGINT)
    out, err = forever.communicate(timeout=HANG)
    assert forever.returncode == 1, err
    assert json.loads(out)["state"]["current"] == "KILLED"
    assert {e["flowId"]: e["state"]["current"] for e in executions(db)}["forever"] == "KILLED"


def test_the_server_logs_executions_and_flow_files(server: Server, flows_dir: Path) -> None:
    assert tiercel("run", "--db", server.db, "acme.ops", "failing").returncode == 1
    [failed] = executions(server.db)
    server.wait_for(rf"^{STAMP} started  {failed['id']} acme\.ops\.failing  trigger=manual$")
    server.wait_for(
        rf"^{STAMP} ended    {failed['id']} acme\.ops\.failing  trigger=manual  FAILED in \d+\.\d{{3}} s$"
    )
    answer = httpx.post(f"{server.url}/api/v1/executions/webhook/acme.web/hook/s3cretKey", json={"name": "x"})
    assert answer.status_code == 200, answer.text
    hooked = answer.json()["id"]
    server.wait_for(rf"^{STAMP} ended    {hooked} acme\.web\.hook  trigger=Webhook:incoming  SUCCESS in ")

    write(flows_dir, "added.yml", HELLO.replace("id: hello", "id: added"))
    server.wait_for(rf"^{STAMP} flow added    acme\.added  .*added\.yml$")
    write(flows_dir, "added.yml", HELLO.replace("id: hello", "id: added").replace("Hello", "Hi"))
    server.wait_for(rf"^{STAMP} flow changed  acme\.added  .*added\.yml$")
    write(flows_dir, "broken.yml", HELLO.replace("io.kestra.plugin.core.log.Log", "nope"))
    server.wait_for(rf"^{STAMP} flow error    .*broken\.yml:\d+:\d+: .*nope")
    (flows_dir / "added.yml").unlink()
    server.wait_for(rf"^{STAMP} flow removed  acme\.added  .*added\.yml$")
    log = server.stop()
    assert re.search(rf"^{STAMP} tiercel server: stopping$", log, re.M), log
    assert "\x1b" not in log


def test_a_second_run_owning_the_database_is_not_handed_runs(flows_dir: Path, tmp_path: Path) -> None:
    """A one-off owner (another `tiercel run`) stops when its own run ends: it is not handed others."""
    db = tmp_path / "t.db"
    owner = start("run", "--db", db, write(flows_dir, "forever.yml", sleeping("PT1H", "forever")))
    try:
        read_until(owner.stdout, b"first line", timeout=HANG)
        second = tiercel("run", "--db", db, write(flows_dir, "hello.yml", HELLO))
        assert second.returncode == 2 and "in use" in second.stderr and str(owner.pid) in second.stderr
        assert [e["flowId"] for e in executions(db)] == ["forever"]
    finally:
        owner.send_signal(signal.SIGINT)
        owner.communicate(timeout=HANG)
    assert owner.returncode == 1


def test_the_server_logs_one_json_object_a_line_for_a_log_collector(flows_dir: Path, tmp_path: Path) -> None:
    write(flows_dir, "hook.yml", WEBHOOK)
    running = Server(flows_dir, tmp_path / "t.db", "--log-format", "json")
    try:
        answer = httpx.post(
            f"{running.url}/api/v1/executions/webhook/acme.web/hook/s3cretKey", json={"name": "x"}
        )
        hooked = answer.json()["id"]
        running.wait_for(rf'"event": "execution.ended", .*"executionId": "{hooked}"')
        write(flows_dir, "broken.yml", HELLO.replace("io.kestra.plugin.core.log.Log", "nope"))
        running.wait_for(r'"event": "flow.error"')
        log = running.stop()
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.communicate(timeout=HANG)
    records = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object
    by_event = {record["event"]: record for record in records}
    assert {"server.started", "execution.started", "execution.ended", "flow.error", "server.stopping"} <= set(
        by_event
    )
    assert by_event["server.started"]["webhooks"] == running.url
    ended = by_event["execution.ended"]
    assert (ended["state"], ended["namespace"], ended["flowId"]) == ("SUCCESS", "acme.web", "hook")
    assert isinstance(ended["durationSeconds"], float) and ended["time"].endswith("Z")
    assert by_event["flow.error"]["path"].endswith("broken.yml")


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of a Prometheus exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_server_serves_prometheus_metrics_and_health(server: Server) -> None:
    assert tiercel("run", "--db", server.db, "acme", "hello", "--input", "name=Ada").returncode == 0
    assert tiercel("run", "--db", server.db, "acme.ops", "failing").returncode == 1
    scraped = httpx.get(f"{server.url}/metrics", timeout=HANG)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    openmetrics = httpx.get(
        f"{server.url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=HANG
    )
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")
    samples = metric_samples(scraped.text)
    hello = {("namespace", "acme"), ("flow_id", "hello")}
    failing = {("namespace", "acme.ops"), ("flow_id", "failing")}
    assert samples[("tiercel_executions_ended_total", frozenset({*hello, ("state", "SUCCESS")}))] == 1
    assert samples[("tiercel_executions_ended_total", frozenset({*failing, ("state", "FAILED")}))] == 1
    greet = frozenset({*hello, ("task_id", "greet"), ("state", "SUCCESS")})
    assert samples[("tiercel_task_run_duration_seconds_count", greet)] == 1
    assert samples[("tiercel_log_lines_total", frozenset({("level", "INFO")}))] >= 1
    assert samples[("tiercel_log_lines_total", frozenset({("level", "ERROR")}))] >= 1
    active = [value for (name, _), value in samples.items() if name == "tiercel_executions_active"]
    assert active and all(value == 0 for value in active)
    assert ("tiercel_event_loop_lag_seconds", frozenset()) in samples

    health = httpx.get(f"{server.url}/health", timeout=HANG)
    assert health.status_code == 200
    assert health.json()["status"] == "UP"
    assert {name for name in health.json()["checks"]} == {"eventLoop", "store", "cluster"}
    alive = httpx.get(f"{server.url}/health/liveness", timeout=HANG)
    assert (alive.status_code, alive.json()["status"]) == (200, "UP")
    assert httpx.post(f"{server.url}/metrics", timeout=HANG).status_code == 405
    # The webhook route is served as before, beside them.
    assert httpx.get(f"{server.url}/api/v1/executions/webhook/acme/nope/key", timeout=HANG).status_code == 404


FAILING_POLL = """
id: watcher
namespace: acme.ops
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{ trigger.size }}"
triggers:
  - id: watch
    type: io.kestra.plugin.jdbc.sqlite.Trigger
    interval: PT0.1S
    sql: SELECT * FROM no_such_table
"""


def test_a_failing_trigger_poll_is_logged_once(flows_dir: Path, tmp_path: Path) -> None:
    write(flows_dir, "watcher.yml", FAILING_POLL)
    running = Server(flows_dir, tmp_path / "t.db")
    try:
        running.wait_for(
            rf"^{STAMP} error    sqlite\.Trigger `watch` of acme\.ops\.watcher: sqlite: no such table"
        )

        def reported() -> float:
            text = httpx.get(f"{running.url}/metrics").text
            return metric_samples(text).get(("tiercel_engine_errors_total", frozenset()), 0.0)

        # several polls failed the same way (each reported, and counted), but the log says it once
        blocking_until(lambda: reported() >= 3, what="three failed polls reported")
        log = running.stop()
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.communicate(timeout=HANG)
    assert log.count("no such table: no_such_table") == 1, log
