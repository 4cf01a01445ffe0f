"""The dashboard serves webhook triggers when asked (`tiercel ui --webhooks`), as `tiercel server` does."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.waiting import until_drawn
from tiercel.app.api import api_app
from tiercel.app.api.asgi import asgi_handler
from tiercel.app.api.auth import webhook_gate
from tiercel.app.api.users import User, Users, hash_password
from tiercel.app.app import TiercelApp
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.engine import Engine, HttpHandler, WebhookGate, WebhookServer

HOOKED = """
id: hooked
namespace: acme.web
tasks:
  - id: said
    type: io.kestra.plugin.core.log.Log
    message: "webhook says {{ trigger.body.word }}"
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: dash-key
"""


def webhooks_of(app: TiercelApp) -> WebhookServer | None:
    return app.session.webhook_server if app.session is not None else None


async def test_a_webhook_starts_an_execution_that_shows_live(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "hooked.yml").write_text(HOOKED)
    app = TiercelApp(flows, tmp_path / "t.db", control=False, webhooks=("127.0.0.1", 0))
    async with app.run_test(size=(100, 30)) as pilot:
        await until_drawn(pilot, lambda: webhooks_of(app) is not None and app.ns_tree.flow_count == 1)
        server = webhooks_of(app)
        assert server is not None
        app.ns_tree.select_ref(NodeRef("flow", "acme.web", "hooked"))
        url = f"{server.url}/api/v1/executions/webhook/acme.web/hooked/dash-key"
        async with httpx.AsyncClient() as client:
            answer = await client.post(url, json={"word": "hello"})
        assert answer.status_code == 200, answer.text
        execution_id = answer.json()["id"]
        await until_drawn(pilot, lambda: execution_id in app.table.rows_by_id)
        await until_drawn(pilot, lambda: app.table.rows_by_id[execution_id].state == "SUCCESS")
        assert app.table.rows_by_id[execution_id].trigger == "Webhook"
        port = server.port
    # The port is closed with the app.
    async with httpx.AsyncClient() as client:
        try:
            await client.post(f"http://127.0.0.1:{port}/", timeout=2)
            refused = False
        except httpx.ConnectError:
            refused = True
    assert refused


async def test_the_dashboard_serves_the_api_beside_its_webhooks(tmp_path: Path) -> None:
    """`tiercel ui --webhooks` answers Kestra's API too: an execution started through it shows live."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "hooked.yml").write_text(HOOKED)

    def api(engine: Engine) -> HttpHandler:
        return asgi_handler(api_app(engine))

    app = TiercelApp(flows, tmp_path / "t.db", control=False, webhooks=("127.0.0.1", 0), api=api)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_drawn(pilot, lambda: webhooks_of(app) is not None and app.ns_tree.flow_count == 1)
        server = webhooks_of(app)
        assert server is not None
        app.ns_tree.select_ref(NodeRef("flow", "acme.web", "hooked"))
        async with httpx.AsyncClient(base_url=f"{server.url}/api/v1/main") as client:
            assert (await client.get("/flows/acme.web/hooked")).json()["id"] == "hooked"
            made = await client.post("/executions/acme.web/hooked")
        assert made.status_code == 200, made.text
        execution_id = made.json()["id"]
        await until_drawn(pilot, lambda: execution_id in app.table.rows_by_id)
        # Started by hand, it has no webhook body to read: its task fails, and the table says so.
        await until_drawn(pilot, lambda: app.table.rows_by_id[execution_id].state == "FAILED")
        assert app.table.rows_by_id[execution_id].trigger == "manual"


async def test_the_dashboards_webhooks_ask_for_a_user_when_it_has_users(tmp_path: Path) -> None:
    """`tiercel ui --webhooks --users FILE`: a webhook call needs a user who may run the namespace."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "hooked.yml").write_text(HOOKED)
    (flows / "_namespace.yaml").write_text(
        "id: acme\npermissions:\n  - username: ann\n    permission: EXECUTE\n"
    )
    users = Users([User("ann", hash_password("nna")), User("bob", hash_password("bob"))])

    def gate(engine: Engine) -> WebhookGate:
        return webhook_gate(users, None, engine.catalog.namespaces.chain)

    app = TiercelApp(flows, tmp_path / "t.db", control=False, webhooks=("127.0.0.1", 0), gate=gate)
    async with app.run_test(size=(100, 30)) as pilot:
        await until_drawn(pilot, lambda: webhooks_of(app) is not None and app.ns_tree.flow_count == 1)
        server = webhooks_of(app)
        assert server is not None
        url = f"{server.url}/api/v1/executions/webhook/acme.web/hooked/dash-key"
        async with httpx.AsyncClient() as client:
            assert (await client.post(url, json={"word": "hi"})).status_code == 401
            refused = await client.post(url, json={"word": "hi"}, auth=("bob", "bob"))
            let_in = await client.post(url, json={"word": "hi"}, auth=("ann", "nna"))
        assert refused.status_code == 403 and "lacks EXECUTE on namespace `acme.web`" in refused.text
        assert let_in.status_code == 200, let_in.text
        await until_drawn(pilot, lambda: let_in.json()["id"] in app.table.rows_by_id)
