"""The webhook server: real HTTP requests on loopback against a real engine and SQLite store."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import webhook
from engine.engine import Engine
from engine.model import StateType
from engine.webhook import MAX_BODY_BYTES, WebhookServer
from tests.engine.helpers import logs_of, running_engine

KEY = "s3cr3t-Key_4wjtkzwVGBM9"
HOOKED = f"""
id: hooked
namespace: acme.web
inputs:
  - id: who
    type: STRING
    defaults: nobody
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: >-
      {{{{ trigger.body.name ?? trigger.body }}}}|{{{{ trigger.headers['x-team'][0] ?? '-' }}}}|{{{{
      inputs.who }}}}|{{{{ trigger.parameters.page[0] ?? '-' }}}}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {KEY}
    inputs:
      who: "{{{{ trigger.body.name ?? 'text' }}}}"
"""
GUARDED = """
id: guarded
namespace: acme.web
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: "{{ trigger.body.kind }}"}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: "{{ flow.id }}-key"
    conditions:
      - type: io.kestra.plugin.core.condition.Expression
        expression: "{{ trigger.body.kind == 'push' }}"
"""
DISABLED_FLOW = f"""
id: off
namespace: acme.web
disabled: true
tasks:
  - {{id: log, type: io.kestra.plugin.core.log.Log, message: never}}
triggers:
  - {{id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: {KEY}}}
"""
DISABLED_TRIGGER = f"""
id: quiet
namespace: acme.web
tasks:
  - {{id: log, type: io.kestra.plugin.core.log.Log, message: never}}
triggers:
  - {{id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: {KEY}, disabled: true}}
"""


def url(server: WebhookServer, flow_id: str, key: str = KEY, namespace: str = "acme.web") -> str:
    return f"{server.url}/api/v1/executions/webhook/{namespace}/{flow_id}/{key}"


@asynccontextmanager
async def serving(tmp_path: Path, *flows: str) -> AsyncIterator[tuple[Engine, WebhookServer]]:
    async with running_engine(tmp_path, *flows) as engine:
        server = WebhookServer(engine, port=0)
        await server.start()
        try:
            yield engine, server
        finally:
            await server.stop()


async def raw(server: WebhookServer, data: bytes, *, read_all: bool = True) -> tuple[int, dict[str, Any]]:
    """Send raw bytes on a fresh connection; return the status and JSON body of the response."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status = int(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        return status, json.loads(body) if body else {}
    finally:
        writer.close()


def post(server: WebhookServer, flow_id: str, body: bytes, extra: str = "") -> bytes:
    path = f"/api/v1/executions/webhook/acme.web/{flow_id}/{KEY}"
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


# ---------------------------------------------------------------------------------------------
# Executions started by a webhook
# ---------------------------------------------------------------------------------------------


