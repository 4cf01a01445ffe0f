"""Kestra's REST API on a real `tiercel server`, through httpx, with Kestra's paths (with and without
the `main` tenant) and JSON shapes: flows, executions, logs, metrics, namespace files, KV, and basic
authentication."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.test_cli import clean_env, write
from tests.app.test_cli_server import Server
from tests.waiting import HANG, blocking_until

HELLO = """
id: hello
namespace: acme.api
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "Hello, {{ inputs.name }}"
"""
READER = """
id: reader
namespace: acme.api
inputs:
  - id: data
    type: FILE
tasks:
  - id: show
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["cat {{ inputs.data }}"]
  - id: count
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo '::{"metrics":[{"name":"lines","type":"counter","value":3}]}::'
"""
SLEEPY = """
id: sleepy
namespace: acme.api
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""
PAUSING = """
id: pausing
namespace: acme.api
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: approved
        type: BOOLEAN
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "approved={{ outputs.wait.onResume.approved }}"
"""
ASKING = """
id: asking
namespace: acme.api
tasks:
  - id: wait
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: doc
        type: FILE
  - id: show
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["cat {{ outputs.wait.onResume.doc }}"]
"""
SUBFLOW = "  - id: again\n    type: io.kestra.plugin.core.flow.Subflow\n"
# The tasks of a flow made in a test, but for its message.
TASK = "tasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n    message: "
FAILING = """
id: failing
namespace: acme.api
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: disk on fire
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    folder = tmp_path_factory.mktemp("api")
    flows = folder / "flows"
    for name, source in {"hello.yml": HELLO, "reader.yml": READER, "sleepy.yml": SLEEPY}.items():
        write(flows, name, source)
    write(flows, "pausing.yml", PAUSING)
    write(flows, "failing.yml", FAILING)
    write(flows, "asking.yml", ASKING)
    server = Server(flows, folder / "t.db")
    yield server, flows
    server.stop()


@pytest.fixture
def client(api: tuple[Server, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{api[0].url}/api/v1", timeout=HANG) as http:
        yield http


def events(answer: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The (id, data) of each server-sent event of a whole answer."""
    found = []
    for block in answer.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            found.append((fields.get("id", ""), json.loads(fields["data"])))
    return found


def test_flows_are_created_updated_read_searched_and_deleted_through_their_files(
    client: httpx.Client, api: tuple[Server, Path]
) -> None:
    flows = api[1]
    source = f"id: made\nnamespace: acme.api.made\n{TASK}one\n"
    yaml = {"Content-Type": "application/x-yaml"}
    created = client.post("/flows", content=source, headers=yaml)
    assert created.status_code == 200, created.text
    assert (created.json()["id"], created.json()["revision"], created.json()["source"]) == ("made", 1, source)
    path = flows / "acme" / "api" / "made" / "made.yml"
    assert path.read_text() == source
    again = client.post("/flows", content=source, headers=yaml)
    assert (
        again.status_code == 422
        and again.json()["message"] == "Invalid entity: flow.id: Flow id already exists"
    )

    updated = client.put("/main/flows/acme.api.made/made", content=source.replace("one", "two"), headers=yaml)
    assert updated.status_code == 200, updated.text
    assert updated.json()["revision"] == 2 and "two" in path.read_text()
    renamed = client.put(
        "/flows/acme.api.made/made", content=source.replace("id: made", "id: other"), headers=yaml
    )
    assert renamed.status_code == 422 and "Illegal flow id update" in renamed.json()["message"]

    got = client.get("/flows/acme.api.made/made").json()
    assert got["tasks"][0]["message"] == "two" and "source" not in got
    assert (
        client.get("/flows/acme.api.made/made", params={"source": "true"}).json()["source"].endswith("two\n")
    )
    assert (
        client.get("/flows/acme.api.made/made", params={"revision": 1}).json()["tasks"][0]["message"] == "one"
    )
    assert [flow["id"] for flow in client.get("/flows/acme.api.made").json()] == ["made"]
    found = client.get("/main/flows/search", params={"namespace": "acme.api", "size": 2, "page": 1}).json()
    assert found["total"] == 7 and len(found["results"]) == 2
    assert [f["id"] for f in client.get("/flows/search", params={"q": "made"}).json()["results"]] == ["made"]

    broken = client.post("/flows", content="id: broken\nnamespace: acme.api\ntasks: []\n", headers=yaml)
    assert broken.status_code == 422
    assert broken.json()["_embedded"]["errors"][0]["path"] == "tasks"
    assert not (flows / "acme" / "api" / "broken.yml").exists()

    assert client.delete("/flows/acme.api.made/made").status_code == 204
    assert not path.exists()
    missing = client.get("/flows/acme.api.made/made")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Not Found: Requested Flow is not found."


