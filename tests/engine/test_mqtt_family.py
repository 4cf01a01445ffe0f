"""The MQTT family (io.kestra.plugin.mqtt) against the Mosquitto broker on 127.0.0.1:1883: Kestra's
documented examples run through a real engine, what Subscribe stored read back from the internal
storage, and what the broker delivers checked with aiomqtt itself. Each test uses topics of its own
(a uuid) and clears the retained messages it leaves."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tiercel.engine.families.mqtt.tasks import consume
from tiercel.engine.model import StateType
from tiercel.engine.parser import parse_flow
from tiercel.engine.parser.errors import FlowParseError
from tiercel.engine.tasks.registry import registry

from ..waiting import until
from .brokers import ion_rows, module_missing, outputs, run_to_end, succeeded
from .helpers import logs_of, messages, run, running_engine

SERVER = "tcp://127.0.0.1:1883"


@pytest.fixture
async def base() -> AsyncIterator[str]:
    """A topic prefix of this test's own; the retained messages under it are cleared afterwards."""
    prefix = f"tc/{uuid.uuid4().hex[:12]}"
    yield prefix
    async with aiomqtt.Client("127.0.0.1", 1883, timeout=5) as client:
        await client.subscribe(f"{prefix}/#")
        retained: list[str] = []
        try:
            async with asyncio.timeout(0.5):  # retained messages come at once, or not at all
                async for message in client.messages:
                    retained.append(str(message.topic))
        except TimeoutError:
            pass
        for topic in retained:
            await client.publish(topic, b"", retain=True)


def test_the_family_comes_through_its_entry_point() -> None:
    plugins = registry()
    assert not plugins.failures
    assert plugins.source("io.kestra.plugin.mqtt.Publish").startswith("tiercel ")
    assert plugins.lookup("io.kestra.plugin.mqtt.Subscribe") is not None


PUBLISH_AND_SUBSCRIBE = """
id: mqtt_publish
namespace: company.team
tasks:
  - id: publish
    type: io.kestra.plugin.mqtt.Publish
    server: tcp://localhost:1883
    clientId: kestraProducer_{unique}
    qos: 1
    topic: {base}/sensors/cpu
    serdeType: JSON
    retain: true
    from:
      type: "sensors"
      value: 1.23
  - id: publish_mem
    type: io.kestra.plugin.mqtt.Publish
    server: tcp://localhost:1883
    mqttVersion: V3
    topic: {base}/sensors/mem
    serdeType: JSON
    retain: true
    from:
      - type: "memory"
        value: 4
  - id: subscribe
    type: io.kestra.plugin.mqtt.Subscribe
    server: tcp://localhost:1883
    clientId: kestraProducer_{unique}
    qos: 1
    maxDuration: 30s
    topic:
      - {base}/sensors/cpu
      - {base}/sensors/mem
    serdeType: JSON
    maxRecords: 2
"""


async def test_publish_and_subscribe_as_kestra_documents_them(tmp_path: Path, base: str) -> None:
    flow = PUBLISH_AND_SUBSCRIBE.format(base=base, unique=uuid.uuid4().hex[:8])
    async with running_engine(tmp_path, flow) as engine:
        execution = await run(engine, "company.team", "mqtt_publish")
        await succeeded(engine, execution)
        assert outputs(execution, "publish") == {"messagesCount": 1}
        assert outputs(execution, "publish_mem") == {"messagesCount": 1}
        subscribed = outputs(execution, "subscribe")
        assert subscribed["messagesCount"] == 2
        rows = sorted(ion_rows(engine, subscribed["uri"]), key=lambda row: row["topic"])
        assert [(row["topic"], row["payload"], row["retain"], row["qos"]) for row in rows] == [
            (f"{base}/sensors/cpu", {"type": "sensors", "value": 1.23}, True, 1),
            (f"{base}/sensors/mem", {"type": "memory", "value": 4}, True, 1),
        ]
        counted = {(m.name, m.tags.get("topic")): m.value for m in await engine.metrics(execution.id)}
        assert counted[("records", f"{base}/sensors/cpu")] >= 1
        assert ("duration", None) in counted
    # What the broker keeps: the retained message as Kestra serialises it (compact JSON).
    got = await consume(
        {"server": SERVER, "topic": f"{base}/sensors/cpu", "serdeType": "STRING", "maxRecords": 1}
    )
    assert got[0]["payload"] == '{"type":"sensors","value":1.23}'