async def test_post_json_starts_an_execution_that_sees_body_headers_and_parameters(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (engine, server), httpx.AsyncClient() as client:
        response = await client.post(
            url(server, "hooked") + "?page=7", json={"name": "ada"}, headers={"X-Team": "core"}
        )
        assert response.status_code == 200, response.text
        created = response.json()
        assert created["namespace"] == "acme.web" and created["flowId"] == "hooked"
        assert created["trigger"]["id"] == "hook"
        assert created["trigger"]["type"] == "io.kestra.plugin.core.trigger.Webhook"
        assert created["trigger"]["variables"]["body"] == {"name": "ada"}
        assert created["trigger"]["variables"]["headers"]["x-team"] == ["core"]
        assert created["trigger"]["variables"]["parameters"] == {"page": ["7"]}
        # The answer comes once the execution is stored.
        stored = await engine.store.get_execution(created["id"])
        assert stored is not None and stored.inputs == {"who": "ada"}
        ended = await asyncio.wait_for(engine.wait(created["id"]), 20)
        assert ended.state.current is StateType.SUCCESS
        assert ended.task_runs[0].outputs == {"value": "ada|core|ada|7"}


async def test_get_and_put_are_accepted_and_a_text_body_stays_text(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (engine, server), httpx.AsyncClient() as client:
        got = await client.get(url(server, "hooked"))
        put = await client.put(
            url(server, "hooked"), content=b"plain words", headers={"content-type": "text/plain"}
        )
        assert got.status_code == 200 and put.status_code == 200
        assert put.json()["trigger"]["variables"]["body"] == "plain words"
        ended = await asyncio.wait_for(engine.wait(put.json()["id"]), 20)
        assert ended.task_runs[0].outputs == {"value": "plain words|-|text|-"}
        assert (await asyncio.wait_for(engine.wait(got.json()["id"]), 20)).state.current is StateType.SUCCESS


async def test_conditions_decide_between_204_and_an_execution(tmp_path: Path) -> None:
    async with serving(tmp_path, GUARDED) as (engine, server), httpx.AsyncClient() as client:
        target = url(server, "guarded", key="guarded-key")  # the key is rendered: {{ flow.id }}-key
        skipped = await client.post(target, json={"kind": "tag"})
        assert skipped.status_code == 204
        assert await engine.store.count_executions(flow_id="guarded") == 0
        taken = await client.post(target, json={"kind": "push"})
        assert taken.status_code == 200
        ended = await asyncio.wait_for(engine.wait(taken.json()["id"]), 20)
        assert "push" in [entry.message for entry in await logs_of(engine, ended.id)]


async def test_unknown_flow_or_wrong_key_is_404_and_creates_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (engine, server), httpx.AsyncClient() as client:
        wrong_key = await client.post(url(server, "hooked", key=KEY + "x"), json={})
        no_flow = await client.post(url(server, "missing"), json={})
        other_route = await client.post(f"{server.url}/api/v1/executions/other", json={})
        assert (wrong_key.status_code, no_flow.status_code, other_route.status_code) == (404, 404, 404)
        assert wrong_key.json()["message"] == "Webhook not found"
        assert no_flow.json()["message"] == "Flow not found"
        assert await engine.store.count_executions() == 0


async def test_disabled_flow_or_trigger_is_409(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, DISABLED_FLOW, DISABLED_TRIGGER) as (engine, server),
        httpx.AsyncClient() as c,
    ):
        off = await c.post(url(server, "off"), json={})
        quiet = await c.post(url(server, "quiet"), json={})
        assert off.status_code == 409 and "disabled" in off.json()["message"]
        assert quiet.status_code == 409 and "trigger `hook` is disabled" in quiet.json()["message"]
        assert await engine.store.count_executions() == 0


async def test_key_is_compared_with_hmac_compare_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhook.hmac, "compare_digest", spy)
    async with serving(tmp_path, HOOKED) as (_, server), httpx.AsyncClient() as client:
        assert (await client.post(url(server, "hooked", key="nope"), json={})).status_code == 404
    assert compared == [(KEY.encode(), b"nope")]


async def test_bad_inputs_are_422(tmp_path: Path) -> None:
    source = HOOKED.replace("type: STRING\n    defaults: nobody", "type: INT\n    defaults: 1")
    async with serving(tmp_path, source) as (engine, server), httpx.AsyncClient() as client:
        response = await client.post(url(server, "hooked"), json={"name": "not a number"})
        assert response.status_code == 422
        assert "who" in response.json()["message"]
        assert await engine.store.count_executions() == 0


WAITED = """
id: waited
namespace: acme.web
tasks:
  - {id: up, type: io.kestra.plugin.core.debug.Return, format: "{{ trigger.body.word | upper }}"}
outputs:
  - {id: shout, type: STRING, value: "{{ outputs.up.value }}"}
triggers:
  - {id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: k, wait: true, returnOutputs: true}
"""


async def test_wait_and_return_outputs_answer_with_the_flow_outputs(tmp_path: Path) -> None:
    async with serving(tmp_path, WAITED) as (engine, server), httpx.AsyncClient() as client:
        response = await client.post(url(server, "waited", key="k"), json={"word": "hey"}, timeout=30)
        assert response.status_code == 200 and response.json() == {"shout": "HEY"}
        [row] = await engine.store.list_executions(flow_id="waited")
        assert row.state == "SUCCESS"