def test_validate_answers_each_document_and_a_namespace_is_replaced_in_one_request(
    client: httpx.Client,
) -> None:
    verdicts = client.post(
        "/flows/validate",
        content=HELLO + "\n---\nid: bad\nnamespace: acme\ntasks: []\n",
        headers={"Content-Type": "application/x-yaml"},
    ).json()
    assert [v["index"] for v in verdicts] == [0, 1]
    assert "constraints" not in verdicts[0] and verdicts[0]["flow"] == "hello"
    assert verdicts[1]["flow"] == "bad" and "tasks" in verdicts[1]["constraints"]

    one = f"id: one\nnamespace: acme.sync\n{TASK}x\n"
    two = one.replace("id: one", "id: two")
    yaml = {"Content-Type": "application/x-yaml"}
    assert client.post("/flows/acme.sync", content=one + "---\n" + two, headers=yaml).status_code == 200
    replaced = client.post("/flows/acme.sync", content=two, params={"delete": "true"}, headers=yaml).json()
    assert [(flow["id"], "source" in flow) for flow in replaced] == [("one", True), ("two", True)]
    assert [flow["id"] for flow in client.get("/flows/acme.sync").json()] == ["two"]
    wrong = client.post("/flows/acme.sync", content=one.replace("acme.sync", "acme.elsewhere"), headers=yaml)
    assert wrong.status_code == 422 and "Flow namespace is invalid" in wrong.json()["message"]


def test_an_execution_is_created_with_inputs_labels_and_files_then_read_with_its_logs_and_metrics(
    client: httpx.Client, tmp_path: Path
) -> None:
    made = client.post(
        "/executions/acme.api/hello",
        files={"name": (None, "Ada")},
        params={"labels": ["team:data"], "wait": "true"},
    )
    assert made.status_code == 200, made.text
    execution = made.json()
    assert execution["state"]["current"] == "SUCCESS" and execution["inputs"] == {"name": "Ada"}
    assert {"key": "team", "value": "data"} in execution["labels"]
    assert client.get(f"/main/executions/{execution['id']}").json()["id"] == execution["id"]
    logs = client.get(f"/logs/{execution['id']}").json()
    assert [entry["message"] for entry in logs] == ["Hello, Ada"]
    assert client.get(f"/logs/{execution['id']}", params={"minLevel": "ERROR"}).json() == []
    download = client.get(f"/logs/{execution['id']}/download")
    assert (
        download.text.endswith(" INFO Hello, Ada")
        and execution["id"] in download.headers["content-disposition"]
    )

    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    read = client.post(
        "/executions/acme.api/reader", files={"files": ("data", data.read_bytes())}, params={"wait": "true"}
    ).json()
    assert read["state"]["current"] == "SUCCESS"
    assert read["inputs"]["data"].startswith("kestra:///acme/api/reader/executions/")
    shown = [
        entry["message"] for entry in client.get(f"/logs/{read['id']}", params={"taskId": "show"}).json()
    ]
    assert shown == ["a,b", "1,2"]
    metrics = client.get(f"/metrics/{read['id']}").json()
    reported = [entry["name"] for entry in metrics["results"] if not entry["name"].startswith("process.")]
    assert reported == ["lines"] and metrics["total"] == len(metrics["results"])

    sneaky = client.post("/executions/acme.api/reader", files={"data": (None, "/etc/passwd")})
    assert sneaky.status_code == 422 and "kestra://" in sneaky.json()["message"]
    missing = client.post(
        "/executions/acme.api/hello", files={"name": (None, "x")}, params={"labels": "nocolon"}
    )
    assert missing.status_code == 422
    assert client.post("/executions/acme.api/nope").status_code == 404


