"""The webhook server: real HTTP requests on loopback against a real engine and SQLite store."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engine.helpers import logs_of, running_engine
from tests.waiting import until
from tiercel.engine import httpserver
from tiercel.engine.engine import Engine
from tiercel.engine.events import EngineError
from tiercel.engine.inputs import InputError
from tiercel.engine.model import StateType
from tiercel.engine.triggers import webhook
from tiercel.engine.triggers.webhook import MAX_BODY_BYTES, WebhookServer

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


HOOK_PATH = f"/api/v1/executions/webhook/acme.web/hooked/{KEY}"


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


async def test_a_condition_that_fails_to_render_is_422_with_its_message(tmp_path: Path) -> None:
    source = GUARDED.replace("trigger.body.kind == 'push'", "trigger.body.nope.deeper == 'push'")
    async with serving(tmp_path, source) as (engine, server), httpx.AsyncClient() as client:
        response = await client.post(url(server, "guarded", key="guarded-key"), json={"kind": "push"})
        assert response.status_code == 422
        assert "Invalid condition" in response.json()["message"]
        assert await engine.store.count_executions() == 0


@pytest.mark.slow
async def test_costly_webhook_inputs_render_off_the_event_loop(tmp_path: Path) -> None:
    # A runaway jq program in the trigger's inputs fails at the render's time limit (5 s), and the
    # engine's loop stays free meanwhile.
    source = HOOKED.replace(
        "{{ trigger.body.name ?? 'text' }}", "{{ trigger.body.name | jq('last(range(3e8))') }}"
    )
    async with serving(tmp_path, source) as (_engine, server), httpx.AsyncClient(timeout=30) as client:
        lags: list[float] = []

        async def watch_the_loop() -> None:
            while True:
                before = asyncio.get_running_loop().time()
                await asyncio.sleep(0.01)
                lags.append(asyncio.get_running_loop().time() - before - 0.01)

        watcher = asyncio.create_task(watch_the_loop())
        try:
            response = await client.post(url(server, "hooked"), json={"name": 1})
        finally:
            watcher.cancel()
        assert response.status_code == 422
        assert "took longer than" in response.json()["message"]
        # The 10 ms watcher kept running through the seconds the render took: a render on the
        # loop would have let it run once or twice at most.
        assert len(lags) >= 10


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


async def test_a_body_over_one_mib_is_refused_with_413(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (engine, server):
        path = f"/api/v1/executions/webhook/acme.web/hooked/{KEY}"
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
        # Only the head and a few bytes are sent: a declared length over the cap is refused at once.
        status, body = await raw(server, head.encode() + b"{")
        assert status == 413 and "larger than the limit" in body["message"]
        # A chunked body is refused as soon as what arrived passes the cap.
        chunked = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        oversized = f"{MAX_BODY_BYTES + 1:x}\r\n".encode() + b"x" * (MAX_BODY_BYTES + 1)
        status, _ = await raw(server, chunked.encode() + oversized)
        assert status == 413
        exact = json.dumps({"name": "x" * (MAX_BODY_BYTES - 20)}).encode()
        assert len(exact) <= MAX_BODY_BYTES
        status, _ = await raw(server, post(server, "hooked", exact))
        assert status == 200
        assert await engine.store.count_executions() == 1


async def test_a_post_without_body_or_length_has_an_empty_body(tmp_path: Path) -> None:
    # `curl -X POST URL` sends neither Content-Length nor a body: HTTP/1.1 reads that as no body.
    async with serving(tmp_path, HOOKED) as (engine, server):
        request = f"POST {HOOK_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        status, body = await raw(server, request)
        assert status == 200, body
        assert body["trigger"]["variables"]["body"] is None
        ended = await asyncio.wait_for(engine.wait(body["id"]), 20)
        assert ended.state.current is StateType.SUCCESS


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"GARBAGE\r\n\r\n", 400, "illegal request line"),
        (b"GET nopath HTTP/1.1\r\nHost: x\r\n\r\n", 400, "Malformed request target"),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400, "Unsupported protocol"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "Host"),
        (b"POST /x HTTP/1.1\r\nHost x\r\n\r\n", 400, "illegal header line"),
        (b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n", 400, "bad Content-Length"),
        (
            b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            400,
            "Content-Length",
        ),
        (
            b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            b"0\r\n\r\n",
            400,
            "both Content-Length and Transfer-Encoding",
        ),
        (b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "Transfer-Encoding"),
        (b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk header"),
        (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "illegal request line"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \xff\r\n\r\n", 400, "UTF-8"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431, "larger than"),
    ],
)
async def test_malformed_requests_are_refused_and_the_server_keeps_serving(
    tmp_path: Path, data: bytes, status: int, message: str
) -> None:
    async with serving(tmp_path, HOOKED) as (_, server):
        answered, body = await raw(server, data)
        assert answered == status and message in body["message"], body
        answered, body = await raw(server, post(server, "hooked", b'{"name": "after"}'))
        assert answered == 200 and body["trigger"]["variables"]["body"] == {"name": "after"}


async def test_a_non_utf8_body_is_400(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (engine, server):
        status, body = await raw(server, post(server, "hooked", b'{"name": "\xff\xfe"}'))
        assert status == 400 and "UTF-8" in body["message"]
        assert await engine.store.count_executions() == 0


async def test_other_methods_are_405(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (_, server), httpx.AsyncClient() as client:
        response = await client.delete(url(server, "hooked"))
        assert response.status_code == 405 and response.headers["allow"] == "GET, POST, PUT"


async def test_head_is_405_without_a_body_and_nothing_is_reported(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (engine, server), httpx.AsyncClient() as client:
        events = engine.events.subscribe()
        response = await client.head(url(server, "hooked"))
        assert response.status_code == 405 and response.content == b""
        assert response.headers["allow"] == "GET, POST, PUT"
        assert (await client.post(url(server, "hooked"), json={})).status_code == 200
        assert not [e for e in engine.events.drain(events) if isinstance(e, EngineError)]
        assert await engine.store.count_executions() == 1


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


async def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (_, server):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(b"".join(post(server, "hooked", json.dumps({"name": n}).encode()) for n in "abc"))
            await writer.drain()
            names = []
            for _ in range(3):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                names.append(json.loads(await reader.readexactly(length))["trigger"]["variables"]["body"])
            assert names == [{"name": "a"}, {"name": "b"}, {"name": "c"}]
        finally:
            writer.close()


async def test_expect_100_continue_is_answered_before_the_body_is_sent(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (_, server):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            body = b'{"name": "patient"}'
            head = f"POST {HOOK_PATH} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode())
            await writer.drain()
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert interim.startswith(b"HTTP/1.1 100 ")
            writer.write(body)
            final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert final.startswith(b"HTTP/1.1 200 ")
        finally:
            writer.close()


async def test_http_1_0_is_answered_and_closed(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (_, server):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            writer.write(f"GET {HOOK_PATH} HTTP/1.0\r\n\r\n".encode())
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)  # read() ends when the server closes
            assert answer.startswith(b"HTTP/1.1 200") and b"Connection: close" in answer
        finally:
            writer.close()


async def test_a_slow_client_is_cut_off_with_408(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpserver, "HEAD_SECONDS", 0.3)
    async with serving(tmp_path, HOOKED) as (_, server):
        # The request line arrives, then the headers trickle in and never end.
        status, body = await raw(server, b"POST /x HTTP/1.1\r\nX-Slow: 1\r\n")
        assert status == 408 and "did not arrive" in body["message"]
        status, _ = await raw(server, post(server, "hooked", b"{}"))
        assert status == 200


async def test_an_idle_connection_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpserver, "IDLE_SECONDS", 0.2)
    async with serving(tmp_path, HOOKED) as (_, server):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server, no answer
        finally:
            writer.close()


async def test_idle_connections_give_way_to_a_request_from_the_same_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpserver, "MAX_PER_CLIENT", 4)
    async with serving(tmp_path, HOOKED) as (_, server):
        idle = [await asyncio.open_connection(server.host, server.port) for _ in range(10)]
        try:
            status, _ = await raw(server, post(server, "hooked", b"{}"))
            assert status == 200
            await asyncio.sleep(0.2)
            # The longest idle ones were closed to make room; the newest stay open.
            closed = [reader.at_eof() for reader, _ in idle]
            assert closed == [True] * 7 + [False] * 3
        finally:
            for _, writer in idle:
                writer.close()


async def test_unfinished_request_heads_give_way_to_a_whole_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpserver, "MAX_PER_CLIENT", 4)
    async with serving(tmp_path, HOOKED) as (_, server):
        slow = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(b"POST /x HTTP/1.1\r\nX-Never-Ends: ")
            await writer.drain()
            slow.append((reader, writer))
        await asyncio.sleep(0.2)  # their heads have begun
        try:
            status, _ = await raw(server, post(server, "hooked", b"{}"))
            assert status == 200  # not 503 until the slow heads time out
            await asyncio.sleep(0.2)
            assert [reader.at_eof() for reader, _ in slow] == [True, False, False, False]
        finally:
            for _, writer in slow:
                writer.close()


async def test_at_the_servers_cap_the_busiest_address_gives_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpserver, "MAX_CONNECTIONS", 3)
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("127.0.0.2 is not a loopback address here")
    async with serving(tmp_path, HOOKED) as (_, server):
        idle = [await asyncio.open_connection(server.host, server.port) for _ in range(3)]
        try:
            reader, writer = await asyncio.open_connection(
                server.host, server.port, local_addr=("127.0.0.2", 0)
            )
            writer.write(post(server, "hooked", b"{}"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.close()
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.2)
            assert [r.at_eof() for r, _ in idle] == [True, False, False]
        finally:
            for _, idle_writer in idle:
                idle_writer.close()


async def test_a_client_that_never_reads_its_answers_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpserver, "SEND_SECONDS", 0.3)
    monkeypatch.setattr(httpserver, "MAX_PER_CLIENT", 1)
    async with serving(tmp_path, HOOKED) as (_, server):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((server.host, server.port))
        _, writer = await asyncio.open_connection(sock=sock)
        try:
            # Each answer echoes its 1 MiB body: eight of them fill every buffer between us.
            big = post(server, "hooked", json.dumps({"name": "x" * (MAX_BODY_BYTES - 20)}).encode())
            writer.write(big * 8)
            await writer.drain()

            async def answer_once_not_busy() -> int | None:
                # Its one connection is busy (503) until the server gives up on it.
                status, _ = await raw(server, post(server, "hooked", b"{}"))
                return None if status == 503 else status

            assert await until(answer_once_not_busy, what="an answer other than 503", interval=0.1) == 200
        finally:
            writer.close()


# ---------------------------------------------------------------------------------------------
# Strict parsing: bad numbers and lines get a 400 answer, never an exception left to asyncio
# ---------------------------------------------------------------------------------------------


def chunked(*lines: bytes) -> bytes:
    return f"POST {HOOK_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + b"".join(
        lines
    )


def with_length(length: str, body: bytes = b"") -> bytes:
    return f"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode() + body


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        pytest.param(with_length("²"), 400, "bad Content-Length", id="superscript-length"),
        pytest.param(with_length("1_0", b"0123456789"), 400, "bad Content-Length", id="underscore-length"),
        pytest.param(with_length("+5", b"01234"), 400, "bad Content-Length", id="signed-length"),
        pytest.param(with_length("1234567890123"), 413, "larger than the limit", id="13-digit-length"),
        pytest.param(with_length("9" * 40), 400, "bad Content-Length", id="40-digit-length"),
        pytest.param(chunked(b"-1\r\nx\r\n0\r\n\r\n"), 400, "chunk header", id="negative-chunk"),
        pytest.param(chunked(b"0x10\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"), 400, "chunk header", id="0x-chunk"),
        pytest.param(
            chunked(b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"), 400, "chunk header", id="underscore-chunk"
        ),
        pytest.param(chunked(b"1" * 25 + b"\r\n"), 400, "chunk header", id="25-digit-chunk"),
        pytest.param(chunked(b"\r\n"), 400, "chunk header", id="empty-chunk-size"),
        pytest.param(chunked(b"1" * 70_000 + b"\r\n"), 400, "chunk header", id="70k-chunk-line"),
        pytest.param(chunked(b"3\r\nabcXY0\r\n\r\n"), 400, "chunk", id="chunk-without-crlf"),
    ],
)
async def test_bad_lengths_and_chunk_sizes_are_refused_without_an_unhandled_exception(
    tmp_path: Path, data: bytes, status: int, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(tmp_path, HOOKED) as (_, server):
        answered, body = await raw(server, data)
        assert answered == status and message in body["message"], body
        assert len(body["message"]) < 400  # the offending bytes are quoted, not echoed whole
        answered, _ = await raw(server, post(server, "hooked", b'{"name": "after"}'))
        assert answered == 200
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text


async def test_chunk_extensions_are_ignored_and_the_body_is_read(tmp_path: Path) -> None:
    async with serving(tmp_path, HOOKED) as (_, server):
        body = b'{"name": "chunky"}'
        status, answer = await raw(
            server, chunked(f"{len(body):X};ext=1\r\n".encode() + body + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
        )
        assert status == 200 and answer["trigger"]["variables"]["body"] == {"name": "chunky"}


async def test_an_unexpected_error_is_answered_and_reported_once_on_the_bus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(self: WebhookServer, request: httpserver.Request) -> httpserver.Response:
        raise RuntimeError("handler broke")

    monkeypatch.setattr(WebhookServer, "handle", broken)
    async with serving(tmp_path, HOOKED) as (engine, server):
        events = engine.events.subscribe()
        status, body = await raw(server, post(server, "hooked", b"{}"))
        assert status == 500 and "handler broke" in body["message"]
        reported = [e for e in engine.events.drain(events) if isinstance(e, EngineError)]
        assert [e.message for e in reported] == ["Webhook server: RuntimeError: handler broke"]
        status, _ = await raw(server, post(server, "hooked", b"{}"))
        assert status == 500  # the server keeps serving
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


# ---------------------------------------------------------------------------------------------
# `wait: true`: bounded, and released when the client goes away
# ---------------------------------------------------------------------------------------------

PAUSED = """
id: paused
namespace: acme.web
tasks:
  - {id: hold, type: io.kestra.plugin.core.flow.Pause}
  - {id: after, type: io.kestra.plugin.core.debug.Return, format: done}
