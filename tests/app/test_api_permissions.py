"""Namespace permissions on Kestra's REST API: a real `tiercel server --users FILE`, each route asked by
a user holding the permission it needs (let through) and by one holding the permission below it
(refused with a 403 naming what lacks and where); lists leave out what a user may not read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.app.test_cli import write
from tests.app.test_cli_server import Server
from tests.waiting import HANG
from tiercel.app.api.users import hash_password

NS = "acme.finance"
PAY = f"""
id: pay
namespace: {NS}
tasks:
  - id: note
    type: io.kestra.plugin.core.log.Log
    message: paid
"""
HOOKED = f"""
id: hooked
namespace: {NS}
tasks:
  - id: note
    type: io.kestra.plugin.core.log.Log
    message: called
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: the-key
"""
OTHER = """
id: other
namespace: elsewhere
tasks:
  - id: note
    type: io.kestra.plugin.core.log.Log
    message: hi
"""
DECLARATIONS = {
    "acme/_namespace.yaml": "permissions:\n  - group: analysts\n    permission: READ\n",
    "acme/finance/_namespace.yaml": (
        "permissions:\n"
        "  - username: runner\n    permission: EXECUTE\n"
        "  - username: keeper\n    permission: OWNER\n"
        "  - group: analysts\n    permission: read\n"
    ),
}
# Who holds what on acme.finance: each password is the name backwards.
USERS = {"reader": ["analysts"], "runner": [], "keeper": [], "stranger": []}
HOLDING = {"READ": "reader", "EXECUTE": "runner", "OWNER": "keeper"}
BELOW = {"READ": "stranger", "EXECUTE": "reader", "OWNER": "runner"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("permissions")
    flows = folder / "flows"
    users = users_file(folder)
    flows_files = {"acme/finance/pay.yml": PAY, "acme/finance/hooked.yml": HOOKED, "other.yml": OTHER}
    for name, source in flows_files.items():
        write(flows, name, source)
    for name, text in DECLARATIONS.items():
        write(flows, name, text)
    server = Server(flows, folder / "t.db", "--users", users)
    ids: dict[str, str] = {}
    with as_user(server, "root") as root:
        for namespace, flow_id in ((NS, "pay"), ("elsewhere", "other")):
            made = root.post(f"/executions/{namespace}/{flow_id}", params={"wait": "true"})
            assert made.status_code == 200, made.text
            ids[flow_id] = made.json()["id"]
        ids["task_run"] = root.get(f"/executions/{ids['pay']}").json()["taskRunList"][0]["id"]
    yield server, ids
    server.stop()


def users_file(folder: Path) -> Path:
    entries = [
        {"name": name, "password": hash_password(name[::-1]), "groups": groups}
        for name, groups in USERS.items()
    ]
    entries.append({"name": "root", "password": hash_password("toor"), "owner": True})
    users = folder / "users.yaml"
    users.write_text(yaml.safe_dump({"users": entries}))
    return users


def as_user(server: Server, name: str) -> httpx.Client:
    password = "toor" if name == "root" else name[::-1]
    return httpx.Client(base_url=f"{server.url}/api/v1", auth=(name, password), timeout=HANG)


# Every route that touches a namespace, and the permission it needs on it.
ROUTES = [
    ("READ", "GET", "/flows/acme.finance/pay", {}),
    ("READ", "GET", "/flows/acme.finance", {}),
    ("READ", "GET", "/executions/{pay}", {}),
    ("READ", "GET", "/executions/{pay}/follow", {}),
    ("READ", "GET", "/logs/{pay}", {}),
    ("READ", "GET", "/logs/{pay}/download", {}),
    ("READ", "GET", "/metrics/{pay}", {}),
    ("READ", "GET", "/namespaces/acme.finance/files/directory", {}),
    ("READ", "GET", "/namespaces/acme.finance/files", {"params": {"path": "missing.txt"}}),
    ("READ", "GET", "/namespaces/acme.finance/kv", {}),
    ("READ", "GET", "/namespaces/acme.finance/kv/missing", {}),
    ("EXECUTE", "POST", "/executions/acme.finance/pay", {}),
    ("EXECUTE", "DELETE", "/executions/{pay}/kill", {}),
    ("EXECUTE", "POST", "/executions/{pay}/restart", {}),
    ("EXECUTE", "POST", "/executions/{pay}/replay", {}),
    ("EXECUTE", "POST", "/executions/{pay}/resume", {}),
    ("EXECUTE", "POST", "/executions/{pay}/eval/{task_run}", {"content": "{{ 1 + 1 }}"}),
    (
        "OWNER",
        "POST",
        "/flows",
        {"content": PAY.replace("id: pay", "id: made"), "headers": {"Content-Type": "application/x-yaml"}},
    ),
    (
        "OWNER",
        "PUT",
        "/flows/acme.finance/pay",
        {"content": PAY, "headers": {"Content-Type": "application/x-yaml"}},
    ),
    ("OWNER", "DELETE", "/flows/acme.finance/missing", {}),
    (
        "OWNER",
        "POST",
        "/flows/acme.finance",
        {"content": "not: [a flow", "headers": {"Content-Type": "application/x-yaml"}},
    ),
    (
        "OWNER",
        "POST",
        "/namespaces/acme.finance/files",
        {"params": {"path": "a.txt"}, "files": {"fileContent": ("a.txt", b"a")}},
    ),
    ("OWNER", "DELETE", "/namespaces/acme.finance/files", {"params": {"path": "missing.txt"}}),
    ("OWNER", "PUT", "/namespaces/acme.finance/kv/k", {"content": "1"}),
    ("OWNER", "DELETE", "/namespaces/acme.finance/kv/k", {}),
]


@pytest.mark.parametrize(
    ("permission", "method", "path", "options"), ROUTES, ids=[f"{r[1]} {r[2]}" for r in ROUTES]
)
def test_each_route_lets_through_who_holds_its_permission_and_refuses_the_one_below(
    served: tuple[Server, dict[str, str]], permission: str, method: str, path: str, options: dict[str, object]
) -> None:
    server, ids = served
    url = path.format(**ids)
    with as_user(server, BELOW[permission]) as below:
        refused = below.request(method, url, **options)  # type: ignore[arg-type]
    assert refused.status_code == 403, refused.text
    assert f"lacks {permission} on namespace `{NS}`" in refused.json()["message"]
    with as_user(server, HOLDING[permission]) as holder:
        let = holder.request(method, url, **options)  # type: ignore[arg-type]
    assert let.status_code not in (401, 403), let.text


def test_lists_leave_out_what_a_user_may_not_read(served: tuple[Server, dict[str, str]]) -> None:
    server, ids = served
    with (
        as_user(server, "reader") as reader,
        as_user(server, "stranger") as stranger,
        as_user(server, "root") as root,
    ):
        assert {f["namespace"] for f in reader.get("/flows/search").json()["results"]} == {NS}
        assert stranger.get("/flows/search").json() == {"results": [], "total": 0}
        assert {f["namespace"] for f in root.get("/flows/search").json()["results"]} == {NS, "elsewhere"}
        seen = {e["id"] for e in reader.get("/executions/search").json()["results"]}
        assert ids["pay"] in seen and ids["other"] not in seen
        assert stranger.get("/executions/search").json()["total"] == 0
        assert root.get(f"/executions/{ids['other']}").status_code == 200
        refused = reader.get(f"/executions/{ids['other']}")
        assert refused.status_code == 403 and "`elsewhere`" in refused.json()["message"]


def test_without_a_users_credentials_the_api_asks_for_them(served: tuple[Server, dict[str, str]]) -> None:
    server, _ = served
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=HANG) as anonymous:
        assert anonymous.get("/flows/search").status_code == 401
    with httpx.Client(base_url=f"{server.url}/api/v1", auth=("reader", "wrong"), timeout=HANG) as wrong:
        answer = wrong.get("/flows/search")
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == 'Basic realm="Kestra"'


def test_following_an_executions_logs_needs_read_on_its_namespace(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, ids = served
    with as_user(server, "stranger") as stranger:
        refused = stranger.get(f"/logs/{ids['pay']}/follow")
    assert refused.status_code == 403 and f"lacks READ on namespace `{NS}`" in refused.json()["message"]
    with as_user(server, "reader") as reader, reader.stream("GET", f"/logs/{ids['pay']}/follow") as followed:
        assert followed.status_code == 200  # the stream never ends by itself: closed here


WEBHOOK = f"/executions/webhook/{NS}/hooked/the-key"


def test_a_webhook_call_needs_a_user_who_may_run_its_namespace(served: tuple[Server, dict[str, str]]) -> None:
    server, _ = served
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=HANG) as anonymous:
        asked = anonymous.post(WEBHOOK)
        # An unknown flow is not told apart from a known one before the credentials.
        unknown = anonymous.post(f"/executions/webhook/{NS}/missing/the-key")
    assert asked.status_code == unknown.status_code == 401
    assert asked.headers["www-authenticate"] == 'Basic realm="Kestra"'
    with as_user(server, "reader") as reader:
        refused = reader.post(WEBHOOK)
    assert refused.status_code == 403, refused.text
    assert f"User `reader` lacks EXECUTE on namespace `{NS}` (holds READ there)" in refused.json()["message"]
    for name in ("runner", "root"):
        with as_user(server, name) as holder:
            started = holder.post(WEBHOOK, headers={"X-Kept": "yes"})
        assert started.status_code == 200, started.text
        assert started.json()["flowId"] == "hooked"
        # The credentials the gate took are not kept where readers of the namespace would see them.
        headers = started.json()["trigger"]["variables"]["headers"]
        assert headers["x-kept"] == ["yes"] and "authorization" not in headers
    with as_user(server, "runner") as runner:
        assert runner.post(f"/executions/webhook/{NS}/hooked/wrong-key").status_code == 404


def test_open_webhooks_take_the_key_alone_beside_users(tmp_path: Path) -> None:
    write(tmp_path / "flows", "hooked.yml", HOOKED)
    server = Server(tmp_path / "flows", tmp_path / "t.db", "--users", users_file(tmp_path), "--open-webhooks")
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", timeout=HANG) as anonymous:
            assert anonymous.post(WEBHOOK).status_code == 200
            assert anonymous.get("/flows/search").status_code == 401  # the API still asks
    finally:
        server.stop()