def until_state(client: httpx.Client, execution_id: str, state: str) -> None:
    def reached() -> bool:
        return bool(client.get(f"/executions/{execution_id}").json()["state"]["current"] == state)

    blocking_until(reached, what=f"{execution_id} {state}")


def test_search_kill_restart_replay_and_resume(client: httpx.Client) -> None:
    sleepy = client.post("/executions/acme.api/sleepy").json()
    assert client.delete(f"/executions/{sleepy['id']}/kill").status_code == 202
    until_state(client, sleepy["id"], "KILLED")

    failed = client.post("/executions/acme.api/failing", params={"wait": "true"}).json()
    assert failed["state"]["current"] == "FAILED"
    restarted = client.post(f"/executions/{failed['id']}/restart")
    assert restarted.status_code == 200 and restarted.json()["id"] == failed["id"]
    until_state(client, failed["id"], "FAILED")
    replayed = client.post(f"/executions/{failed['id']}/replay").json()
    assert replayed["id"] != failed["id"]
    assert client.post("/executions/nope/restart").status_code == 404

    paused = client.post("/executions/acme.api/pausing").json()
    until_state(client, paused["id"], "PAUSED")
    assert (
        client.post(f"/executions/{paused['id']}/resume", files={"approved": (None, "true")}).status_code
        == 204
    )
    ended = client.get(f"/executions/{paused['id']}/follow")  # the stream ends with the execution
    assert ended.headers["content-type"].startswith("text/event-stream")
    kinds = events(ended)
    assert kinds[-1][0] == "end" and kinds[-1][1]["state"]["current"] == "SUCCESS"
    assert client.post(f"/executions/{paused['id']}/resume").status_code == 409  # not paused any more

    page = client.get("/executions/search", params={"namespace": "acme.api", "state": "KILLED"}).json()
    assert [e["id"] for e in page["results"]] == [sleepy["id"]] and page["total"] == 1
    first = client.get("/executions/search", params={"namespace": "acme", "size": 1}).json()
    assert len(first["results"]) == 1 and first["total"] > 1


def test_follow_streams_an_execution_from_start_to_end(
    client: httpx.Client, api: tuple[Server, Path]
) -> None:
    made = client.post("/executions/acme.api/hello").json()
    with client.stream("GET", f"/executions/{made['id']}/follow") as answer:
        text = "".join(answer.iter_text())
    kinds = [kind for kind, _ in events(httpx.Response(200, text=text))]
    assert kinds[-1] == "end" and set(kinds[:-1]) <= {"progress"}
    with client.stream("GET", f"/logs/{made['id']}/follow") as logs:
        lines = logs.iter_lines()  # the stored lines come first; the client ends the stream
        assert next(lines) == "id: progress"
        assert json.loads(next(lines).removeprefix("data: "))["message"] == "Hello, world"
    assert client.get("/executions/search").status_code == 200  # the server carries on


def test_namespace_files_and_kv(client: httpx.Client) -> None:
    upload = client.post(
        "/namespaces/acme.api/files",
        params={"path": "/scripts/etl.py"},
        files={"fileContent": ("etl.py", b"print(1)\n")},
    )
    assert upload.status_code == 200, upload.text
    assert client.get("/namespaces/acme.api/files/directory").json() == [
        {"fileName": "scripts", "type": "Directory", "size": 0}
    ]
    listed = client.get("/main/namespaces/acme.api/files/directory", params={"path": "scripts"}).json()
    assert listed == [{"fileName": "etl.py", "type": "File", "size": 9}]
    assert (
        client.get("/namespaces/acme.api/files", params={"path": "scripts/etl.py"}).content == b"print(1)\n"
    )
    assert client.get(
        "/namespaces/acme.api/files", params={"path": "../../../../etc/passwd"}
    ).status_code in (404, 422)
    assert client.delete("/namespaces/acme.api/files", params={"path": "/scripts"}).status_code == 200
    assert client.get("/namespaces/acme.api/files/directory").json() == []

    for key, value, kind in [
        ("s", "hi", "STRING"),
        ("n", 42, "NUMBER"),
        ("j", {"a": [1]}, "JSON"),
        ("d", "PT5M", "DURATION"),
    ]:
        assert client.put(f"/namespaces/acme.api/kv/{key}", json=value).status_code == 200
        assert client.get(f"/namespaces/acme.api/kv/{key}").json() == {"type": kind, "value": value}
    assert client.put("/namespaces/acme.api/kv/t", json=1, headers={"ttl": "PT1H"}).status_code == 200
    entries = {entry["key"]: entry for entry in client.get("/namespaces/acme.api/kv").json()}
    assert sorted(entries) == ["d", "j", "n", "s", "t"] and "expirationDate" in entries["t"]
    assert client.delete("/namespaces/acme.api/kv/s").json() is True
    assert client.delete("/namespaces/acme.api/kv/s").json() is False
    assert client.get("/namespaces/acme.api/kv/s").status_code == 404
    assert client.put("/namespaces/acme.api/kv/bad", content=b"not json").status_code == 422
    assert client.put("/namespaces/acme.api/kv/-bad", json=1).status_code == 422