triggers:
  - {id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: k, wait: true}
"""


async def test_a_wait_answers_with_the_execution_as_it_is_after_the_wait_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook, "WAIT_SECONDS", 0.5)
    async with serving(tmp_path, PAUSED) as (engine, server), httpx.AsyncClient() as client:
        response = await client.post(url(server, "paused", key="k"), json={}, timeout=30)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["state"]["current"] == "PAUSED" and answer["flowId"] == "paused"
        stored = await engine.execution(answer["id"])
        assert stored is not None and stored.state.current is StateType.PAUSED


async def test_a_waiting_client_that_goes_away_frees_its_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpserver, "MAX_PER_CLIENT", 2)
    monkeypatch.setattr(httpserver, "GONE_CHECK_SECONDS", 0.05)
    request = "POST /api/v1/executions/webhook/acme.web/paused/k HTTP/1.1\r\nHost: x\r\n"
    request += "Content-Length: 2\r\n\r\n{}"
    async with serving(tmp_path, PAUSED, HOOKED) as (engine, server):
        writers = []
        for _ in range(2):
            _, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(request.encode())
            await writer.drain()
            writers.append(writer)

        async def both_stored() -> bool:
            return await engine.store.count_executions(flow_id="paused") >= 2

        await until(both_stored, what="two stored executions")
        # Both connections are busy with a request: a third one is refused, not let in by closing one.
        status, body = await raw(server, post(server, "hooked", b'{"name": "third"}'))
        assert status == 503 and "Too many connections" in body["message"]
        for writer in writers:
            writer.close()

        # Both waits end with their clients, so a third client is served rather than refused with 503.
        async def third_answer() -> int | None:
            status, _ = await raw(server, post(server, "hooked", b'{"name": "third"}'))
            return None if status == 503 else status

        assert await until(third_answer, what="an answer to the third client other than 503") == 200


# ---------------------------------------------------------------------------------------------
# An abandoned request: once stored, its execution starts
# ---------------------------------------------------------------------------------------------


async def test_an_execution_stored_for_an_abandoned_request_still_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(httpserver, "GONE_CHECK_SECONDS", 0.05)
    async with serving(tmp_path, HOOKED) as (engine, server):
        # Another connection holds the database's write lock: the engine is busy, saves wait.
        blocker = sqlite3.connect(engine.store.path, timeout=10, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            writers = []
            for index in range(10):
                _, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(post(server, "hooked", json.dumps({"name": f"n{index}"}).encode()))
                await writer.drain()
                writers.append(writer)
            await asyncio.sleep(0.5)  # every request is now waiting for its execution to be stored
            for writer in writers:
                writer.close()  # the clients give up
            await asyncio.sleep(0.5)  # and their requests are dropped
        finally:
            blocker.execute("COMMIT")
            blocker.close()

        async def all_ten_succeeded() -> bool:
            rows = await engine.store.list_executions(flow_id="hooked")
            return len(rows) == 10 and all(row.state == "SUCCESS" for row in rows)

        await until(all_ten_succeeded, what="ten successful executions", interval=0.1)


# ---------------------------------------------------------------------------------------------
# FILE inputs: a trigger may pass only kestra:// URIs, never a local path
# ---------------------------------------------------------------------------------------------

UPLOAD = """
id: upload
namespace: acme.web
inputs:
  - {id: doc, type: FILE}