REQUEST = """
id: mqtt_request
namespace: company.team
tasks:
  - id: request
    type: io.kestra.plugin.mqtt.Publish
    server: tcp://localhost:1883
    clientId: kestraRequester_{unique}
    topic: {base}/requests
    responseTopic: {base}/replies/{{{{ execution.id }}}}
    correlationData: "{{{{ execution.id | base64encode }}}}"
    serdeType: JSON
    from:
      question: "what is the cpu load?"
  - id: several
    type: io.kestra.plugin.mqtt.Publish
    server: tcp://localhost:1883
    mqttVersion: V3
    qos: 2
    topic: {base}/requests
    serdeType: STRING
    from:
      - plain text
      - {{nested: [1, true]}}
"""


async def test_a_request_carries_its_response_topic_and_correlation_data(tmp_path: Path, base: str) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5, timeout=5) as client:
        await client.subscribe(f"{base}/requests", qos=2)
        flow = REQUEST.format(base=base, unique=uuid.uuid4().hex[:8])
        async with running_engine(tmp_path, flow) as engine:
            execution = await run(engine, "company.team", "mqtt_request")
            await succeeded(engine, execution)
            assert outputs(execution, "several") == {"messagesCount": 2}
        received = []
        async with asyncio.timeout(20):
            async for message in client.messages:
                received.append(message)
                if len(received) == 3:
                    break
    request = received[0]
    assert request.payload == b'{"question":"what is the cpu load?"}'
    assert request.properties is not None
    assert getattr(request.properties, "ResponseTopic", None) == f"{base}/replies/{execution.id}"
    assert getattr(request.properties, "CorrelationData", None) == execution.id.encode()
    # STRING sends each item's text, a map as Java's toString shows it.
    assert [message.payload for message in received[1:]] == [b"plain text", b"{nested=[1, true]}"]


SUBSCRIBE_LIVE = """
id: mqtt_subscribe_live
namespace: company.team
tasks:
  - id: subscribe
    type: io.kestra.plugin.mqtt.Subscribe
    server: {server}
    mqttVersion: V3
    topic: {base}/live/+
    serdeType: STRING
    qos: 0
    maxRecords: 3
    maxDuration: PT60S
  - id: replay
    type: io.kestra.plugin.mqtt.Publish
    server: {server}
    topic: {base}/replayed
    serdeType: JSON
    from: "{{{{ outputs.subscribe.uri }}}}"
"""


async def test_subscribe_stops_at_max_records_and_its_file_can_be_published_again(
    tmp_path: Path, base: str
) -> None:
    async with (
        aiomqtt.Client("127.0.0.1", 1883, timeout=5) as client,
        running_engine(tmp_path, SUBSCRIBE_LIVE.format(server=SERVER, base=base)) as engine,
    ):
        await client.subscribe(f"{base}/replayed", qos=1)
        execution_id = await engine.trigger("company.team", "mqtt_subscribe_live", {}, [])
        waiting = asyncio.ensure_future(engine.wait(execution_id))
        sent = 0
        while not waiting.done():  # messages sent before the subscription are lost: send until it ends
            await client.publish(f"{base}/live/{sent % 2}", f"m{sent}".encode())
            sent += 1
            await asyncio.wait({waiting}, timeout=0.05)
        execution = waiting.result()
        await succeeded(engine, execution)
        rows = ion_rows(engine, outputs(execution, "subscribe")["uri"])
        assert outputs(execution, "subscribe")["messagesCount"] == 3 == len(rows)
        numbers = [int(row["payload"][1:]) for row in rows]
        assert numbers == list(range(numbers[0], numbers[0] + 3))
        assert [row["topic"] for row in rows] == [f"{base}/live/{n % 2}" for n in numbers]
        assert not any(row["retain"] for row in rows)
        assert outputs(execution, "replay") == {"messagesCount": 3}
        replayed = []
        async with asyncio.timeout(20):
            async for message in client.messages:
                replayed.append(message.payload)
                if len(replayed) == 3:
                    break
    assert [json.loads(payload)["payload"] for payload in replayed] == [f"m{n}" for n in numbers]


BAD = """
id: bad
namespace: company.team
tasks:
  - id: task
    type: io.kestra.plugin.mqtt.{task}
"""


