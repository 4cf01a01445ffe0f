"""The amqp family (io.kestra.plugin.amqp) against the RabbitMQ broker on 127.0.0.1:5672: Kestra's
documented examples run through a real engine, and what the broker holds afterwards is read with
aio_pika. Each test declares queues and exchanges of its own (uuid names), deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from tiercel.engine.families.amqp.consuming import consume_messages, listen
from tiercel.engine.families.amqp.messages import FIELDS
from tiercel.engine.model import StateType
from tiercel.engine.plugin import TaskFailure, ion_dumps
from tiercel.engine.tasks.registry import registry

from ..waiting import until
from .brokers import ion_rows, outputs, run_to_end, validate_without
from .helpers import running_engine

NS = "company.team"
BROKER = "host: 127.0.0.1\n    port: 5672\n    username: guest\n    password: guest\n    virtualHost: /"


class Names:
    """Queue and exchange names of one test, and a connection to look at (and clean) the broker."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self.connection = connection
        self.prefix = f"tc.{uuid.uuid4().hex[:10]}"
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, name: str = "queue") -> str:
        self.queues.append(f"{self.prefix}.{name}")
        return self.queues[-1]

    def exchange(self, name: str = "exchange") -> str:
        self.exchanges.append(f"{self.prefix}.{name}")
        return self.exchanges[-1]

    async def declare(self, name: str) -> aio_pika.abc.AbstractQueue:
        channel = await self.connection.channel()
        return await channel.declare_queue(name, durable=False)

    async def counts(self, name: str) -> tuple[int, int]:
        """(messages ready, consumers) of a queue."""
        channel = await self.connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        declared = queue.declaration_result
        await channel.close()
        return declared.message_count or 0, declared.consumer_count or 0

    async def send(self, queue: str, *bodies: bytes) -> None:
        channel = await self.connection.channel()
        for body in bodies:
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)
        await channel.close()


@pytest.fixture
async def names() -> AsyncIterator[Names]:
    connection = await aio_pika.connect(host="127.0.0.1", port=5672, timeout=10)
    found = Names(connection)
    try:
        yield found
    finally:
        channel = await connection.channel()
        for queue in found.queues:
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        for exchange in found.exchanges:
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)
        await connection.close()


async def test_the_family_comes_through_its_entry_point() -> None:
    tasks = registry()
    assert not tasks.failures
    for name in ("Publish", "Consume", "CreateQueue", "DeclareExchange", "QueueBind"):
        assert tasks.source(f"io.kestra.plugin.amqp.{name}").startswith("tiercel ")


# Kestra's examples of the five tasks, chained as its sanity check chains them.
ALL_AMQP = f"""
id: all_amqp
namespace: company.team
inputs:
  - id: exchange
    type: STRING
  - id: queue
    type: STRING
tasks:
  - id: declare_exchange
    type: io.kestra.plugin.amqp.DeclareExchange
    {BROKER}
    name: "{{{{ inputs.exchange }}}}"
  - id: create_queue
    type: io.kestra.plugin.amqp.CreateQueue
    {BROKER}
    name: "{{{{ inputs.queue }}}}"
  - id: queue_bind
    type: io.kestra.plugin.amqp.QueueBind
    {BROKER}
    exchange: "{{{{ inputs.exchange }}}}"
    queue: "{{{{ inputs.queue }}}}"
  - id: publish
    type: io.kestra.plugin.amqp.Publish
    {BROKER}
    exchange: "{{{{ inputs.exchange }}}}"
    from:
      - data: value-1
        headers:
            testHeader: KestraTest
        timestamp: '2023-01-09T08:46:33.103130753Z'
      - data: value-2
        timestamp: '2023-01-09T08:46:33.115456977Z'
        appId: unit-kestra
  - id: consume
    type: io.kestra.plugin.amqp.Consume
    {BROKER}
    queue: "{{{{ inputs.queue }}}}"
    consumerTag: "KestraSanity-{{{{ execution.id }}}}"
    maxRecords: 2
    maxDuration: PT20S
"""


