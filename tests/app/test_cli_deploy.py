"""`tiercel deploy` and `tiercel pull` against Tiercel's own server through Kestra's API: a flows folder
and its namespace files go to the server, and come back the same."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.app.test_cli import clean_env, tiercel, write
from tests.app.test_cli_server import Server
from tests.waiting import HANG


def log_flow(flow_id: str, namespace: str, message: str) -> str:
    return (
        f"# {flow_id}, deployed\nid: {flow_id}\nnamespace: {namespace}\ntasks:\n"
        f"  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: {message}\n"
    )


def project(folder: Path) -> Path:
    write(folder, "team/a.yml", log_flow("a", "acme.team", "one"))
    write(folder, "team/b.yml", log_flow("b", "acme.team", "two"))
    write(folder, "other/c.yml", log_flow("c", "acme.other", "three"))
    (folder / "_files" / "acme.team" / "sql").mkdir(parents=True)
    (folder / "_files" / "acme.team" / "sql" / "q.sql").write_text("select 1;\n")
    (folder / "_files" / "acme.team" / "seed.csv").write_bytes(b"a,b\n1,2\n")
    return folder


def server_flows(server: Server, namespace: str) -> list[str]:
    found = httpx.get(f"{server.url}/api/v1/main/flows/{namespace}", timeout=HANG).json()
    return [flow["id"] for flow in found]


def test_deploy_then_pull_round_trip(tmp_path: Path) -> None:
    source = project(tmp_path / "project")
    server_folder = tmp_path / "server-flows"
    server_folder.mkdir()
    server = Server(server_folder, tmp_path / "t.db")
    try:
        deployed = tiercel("deploy", "--flows", source, "--to", server.url, "--json")
        assert deployed.returncode == 0, deployed.stderr
        report = json.loads(deployed.stdout)["namespaces"]
        assert report["acme.team"] == {"flows": 2, "answered": ["a", "b"], "files": 2}
        assert server_flows(server, "acme.team") == ["a", "b"]
        assert (server_folder / "acme" / "team" / "a.yml").read_text() == log_flow("a", "acme.team", "one")
        assert (server_folder / "_files" / "acme.team" / "sql" / "q.sql").read_text() == "select 1;\n"

        (source / "team" / "b.yml").unlink()
        write(source, "team/a.yml", log_flow("a", "acme.team", "changed"))
        again = tiercel(
            "deploy", "--flows", source, "--to", server.url, "--namespace", "acme.team", "--delete"
        )
        assert again.returncode == 0, again.stderr
        assert "acme.other" not in again.stdout
        assert server_flows(server, "acme.team") == ["a"]
        got = httpx.get(f"{server.url}/api/v1/flows/acme.team/a", timeout=HANG).json()
        assert (got["revision"], got["tasks"][0]["message"]) == (2, "changed")

        pulled = tmp_path / "pulled"
        write(pulled, "mine.yml", log_flow("a", "acme.team", "old"))  # a flow the folder has already
        brought = tiercel("pull", "--from", server.url, "--flows", pulled, "acme")
        assert brought.returncode == 0, brought.stderr
        assert (pulled / "mine.yml").read_text() == log_flow("a", "acme.team", "changed")
        assert not (pulled / "acme" / "team" / "a.yml").exists()  # written where it was, not twice
        assert (pulled / "acme" / "other" / "c.yml").read_text() == log_flow("c", "acme.other", "three")
        assert (pulled / "_files" / "acme.team" / "seed.csv").read_bytes() == b"a,b\n1,2\n"
        assert (pulled / "_files" / "acme.team" / "sql" / "q.sql").read_text() == "select 1;\n"
    finally:
        server.stop()


def test_nothing_is_sent_while_a_flow_is_invalid_and_a_refusal_is_said(tmp_path: Path) -> None:
    source = project(tmp_path / "project")
    write(source, "team/broken.yml", "id: broken\nnamespace: acme.team\ntasks: []\n")
    server_folder = tmp_path / "server-flows"
    server_folder.mkdir()
    server = Server(server_folder, tmp_path / "t.db", env=clean_env(TIERCEL_API_USER="admin:s3cret"))
    try:
        refused = tiercel("deploy", "--flows", source, "--to", server.url)
        assert refused.returncode == 1
        assert "broken.yml:3:8: tasks:" in refused.stderr and "nothing deployed" in refused.stderr
        (source / "team" / "broken.yml").unlink()

        no_password = tiercel("deploy", "--flows", source, "--to", server.url)
        assert no_password.returncode == 1 and "401" in no_password.stderr
        wrong = tiercel(
            "deploy", "--flows", source, "--to", server.url, "--user", "admin",
            env=clean_env(TIERCEL_DEPLOY_PASSWORD="nope"),
        )  # fmt: skip
        assert wrong.returncode == 1 and "401" in wrong.stderr
        right = tiercel(
            "deploy", "--flows", source, "--to", server.url, "--user", "admin",
            env=clean_env(TIERCEL_DEPLOY_PASSWORD="s3cret"),
        )  # fmt: skip
        assert right.returncode == 0, right.stderr
        assert not list(server_folder.rglob("broken.yml"))
    finally:
        server.stop()
    gone = tiercel("deploy", "--flows", source, "--to", server.url)
    assert gone.returncode == 1 and "Connection refused" in gone.stderr