@pytest.mark.parametrize(
    ("task", "properties", "expected"),
    [
        ("Publish", {"server": "tcp://127.0.0.1:1", "from": "x", "serdeType": "STRING"}, "at 127.0.0.1:1"),
        (
            "Publish",
            {"server": SERVER, "from": "x", "serdeType": "STRING", "qos": 3},
            "`qos` must be between",
        ),
        ("Publish", {"server": SERVER, "from": "x", "serdeType": "XML"}, "`serdeType` `XML`"),
        ("Publish", {"server": SERVER, "from": "not a uri", "serdeType": "JSON"}, "`from` must be a message"),
        (
            "Publish",
            {"server": SERVER, "from": "x", "serdeType": "STRING", "correlationData": "%%"},
            "Base64",
        ),
        ("Subscribe", {"server": SERVER}, "`maxRecords` or `maxDuration` is required"),
        ("Subscribe", {"server": "http://127.0.0.1:1883", "maxRecords": 1}, "must be tcp://host:port"),
    ],
)
async def test_bad_settings_fail_the_task_saying_what(
    tmp_path: Path, base: str, task: str, properties: dict[str, Any], expected: str
) -> None:
    body = "".join(f"    {key}: {value!r}\n" for key, value in {"topic": f"{base}/t", **properties}.items())
    async with running_engine(tmp_path, BAD.format(task=task) + body) as engine:
        execution = await asyncio.wait_for(run(engine, "company.team", "bad"), 30)
        assert execution.state.current is StateType.FAILED
        assert any(expected in line for line in messages(await logs_of(engine, execution.id)))


async def test_a_payload_that_is_not_json_fails_subscribe(tmp_path: Path, base: str) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883, timeout=5) as client:
        await client.publish(f"{base}/t", b"not json", qos=1, retain=True)
    body = f"    server: {SERVER}\n    topic: {base}/t\n    maxRecords: 1\n    maxDuration: PT20S\n"
    async with running_engine(tmp_path, BAD.format(task="Subscribe") + body) as engine:
        execution = await run(engine, "company.team", "bad")
        assert execution.state.current is StateType.FAILED
        logs = messages(await logs_of(engine, execution.id))
        assert any(f"A message of `{base}/t` is not JSON" in line for line in logs)


MALFORMED = """
id: malformed
namespace: company.team
inputs:
  - id: file
    type: FILE
tasks:
  - id: publish
    type: io.kestra.plugin.mqtt.Publish
    server: {server}
    topic: {base}/x
    serdeType: JSON
    from: "{{{{ inputs.file }}}}"
"""


async def test_a_malformed_ion_line_in_from_fails_naming_the_line(tmp_path: Path, base: str) -> None:
    source = tmp_path / "messages.ion"
    source.write_text('{data:"fine"}\n{data:"broken\n')
    async with running_engine(tmp_path, MALFORMED.format(server=SERVER, base=base)) as engine:
        execution, said = await run_to_end(engine, "malformed", {"file": str(source)}, timeout=30)
        assert execution.state.current is StateType.FAILED
        assert any("`from` line 2" in line for line in said)


def _broker_sockets() -> int:
    """This process's TCP connections to port 1883."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2].endswith(":075B") and fields[3] == "01":  # remote port 1883, ESTABLISHED
            inodes.add(fields[9])
    mine = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            mine += 1
    return mine


SLOW = """
id: slow
namespace: company.team
tasks:
  - id: subscribe
    type: io.kestra.plugin.mqtt.Subscribe
    server: {server}
    topic: {base}/never
    maxDuration: PT60S
    timeout: PT1S
"""


async def test_a_subscriber_past_its_timeout_disconnects(tmp_path: Path, base: str) -> None:
    async with running_engine(tmp_path, SLOW.format(server=SERVER, base=base)) as engine:
        execution = await asyncio.wait_for(run(engine, "company.team", "slow"), 30)
        assert execution.state.current is StateType.FAILED
        gone: bool = await until(lambda: _broker_sockets() == 0, what="the subscriber to disconnect")
        assert gone


def test_a_flow_using_mqtt_without_aiomqtt_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    body = f"    server: {SERVER}\n    topic: t\n    maxRecords: 1\n"
    expected = r"needs the Python module aiomqtt.*'tiercel\[mqtt\]'"
    with module_missing(monkeypatch, "aiomqtt"), pytest.raises(FlowParseError, match=expected):
        parse_flow(BAD.format(task="Subscribe") + body)