async def test_kestras_examples_declare_bind_publish_and_consume(tmp_path: Path, names: Names) -> None:
    exchange, queue = names.exchange(), names.queue()
    async with running_engine(tmp_path, ALL_AMQP) as engine:
        execution, said = await run_to_end(engine, "all_amqp", {"exchange": exchange, "queue": queue})
        assert execution.state.current is StateType.SUCCESS, said
        assert outputs(execution, "declare_exchange") == {"exchange": exchange}
        assert outputs(execution, "create_queue") == {"queue": queue}
        assert outputs(execution, "queue_bind") == {"queue": queue, "exchange": exchange}
        assert outputs(execution, "publish") == {"messagesCount": 2}
        consumed = outputs(execution, "consume")
        assert consumed["count"] == 2
        stamp = datetime(2023, 1, 9, 8, 46, 33, tzinfo=UTC)  # AMQP timestamps are whole seconds
        rows = ion_rows(engine, consumed["uri"])
        # aiormq gives every message it publishes a messageId (Java's client leaves it out)
        assert all(len(row.pop("messageId")) == 32 for row in rows)
        assert rows == [
            {"headers": {"testHeader": "KestraTest"}, "timestamp": stamp, "data": "value-1"},
            {"timestamp": stamp, "appId": "unit-kestra", "data": "value-2"},
        ]
        text = engine.storage.read_bytes(consumed["uri"]).decode()
        assert text.startswith('{headers:{testHeader:"KestraTest"},messageId:"')
        recorded = {(m.name, m.value, tuple(m.tags.items())) for m in await engine.metrics(execution.id)}
        assert ("published.records", 2, ()) in recorded
        assert ("consumed.records", 2, (("queue", queue),)) in recorded
    assert await names.counts(queue) == (0, 0)  # acknowledged, and the consumer gone


PROPERTIES = """
id: properties
namespace: company.team
inputs:
  - id: queue
    type: STRING
  - id: file
    type: FILE
tasks:
  - id: publish
    type: io.kestra.plugin.amqp.Publish
    url: amqp://guest:guest@127.0.0.1:5672/
    exchange: ""
    routingKey: "{{ inputs.queue }}"
    serdeType: JSON
    from:
      data: {"city": "Paris", "n": [1, 2.5]}
      contentType: application/json
      contentEncoding: utf-8
      headers: {source: tiercel, n: 7}
      deliveryMode: 2
      priority: 3
      messageId: m-1
      correlationId: c-1
      replyTo: replies
      expiration: PT1M
      type: city
      userId: guest
      appId: tests
  - id: publish_file
    type: io.kestra.plugin.amqp.Publish
    host: 127.0.0.1
    exchange: ""
    routingKey: "{{ inputs.queue }}"
    serdeType: JSON
    from: "{{ inputs.file }}"
  - id: consume
    type: io.kestra.plugin.amqp.Consume
    host: 127.0.0.1
    queue: "{{ inputs.queue }}"
    serdeType: JSON
    maxRecords: 3
    maxDuration: PT20S
"""


async def test_message_properties_and_json_round_trip(tmp_path: Path, names: Names) -> None:
    queue = names.queue()
    await names.declare(queue)
    given = tmp_path / "messages.ion"
    given.write_text(
        ion_dumps({"data": "plain text", "headers": {"k": "v"}, "dta": 1})
        + "\n\n"
        + ion_dumps({"data": [1, None], "dta": 2})
        + "\n"
    )
    async with running_engine(tmp_path, PROPERTIES) as engine:
        execution, said = await run_to_end(engine, "properties", {"queue": queue, "file": str(given)})
        assert execution.state.current is StateType.SUCCESS, said
        assert outputs(execution, "publish") == {"messagesCount": 1}
        assert outputs(execution, "publish_file") == {"messagesCount": 2}
        ignored = [line for line in said if "dta ignored: not a property of an AMQP message" in line]
        assert len(ignored) == 1, said  # told once, not once a message
        rows = ion_rows(engine, outputs(execution, "consume")["uri"])
    assert rows[0] == {
        "contentType": "application/json",
        "contentEncoding": "utf-8",
        "headers": {"source": "tiercel", "n": "7"},  # header values as Java's String.valueOf gives them
        "deliveryMode": 2,
        "priority": 3,
        "messageId": "m-1",
        "correlationId": "c-1",
        "replyTo": "replies",
        "expiration": "PT1M",
        "type": "city",
        "userId": "guest",
        "appId": "tests",
        "data": {"city": "Paris", "n": [1, 2.5]},
    }
    assert list(rows[0]) == [name for name in FIELDS if name in rows[0]]  # Kestra's field order
    assert all(len(row.pop("messageId")) == 32 for row in rows[1:])
    assert rows[1:] == [{"headers": {"k": "v"}, "data": "plain text"}, {"data": [1, None]}]