# ---------------------------------------------------------------------------------------------
# Limits and malformed requests
# ---------------------------------------------------------------------------------------------


async def test_a_body_over_one_mib_is_refused_with_413_before_it_is_read(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (engine, server):
        path = f"/api/v1/executions/webhook/acme.web/hooked/{KEY}"
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
        # Only the head and a few bytes are sent: the answer must not wait for the rest.
        status, body = await raw(server, head.encode() + b"{")
        assert status == 413 and "larger than the limit" in body["message"]
        chunked = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        status, _ = await raw(server, chunked.encode() + f"{MAX_BODY_BYTES + 1:x}\r\n".encode())
        assert status == 413
        exact = json.dumps({"name": "x" * (MAX_BODY_BYTES - 20)}).encode()
        assert len(exact) <= MAX_BODY_BYTES
        status, _ = await raw(server, post(server, "hooked", exact))
        assert status == 200
        assert await engine.store.count_executions() == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GARBAGE\r\n\r\n", "Malformed request line"),
        (b"GET nopath HTTP/1.1\r\n\r\n", "Malformed request line"),
        (b"GET / HTTP/9.9\r\n\r\n", "Unsupported protocol"),
        (b"POST /x HTTP/1.1\r\nHost x\r\n\r\n", "Malformed header line"),
        (
            f"POST /api/v1/executions/webhook/acme.web/hooked/{KEY} HTTP/1.1\r\n\r\n{{}}".encode(),
            "Content-Length",
        ),
        (b"POST /x HTTP/1.1\r\nContent-Length: ten\r\n\r\n", "Invalid Content-Length"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Invalid Content-Length"),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "Unsupported Transfer-Encoding"),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"GET /\xff HTTP/1.1\r\n\r\n", "ASCII"),
    ],
)
async def test_malformed_requests_get_400_and_the_server_keeps_serving(
    tmp_path: Path, data: bytes, message: str
) -> None:
    async with serving(tmp_path, HOOKED) as (_, server):
        status, body = await raw(server, data)
        assert status == 400 and message in body["message"], body
        status, body = await raw(server, post(server, "hooked", b'{"name": "after"}'))
        assert status == 200 and body["trigger"]["variables"]["body"] == {"name": "after"}


async def test_a_non_utf8_body_is_400(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (engine, server):
        status, body = await raw(server, post(server, "hooked", b'{"name": "\xff\xfe"}'))
        assert status == 400 and "UTF-8" in body["message"]
        assert await engine.store.count_executions() == 0


async def test_other_methods_are_405(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (_, server), httpx.AsyncClient() as client:
        response = await client.delete(url(server, "hooked"))
        assert response.status_code == 405 and response.headers["allow"] == "GET, POST, PUT"


async def test_keep_alive_serves_several_requests_on_one_connection(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (engine, server):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            for name in ("one", "two", "three"):
                writer.write(post(server, "hooked", json.dumps({"name": name}).encode()))
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                assert head.startswith(b"HTTP/1.1 200") and b"Connection: keep-alive" in head
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                assert (
                    json.loads(await reader.readexactly(length))["trigger"]["variables"]["body"]["name"]
                    == name
                )
        finally:
            writer.close()
        assert await engine.store.count_executions(flow_id="hooked") == 3


async def test_a_slow_client_is_cut_off_with_408(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhook, "HEAD_SECONDS", 0.3)
    async with serving(tmp_path, HOOKED) as (_, server):
        # The request line arrives, then the headers trickle in and never end.
        status, body = await raw(server, b"POST /x HTTP/1.1\r\nX-Slow: 1\r\n")
        assert status == 408 and "did not arrive" in body["message"]
        status, _ = await raw(server, post(server, "hooked", b"{}"))
        assert status == 200


async def test_an_idle_connection_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhook, "IDLE_SECONDS", 0.2)
    async with serving(tmp_path, HOOKED) as (_, server):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server, no answer
        finally:
            writer.close()
