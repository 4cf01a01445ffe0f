"""The polling triggers of the broker families (redis list.Trigger, amqp, nats and mqtt Trigger),
polled by the scheduler as plugin TriggerTypes against the real services on 127.0.0.1: messages
sent with each service's own client start one execution whose `trigger` variables hold their count
and an Ion file of them. The realtime triggers are refused when the flow loads, saying what to use."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aiomqtt
import nats
import pytest
import redis.asyncio

from tiercel.engine.engine import Engine
from tiercel.engine.model import Execution
from tiercel.engine.plugin import ion_loads

from ..waiting import until
from .helpers import running_engine


def trigger_flow(trigger: str) -> str:
    return f"""
id: consumer
namespace: company.team
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: "{{{{ trigger.uri }}}}"
triggers:
  - id: watch
    interval: PT0.2S
{trigger}"""


async def fired(engine: Engine) -> Execution:
    """The first ended execution the trigger started."""

    async def ended() -> Execution | None:
        for summary in await engine.list_executions(namespace="company.team", flow_id="consumer"):
            execution = await engine.execution(summary.id)
            if execution is not None and execution.state.current.is_terminated:
                return execution
        return None

    found = await until(ended, what="an execution started by the trigger")
    assert found is not None
    return found


def messages_of(engine: Engine, execution: Execution) -> list[Any]:
    assert execution.trigger is not None
    uri = execution.trigger["variables"]["uri"]
    return [ion_loads(line) for line in engine.storage.read_bytes(uri).decode().splitlines()]


async def test_the_redis_list_trigger_pops_what_was_pushed(tmp_path: Path) -> None:
    key = f"tc:{uuid.uuid4().hex}"
    client = redis.asyncio.Redis.from_url("redis://127.0.0.1:6379")
    try:
        await client.rpush(key, json.dumps({"n": 1}), json.dumps({"n": 2}))
        trigger = (
            "    type: io.kestra.plugin.redis.list.Trigger\n    url: redis://127.0.0.1:6379\n"
            f"    key: {key}\n    serdeType: JSON\n    maxRecords: 10\n"
        )
        async with running_engine(tmp_path, trigger_flow(trigger)) as engine:
            execution = await fired(engine)
            assert execution.trigger is not None and execution.trigger["variables"]["count"] == 2
            assert messages_of(engine, execution) == [{"n": 1}, {"n": 2}]
        assert await client.llen(key) == 0
    finally:
        await client.delete(key)
        await client.aclose()


async def test_the_amqp_trigger_consumes_the_queue(tmp_path: Path) -> None:
    queue = f"tc-{uuid.uuid4().hex}"
    connection = await aio_pika.connect_robust("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue)
        for body in (b'"first"', b'"second"'):
            await channel.default_exchange.publish(aio_pika.Message(body=body), routing_key=queue)
        trigger = (
            "    type: io.kestra.plugin.amqp.Trigger\n    host: 127.0.0.1\n    port: 5672\n"
            "    username: guest\n    password: guest\n"
            f"    queue: {queue}\n    serdeType: JSON\n    maxRecords: 2\n    maxDuration: PT5S\n"
        )
        async with running_engine(tmp_path, trigger_flow(trigger)) as engine:
            execution = await fired(engine)
            assert execution.trigger is not None and execution.trigger["variables"]["count"] == 2
            assert [message["data"] for message in messages_of(engine, execution)] == ["first", "second"]
    finally:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await connection.close()


async def test_the_nats_trigger_consumes_a_durable_consumer(tmp_path: Path) -> None:
    name = f"tc{uuid.uuid4().hex[:12]}"
    client = await nats.connect("nats://127.0.0.1:4222", allow_reconnect=False, connect_timeout=5)
    js = client.jetstream()
    try:
        await js.add_stream(name=name, subjects=[f"{name}.>"])
        await js.publish(f"{name}.orders", b"one")
        await js.publish(f"{name}.orders", b"two")
        trigger = (
            "    type: io.kestra.plugin.nats.core.Trigger\n    url: nats://127.0.0.1:4222\n"
            f"    subject: {name}.orders\n    durableId: watcher\n    maxRecords: 10\n"
        )
        async with running_engine(tmp_path, trigger_flow(trigger)) as engine:
            execution = await fired(engine)
            assert execution.trigger is not None and execution.trigger["variables"]["messagesCount"] == 2
            assert [message["data"] for message in messages_of(engine, execution)] == ["one", "two"]
    finally:
        await js.delete_stream(name)
        await client.close()


async def test_the_mqtt_trigger_gets_a_retained_message(tmp_path: Path) -> None:
    topic = f"tc/{uuid.uuid4().hex[:12]}/state"
    async with aiomqtt.Client("127.0.0.1", 1883, timeout=5) as client:
        await client.publish(topic, json.dumps({"on": True}), qos=1, retain=True)
    try:
        trigger = (
            "    type: io.kestra.plugin.mqtt.Trigger\n    server: tcp://127.0.0.1:1883\n"
            f"    topic: {topic}\n    maxRecords: 1\n    maxDuration: PT5S\n"
        )
        async with running_engine(tmp_path, trigger_flow(trigger)) as engine:
            execution = await fired(engine)
            assert execution.trigger is not None and execution.trigger["variables"]["messagesCount"] == 1
            [message] = messages_of(engine, execution)
            assert message["topic"] == topic and message["payload"] == {"on": True}
    finally:
        async with aiomqtt.Client("127.0.0.1", 1883, timeout=5) as client:
            await client.publish(topic, b"", qos=1, retain=True)  # clears the retained message


@pytest.mark.parametrize(
    ("realtime", "polling"),
    [
        ("io.kestra.plugin.redis.list.RealtimeTrigger", "io.kestra.plugin.redis.list.Trigger"),
        ("io.kestra.plugin.amqp.RealtimeTrigger", "io.kestra.plugin.amqp.Trigger"),
        ("io.kestra.plugin.nats.RealtimeTrigger", "io.kestra.plugin.nats.core.Trigger"),
        ("io.kestra.plugin.mqtt.RealtimeTrigger", "io.kestra.plugin.mqtt.Trigger"),
    ],
)
def test_a_realtime_trigger_is_refused_saying_what_to_use(
    tmp_path: Path, realtime: str, polling: str
) -> None:
    (tmp_path / "flow.yml").write_text(trigger_flow(f"    type: {realtime}\n"))
    tiercel = Path(sys.executable).parent / "tiercel"
    check = subprocess.run(
        [str(tiercel), "validate", str(tmp_path / "flow.yml")], capture_output=True, text=True
    )
    assert check.returncode == 1
    assert "realtime triggers" in check.stdout and f"use the polling `{polling}`" in check.stdout