CONSUME = f"""
id: amqp_consume
namespace: company.team
inputs:
  - id: queue
    type: STRING
  - id: records
    type: INT
tasks:
  - id: consume
    type: io.kestra.plugin.amqp.Consume
    {BROKER}
    queue: "{{{{ inputs.queue }}}}"
    maxRecords: "{{{{ inputs.records }}}}"
    maxDuration: PT2S
"""


async def test_consume_stops_at_max_records_and_leaves_the_rest(tmp_path: Path, names: Names) -> None:
    queue = names.queue()
    await names.declare(queue)
    await names.send(queue, *[f"m{n}".encode() for n in range(5)])
    async with running_engine(tmp_path, CONSUME) as engine:
        execution, said = await run_to_end(engine, "amqp_consume", {"queue": queue, "records": 2})
        assert execution.state.current is StateType.SUCCESS, said
        assert [row["data"] for row in ion_rows(engine, outputs(execution, "consume")["uri"])] == ["m0", "m1"]
        assert await names.counts(queue) == (3, 0)  # the prefetched rest went back to the queue

        # maxDuration ends a run that finds fewer messages than maxRecords
        execution, said = await run_to_end(engine, "amqp_consume", {"queue": queue, "records": 10})
        assert execution.state.current is StateType.SUCCESS, said
        consumed = outputs(execution, "consume")
        assert consumed["count"] == 3
        assert [row["data"] for row in ion_rows(engine, consumed["uri"])] == ["m2", "m3", "m4"]
    assert await names.counts(queue) == (0, 0)


async def test_the_consuming_the_triggers_share(names: Names) -> None:
    queue = names.queue()
    await names.declare(queue)
    await names.send(queue, b'{"a": 1}', b"[2]", b"3")
    settings = {
        "host": "127.0.0.1",
        "queue": queue,
        "serdeType": "JSON",
        "maxRecords": 2,
        "maxDuration": "PT10S",
    }
    assert [record["data"] for record in await consume_messages(settings)] == [{"a": 1}, [2]]
    assert [record["data"] for record in await consume_messages({**settings, "maxRecords": 1})] == [3]
    assert await consume_messages({**settings, "maxDuration": "PT0.2S"}) == []
    with pytest.raises(TaskFailure, match="maxDuration or maxRecords must be set"):
        await consume_messages({"host": "127.0.0.1", "queue": queue})

    got: list[Any] = []

    async def follow() -> None:
        async for record in listen({"url": "amqp://guest:guest@127.0.0.1:5672", "queue": queue}):
            got.append(record["data"])

    async def consumers(count: int) -> bool:
        return (await names.counts(queue))[1] == count

    follower = asyncio.create_task(follow())
    await until(lambda: consumers(1), what="the listener's consumer")
    await names.send(queue, b"x", b"y")
    await until(lambda: len(got) == 2)
    assert got == ["x", "y"]
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower
    await until(lambda: consumers(0), what="the listener's consumer gone")


KILLED = f"""
id: killed
namespace: company.team
inputs:
  - id: queue
    type: STRING
tasks:
  - id: consume
    type: io.kestra.plugin.amqp.Consume
    {BROKER}
    queue: "{{{{ inputs.queue }}}}"
    maxDuration: PT1M
    timeout: PT1S
"""