tasks:
  - {id: show, type: io.kestra.plugin.core.log.Log, message: "{{ read(inputs.doc) }}"}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: k
    inputs:
      doc: "{{ trigger.body.doc }}"
"""
PARENT = """
id: parent
namespace: acme.web
inputs:
  - {id: doc, type: FILE}
tasks:
  - id: child
    type: io.kestra.plugin.core.flow.Subflow
    namespace: acme.web
    flowId: upload
    inputs:
      doc: "{{ inputs.doc }}"
"""


async def test_a_webhook_cannot_make_a_file_input_copy_a_local_file(tmp_path: Path) -> None:
    private = tmp_path / "id_rsa"
    private.write_text("-----BEGIN PRIVATE KEY-----\n")
    async with serving(tmp_path, UPLOAD) as (engine, server), httpx.AsyncClient() as client:
        response = await client.post(url(server, "upload", key="k"), json={"doc": str(private)})
        assert response.status_code == 422, response.text
        message = response.json()["message"]
        assert "input `doc`" in message and "kestra://" in message
        assert await engine.store.count_executions() == 0
        assert list(engine.storage.root.rglob("id_rsa")) == []
        # A kestra:// URI of a file already in the storage is taken.
        uri = engine.storage.put_bytes(
            engine.storage.execution_uri("acme.web", "x", "e1"), "a.txt", b"shared"
        )
        taken = await client.post(url(server, "upload", key="k"), json={"doc": uri})
        assert taken.status_code == 200, taken.text
        ended = await asyncio.wait_for(engine.wait(taken.json()["id"]), 20)
        assert ended.state.current is StateType.SUCCESS
        assert "shared" in [entry.message for entry in await logs_of(engine, ended.id)]


async def test_a_webhook_cannot_hand_a_file_input_another_namespaces_file(tmp_path: Path) -> None:
    async with serving(tmp_path, UPLOAD) as (engine, server), httpx.AsyncClient() as client:
        theirs = engine.storage.put_bytes(
            engine.storage.execution_uri("finance.payroll", "run", "e1"), "salaries.csv", b"alice,100"
        )
        response = await client.post(url(server, "upload", key="k"), json={"doc": theirs})
        assert response.status_code == 422, response.text
        message = response.json()["message"]
        assert "input `doc`" in message and "belongs to namespace `finance.payroll`" in message
        assert await engine.store.count_executions() == 0
        # A file of a parent namespace (acme) is the execution's to read.
        shared = engine.storage.put_bytes(engine.storage.execution_uri("acme", "x", "e2"), "a.txt", b"acme")
        taken = await client.post(url(server, "upload", key="k"), json={"doc": shared})
        assert taken.status_code == 200, taken.text
        ended = await asyncio.wait_for(engine.wait(taken.json()["id"]), 20)
        assert "acme" in [entry.message for entry in await logs_of(engine, ended.id)]


async def test_only_the_users_own_commands_may_name_a_local_file(tmp_path: Path) -> None:
    local = tmp_path / "report.csv"
    local.write_text("a,b\n")
    async with running_engine(tmp_path, UPLOAD, PARENT) as engine:
        with pytest.raises(InputError, match="input `doc`"):
            await engine.trigger("acme.web", "upload", {"doc": str(local)})
        with pytest.raises(InputError, match="input `doc`"):
            engine.new_execution(engine.flows[("acme.web", "upload")], {"doc": str(local)})
        # `tiercel run` and the run form pass local_files=True; the subflow gets the parent's URI.
        parent_id = await engine.trigger("acme.web", "parent", {"doc": str(local)}, local_files=True)
        parent = await asyncio.wait_for(engine.wait(parent_id), 20)
        assert parent.state.current is StateType.SUCCESS
        assert str(parent.inputs["doc"]).startswith("kestra:///acme/web/parent/executions/")
        [child] = await engine.store.list_executions(flow_id="upload")
        child_execution = await engine.execution(child.id)
        assert child_execution is not None and child_execution.inputs["doc"] == parent.inputs["doc"]
        assert "a,b\n" in [entry.message for entry in await logs_of(engine, child.id)]