def test_errors_are_kestras_json(client: httpx.Client) -> None:
    unknown = client.get("/no/such/route")
    assert unknown.status_code == 404 and unknown.json()["message"] == "Not Found"
    assert client.patch("/flows/acme.api/hello").status_code == 405
    assert client.get("/executions/search", params={"page": "0"}).status_code == 422
    assert client.get("/plugins/schemas/flow").json()["$schema"].startswith("http://json-schema.org/")


def test_basic_auth_beyond_loopback(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    write(flows, "hello.yml", HELLO)
    guarded = Server(
        flows, tmp_path / "a.db", "--host", "0.0.0.0", env=clean_env(TIERCEL_API_USER="admin:s3cret")
    )
    try:
        base = guarded.url.replace("0.0.0.0", "127.0.0.1")
        refused = httpx.get(f"{base}/api/v1/configs", timeout=HANG)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Basic realm="Kestra"'
        assert httpx.get(f"{base}/api/v1/configs", auth=("admin", "wrong"), timeout=HANG).status_code == 401
        allowed = httpx.get(
            f"{base}/api/v1/main/flows/acme.api/hello", auth=("admin", "s3cret"), timeout=HANG
        )
        assert allowed.status_code == 200 and allowed.json()["id"] == "hello"
        assert (
            httpx.get(f"{base}/health", timeout=HANG).status_code == 200
        )  # open, as Kestra's management port
    finally:
        guarded.stop()
    unguarded = Server(flows, tmp_path / "b.db", "--host", "0.0.0.0")
    try:
        base = unguarded.url.replace("0.0.0.0", "127.0.0.1")
        off = httpx.get(f"{base}/api/v1/configs", timeout=HANG)
        assert off.status_code == 403 and "TIERCEL_API_USER" in off.json()["message"]
        assert "the API is off" in unguarded.log.decode() or "API is off" in unguarded.stop()
    finally:
        if unguarded.proc.poll() is None:
            unguarded.stop()


def test_a_web_page_cannot_reach_the_open_api(client: httpx.Client) -> None:
    """A page in a browser on this machine can post to a loopback port, or resolve its own name to
    127.0.0.1 (DNS rebinding): what a browser marks as such is refused, and so is a YAML body that a
    page could send without asking first."""
    flow = f"id: pwned\nnamespace: acme.api\n{TASK}x\n"
    for headers in (
        {"Host": "evil.example:8080"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        refused = client.post(
            "/flows", content=flow, headers={"Content-Type": "application/x-yaml", **headers}
        )
        assert refused.status_code == 403, headers
        assert client.post("/executions/acme.api/hello", headers=headers).status_code == 403
    plain = client.post("/flows", content=flow, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert client.get("/flows/acme.api/pwned").status_code == 404


def test_a_refused_flow_write_changes_no_file(client: httpx.Client, api: tuple[Server, Path]) -> None:
    flows = api[1]
    yaml = {"Content-Type": "application/x-yaml"}
    before = (flows / "hello.yml").read_text()
    looping = HELLO + SUBFLOW + "    namespace: acme.api\n    flowId: hello\n"
    refused = client.put("/flows/acme.api/hello", content=looping, headers=yaml)
    assert refused.status_code == 422, refused.text
    assert (flows / "hello.yml").read_text() == before
    assert str(flows) not in refused.text  # no path of the server in the answer
    wiped = client.post("/flows/acme.api", content=looping, params={"delete": "true"}, headers=yaml)
    assert wiped.status_code == 422
    assert sorted(flow["id"] for flow in client.get("/flows/acme.api").json()) == [
        "asking",
        "failing",
        "hello",
        "pausing",
        "reader",
        "sleepy",
    ]

    write(flows, "acme/api/taken/new.yml", f"id: keepme\nnamespace: acme.api.taken\n{TASK}x\n")
    made = client.post("/flows", content=f"id: new\nnamespace: acme.api.taken\n{TASK}y\n", headers=yaml)
    assert made.status_code == 200, made.text
    assert "id: keepme" in (flows / "acme" / "api" / "taken" / "new.yml").read_text()
    assert "id: new" in (flows / "acme" / "api" / "taken" / "new-2.yml").read_text()


def test_malformed_requests_are_refused_with_a_reason(client: httpx.Client) -> None:
    verdict = client.post(
        "/flows/validate", content="tasks: [", headers={"Content-Type": "application/x-yaml"}
    )
    assert verdict.status_code == 200 and "constraints" in verdict.json()[0]
    assert client.get("/executions/search", params={"page": "²"}).status_code == 422
    assert client.get("/executions/search", params={"page": "99999999999999999999"}).status_code == 422
    assert client.get("/executions/search", params={"size": "100000"}).status_code == 422
    assert client.get("/flows/acme.api/hello", params={"revision": "²"}).status_code == 422
    sneaky = client.post("/executions/acme.api/reader", files={"files": ("..", b"x")})
    assert sneaky.status_code == 422 and "id of its input" in sneaky.json()["message"]
    assert client.delete("/namespaces/acme.api/files").status_code == 400
    assert client.get("/logs/%E2%82%AC/download").status_code == 404


def test_resume_takes_a_file_only_as_an_upload(client: httpx.Client) -> None:
    paused = client.post("/executions/acme.api/asking").json()
    until_state(client, paused["id"], "PAUSED")
    sneaky = client.post(f"/executions/{paused['id']}/resume", files={"doc": (None, "/etc/passwd")})
    assert sneaky.status_code == 422 and "kestra://" in sneaky.json()["message"]
    uploaded = client.post(f"/executions/{paused['id']}/resume", files={"files": ("doc", b"signed\n")})
    assert uploaded.status_code == 204
    until_state(client, paused["id"], "SUCCESS")
    shown = [
        entry["message"] for entry in client.get(f"/logs/{paused['id']}", params={"taskId": "show"}).json()
    ]
    assert shown == ["signed"]


def test_an_expression_is_evaluated_for_a_task_run_as_kestras_debugger_does(client: httpx.Client) -> None:
    execution = client.post(
        "/executions/acme.api/hello", files={"name": (None, "Ada")}, params={"wait": "true"}
    ).json()
    greet = next(run for run in execution["taskRunList"] if run["taskId"] == "greet")
    url = f"/executions/{execution['id']}/eval/{greet['id']}"
    answered = client.post(
        url, content="{{ task.id }} for {{ inputs.name }}", headers={"content-type": "text/plain"}
    )
    assert answered.status_code == 200 and answered.json() == {
        "result": "greet for Ada",
        "error": None,
        "stackTrace": None,
    }
    failing = client.post(
        f"/main{url}", content="{{ outputs.nothing }}", headers={"content-type": "text/plain"}
    )
    assert failing.status_code == 200
    assert failing.json()["result"] is None and "Unable to find `nothing`" in failing.json()["error"]
    assert failing.json()["position"] == {"line": 1, "column": 12}
    unknown = client.post(f"/executions/{execution['id']}/eval/nope", content="{{ 1 }}")
    assert unknown.status_code == 404 and "no task run `nope`" in unknown.json()["message"]
    assert client.post("/executions/nope/eval/nope", content="{{ 1 }}").status_code == 404