async def test_a_consume_past_its_timeout_stops_its_consumer(tmp_path: Path, names: Names) -> None:
    queue = names.queue()
    await names.declare(queue)
    async with running_engine(tmp_path, KILLED) as engine:
        execution, said = await run_to_end(engine, "killed", {"queue": queue})
        assert execution.state.current is StateType.FAILED
        assert any("timeout" in line.lower() for line in said), said

        async def consumers() -> bool:
            return (await names.counts(queue))[1] == 0

        await until(consumers)


BAD = """
id: bad
namespace: company.team
inputs:
  - id: file
    type: FILE
tasks:
  - id: task
    type: io.kestra.plugin.amqp.{task}
"""


@pytest.mark.parametrize(
    ("task", "properties", "expected"),
    [
        (
            "Consume",
            {"host": "127.0.0.1", "port": 1, "queue": "q", "maxRecords": 1},
            "AMQP broker at 127.0.0.1:1: ",
        ),
        (
            "Consume",
            {"host": "127.0.0.1", "password": "secret", "queue": "q", "maxRecords": 1},
            "ACCESS_REFUSED",
        ),
        (
            "CreateQueue",
            {"host": "127.0.0.1", "virtualHost": "/no-such-vhost", "name": "q"},
            "the virtual host `/no-such-vhost` may not exist",
        ),
        ("Consume", {"host": "127.0.0.1", "queue": "{prefix}.none", "maxRecords": 1}, "NOT_FOUND - no queue"),
        ("Consume", {"host": "127.0.0.1", "queue": "q"}, "maxDuration or maxRecords must be set"),
        (
            "Consume",
            {"host": "127.0.0.1", "queue": "q", "maxRecords": 1, "serdeType": "AVRO"},
            "`serdeType` AVRO",
        ),
        (
            "Consume",
            {"url": "amqp://127.0.0.1", "host": "127.0.0.1", "queue": "q", "maxRecords": 1},
            "both `url`",
        ),
        (
            "Publish",
            {"host": "127.0.0.1", "exchange": "", "from": "{{ inputs.file }}"},
            "line 2 is not valid Ion",
        ),
        (
            "Publish",
            {"host": "127.0.0.1", "exchange": "", "from": ["just text"]},
            "must be a map with `data`",
        ),
        ("Publish", {"host": "127.0.0.1", "exchange": "{prefix}.none", "from": {"data": 1}}, "NOT_FOUND"),
        (
            "DeclareExchange",
            {"host": "127.0.0.1", "name": "{prefix}.x", "exchangeType": "RING"},
            "`exchangeType`",
        ),
    ],
)
async def test_bad_settings_fail_the_task_saying_what(
    tmp_path: Path, names: Names, task: str, properties: dict[str, Any], expected: str
) -> None:
    given = tmp_path / "rows.ion"
    given.write_text('{data:"fine"}\n{broken\n')
    body = "".join(
        f"    {key}: {json.dumps(value).replace('{prefix}', names.prefix)}\n"
        for key, value in properties.items()
    )
    async with running_engine(tmp_path, BAD.format(task=task) + body) as engine:
        execution, said = await run_to_end(engine, "bad", {"file": str(given)})
        assert execution.state.current is StateType.FAILED
        assert any(expected in line for line in said), said
        assert not any("secret" in line for line in said)  # the password is never shown


async def test_a_body_that_is_not_json_goes_back_to_the_queue(names: Names) -> None:
    queue = names.queue()
    await names.declare(queue)
    await names.send(queue, b"{not json")
    settings = {
        "host": "127.0.0.1",
        "queue": queue,
        "serdeType": "JSON",
        "maxRecords": 1,
        "maxDuration": "PT10S",
    }
    with pytest.raises(TaskFailure, match="is not JSON"):
        await consume_messages(settings)

    async def back() -> bool:
        return (await names.counts(queue)) == (1, 0)

    await until(back)


def test_a_flow_using_amqp_without_aio_pika_names_the_extra(tmp_path: Path) -> None:
    source = BAD.format(task="CreateQueue") + "    host: 127.0.0.1\n    name: q\n"
    check = validate_without(tmp_path, "aio_pika", source)
    assert check.returncode == 1
    assert "needs the Python module aio_pika, not installed here: pip install 'tiercel[amqp]'" in check.stdout
