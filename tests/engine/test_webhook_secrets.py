"""Webhook answers are shown to the client: secret values in them go out masked, data stays real."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.engine.helpers import running_engine
from tiercel.engine.engine import Engine
from tiercel.engine.triggers.webhook import WebhookServer

TOKEN = "wh-Secret-Token-981"
FLOWS = [
    """
    id: typed
    namespace: acme.web
    inputs:
      - {id: count, type: INT}
    tasks:
      - {id: log, type: io.kestra.plugin.core.log.Log, message: "{{ inputs.count }}"}
    triggers:
      - id: hook
        type: io.kestra.plugin.core.trigger.Webhook
        key: hook-key-1
        inputs: {count: "{{ secret('API_TOKEN') }}"}
    """,
    """
    id: answer
    namespace: acme.web
    tasks:
      - {id: token, type: io.kestra.plugin.core.debug.Return, format: "{{ secret('API_TOKEN') }}"}
    outputs:
      - {id: token, type: STRING, value: "{{ outputs.token.value }}"}
    triggers:
      - id: hook
        type: io.kestra.plugin.core.trigger.Webhook
        key: hook-key-2
        wait: true
        returnOutputs: true
    """,
]


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[Engine, WebhookServer]]:
    async with running_engine(tmp_path, *FLOWS) as engine:
        server = WebhookServer(engine, port=0)
        await server.start()
        try:
            yield engine, server
        finally:
            await server.stop()


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_API_TOKEN", base64.b64encode(TOKEN.encode()).decode())


async def test_an_error_text_never_carries_a_secret(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_, server), httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/api/v1/executions/webhook/acme.web/typed/hook-key-1")
    assert response.status_code == 422, response.text
    assert TOKEN not in response.text
    assert "******" in response.json()["message"]


async def test_returned_outputs_are_masked_and_the_stored_ones_real(tmp_path: Path) -> None:
    async with serving(tmp_path) as (engine, server), httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{server.url}/api/v1/executions/webhook/acme.web/answer/hook-key-2")
        executions = await engine.store.list_executions(namespace="acme.web", flow_id="answer")
        stored = await engine.store.get_execution(executions[0].id)
    assert response.status_code == 200, response.text
    assert response.json() == {"token": "******"}
    assert stored is not None and (stored.outputs or {})["token"] == TOKEN
