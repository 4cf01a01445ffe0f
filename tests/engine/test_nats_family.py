"""The NATS family (io.kestra.plugin.nats) against the NATS server (with JetStream) on 127.0.0.1:4222:
Kestra's documented examples run through a real engine, what they stored read back from the internal
storage, and what the server holds afterwards checked with nats-py itself. Each test works on a
stream, subjects and buckets of its own, deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from tiercel.engine.families.nats.core import consume
from tiercel.engine.model import StateType
from tiercel.engine.parser import parse_flow
from tiercel.engine.parser.errors import FlowParseError
from tiercel.engine.tasks.registry import registry

from ..waiting import until
from .brokers import ion_rows, module_missing, outputs, run_to_end, succeeded
from .helpers import logs_of, messages, run, running_engine

URL = "nats://127.0.0.1:4222"


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    connection = await nats.connect(URL, allow_reconnect=False, connect_timeout=5)
    yield connection
    await connection.close()


@pytest.fixture
async def prefix(client: Client) -> AsyncIterator[str]:
    """A subject prefix of this test's own, bound to a stream deleted afterwards."""
    name = f"tc_{uuid.uuid4().hex[:12]}"
    js = client.jetstream()
    await js.add_stream(name=name, subjects=[f"{name}.>"])
    yield name
    await js.delete_stream(name)


async def stored(client: Client, subject: str) -> list[Msg]:
    """Every message of the stream on `subject`, read by an ephemeral consumer of the test."""
    subscription = await client.jetstream().pull_subscribe(subject)
    try:
        return await subscription.fetch(100, timeout=2)
    except nats.errors.TimeoutError:
        return []
    finally:
        await subscription.unsubscribe()


def test_the_family_comes_through_its_entry_point() -> None:
    plugins = registry()
    assert not plugins.failures
    for name in ("core.Produce", "core.Consume", "core.Request", "kv.CreateBucket", "kv.Get"):
        assert plugins.source(f"io.kestra.plugin.nats.{name}").startswith("tiercel ")
    produce = plugins.lookup("io.kestra.plugin.nats.Produce")  # Kestra's older name, an alias
    assert produce is not None and produce.name == "io.kestra.plugin.nats.core.Produce"


PRODUCE_AND_CONSUME = """
id: nats_produce_messages
namespace: company.team
tasks:
  - id: produce_single
    type: io.kestra.plugin.nats.core.Produce
    url: nats://localhost:4222
    username: nats_user
    password: nats_password
    subject: {prefix}.publish
    from:
      headers:
        someHeaderKey: someHeaderValue
      data: Some message
  - id: produce_two
    type: io.kestra.plugin.nats.Produce
    url: nats://localhost:4222
    subject: {prefix}.publish
    from:
      - headers:
          someHeaderKey: someHeaderValue
          several: [one, two]
        data: Some message
      - data: Another message
  - id: consume
    type: io.kestra.plugin.nats.core.Consume
    url: nats://localhost:4222
    username: nats_user
    password: nats_password
    subject: {prefix}.>
    durableId: someDurableId
    pollDuration: PT1S
  - id: produce_from_file
    type: io.kestra.plugin.nats.core.Produce
    url: nats://localhost:4222
    subject: {prefix}.copy
    from: "{{{{ outputs.consume.uri }}}}"
"""


async def test_produce_and_consume_as_kestra_documents_them(
    tmp_path: Path, client: Client, prefix: str
) -> None:
    async with running_engine(tmp_path, PRODUCE_AND_CONSUME.format(prefix=prefix)) as engine:
        execution = await run(engine, "company.team", "nats_produce_messages")
        await succeeded(engine, execution)
        assert outputs(execution, "produce_single") == {"messagesCount": 1}
        assert outputs(execution, "produce_two") == {"messagesCount": 2}
        consumed = outputs(execution, "consume")
        assert consumed["messagesCount"] == 3
        rows = ion_rows(engine, consumed["uri"])
        assert [(row["subject"], row["data"], row["headers"]) for row in rows] == [
            (f"{prefix}.publish", "Some message", {"someHeaderKey": ["someHeaderValue"]}),
            (f"{prefix}.publish", "Some message", {"someHeaderKey": ["someHeaderValue"], "several": ["two"]}),
            (f"{prefix}.publish", "Another message", {}),
        ]
        assert all(row["timestamp"].tzinfo is not None for row in rows)
        assert outputs(execution, "produce_from_file") == {"messagesCount": 3}

    copies = await stored(client, f"{prefix}.copy")
    assert [message.data for message in copies] == [b"Some message", b"Some message", b"Another message"]
    assert copies[0].headers == {"someHeaderKey": "someHeaderValue"}
    # The durable consumer stays on the server, its 3 messages acknowledged: a next run gets the copies.
    info = await client.jetstream().consumer_info(prefix, "someDurableId")
    assert (info.num_ack_pending, info.delivered.stream_seq, info.num_pending) == (0, 3, 3)


CONSUME_LIMITS = """
id: nats_consume_limits
namespace: company.team
tasks:
  - id: first
    type: io.kestra.plugin.nats.core.Consume
    url: {url}
    subject: {prefix}.>
    durableId: limited
    batchSize: 2
    maxRecords: 3
    pollDuration: PT1S
  - id: rest
    type: io.kestra.plugin.nats.core.Consume
    url: {url}
    subject: {prefix}.>
    durableId: limited
    pollDuration: PT1S
  - id: last_per_subject
    type: io.kestra.plugin.nats.core.Consume
    url: {url}
    subject: {prefix}.>
    deliverPolicy: LastPerSubject
    pollDuration: PT1S
"""


async def test_max_records_stop_a_durable_consumer_that_the_next_run_resumes(
    tmp_path: Path, client: Client, prefix: str
) -> None:
    for index in range(5):
        await client.jetstream().publish(f"{prefix}.{'a' if index < 4 else 'b'}", f"m{index}".encode())
    async with running_engine(tmp_path, CONSUME_LIMITS.format(url=URL, prefix=prefix)) as engine:
        execution = await run(engine, "company.team", "nats_consume_limits")
        await succeeded(engine, execution)
        first, rest = outputs(execution, "first"), outputs(execution, "rest")
        assert first["messagesCount"] == 3
        assert [row["data"] for row in ion_rows(engine, first["uri"])] == ["m0", "m1", "m2"]
        assert [row["data"] for row in ion_rows(engine, rest["uri"])] == ["m3", "m4"]
        latest = ion_rows(engine, outputs(execution, "last_per_subject")["uri"])
        assert [row["data"] for row in latest] == ["m3", "m4"]
    # Without a durable id, the consumer was ephemeral and is gone; the durable one is left.
    consumers = await client.jetstream().consumers_info(prefix)
    assert [consumer.name for consumer in consumers] == ["limited"]


async def test_the_consume_function_reads_since_a_time_for_the_triggers(client: Client, prefix: str) -> None:
    js = client.jetstream()
    await js.publish(f"{prefix}.old", b"before")
    since = (await stored(client, f"{prefix}.old"))[0].metadata.timestamp + timedelta(milliseconds=1)
    await asyncio.sleep(0.01)  # the next message's server timestamp comes after `since`
    await js.publish(f"{prefix}.new", b"after")
    settings = {"url": URL, "subject": f"{prefix}.>", "since": since.isoformat(), "pollDuration": "PT1S"}
    got = await consume(settings)
    assert [message["data"] for message in got] == ["after"]
    assert got[0]["subject"] == f"{prefix}.new"
    got = await consume({**settings, "since": None, "deliverPolicy": "Last", "maxDuration": "PT0S"})
    assert [message["data"] for message in got] == ["after"]


REQUEST = """
id: nats_request_reply
namespace: company.team
tasks:
  - id: request
    type: io.kestra.plugin.nats.core.Request
    url: {url}
    subject: "{subject}"
    from:
      headers:
        someHeaderKey: someHeaderValue
      data: "Hello from Kestra!"
    requestTimeout: PT5S
  - id: nobody
    type: io.kestra.plugin.nats.Request
    url: {url}
    subject: "{subject}.nobody"
    from:
      data: {{"json": true}}
    requestTimeout: PT1S
"""


async def test_request_gets_the_reply_or_null(tmp_path: Path, client: Client) -> None:
    subject = f"greet.{uuid.uuid4().hex[:12]}"

    async def answer(message: Msg) -> None:
        header = (message.headers or {}).get("someHeaderKey")
        await message.respond(f"{message.data.decode()} / {header}".encode())

    subscription = await client.subscribe(subject, cb=answer)
    await client.flush()
    try:
        async with running_engine(tmp_path, REQUEST.format(url=URL, subject=subject)) as engine:
            execution = await run(engine, "company.team", "nats_request_reply")
            await succeeded(engine, execution)
            assert outputs(execution, "request") == {"response": "Hello from Kestra! / someHeaderValue"}
            assert outputs(execution, "nobody") == {"response": None}
    finally:
        await subscription.unsubscribe()


KV = """
id: nats_kv
namespace: company.team
tasks:
  - id: create_bucket
    type: io.kestra.plugin.nats.kv.CreateBucket
    url: nats://localhost:4222
    username: nats_user
    password: nats_password
    name: {bucket}
  - id: create_bucket_with_options
    type: io.kestra.plugin.nats.kv.CreateBucket
    url: nats://localhost:4222
    name: {bucket}_b
    description: my bucket for special purposes
    historyPerKey: 2
    bucketSize: 1024
    valueSize: 1024
    metadata: {{"key1":"value1","key2":"value2"}}
  - id: put
    type: io.kestra.plugin.nats.kv.Put
    url: nats://localhost:4222
    bucketName: {bucket}_b
    values:
      key1: value1
      key2: value2
      key3:
        subKey1: some other value
  - id: put_again
    type: io.kestra.plugin.nats.kv.Put
    url: nats://localhost:4222
    bucketName: {bucket}_b
    values:
      key1: [1, 2]
  - id: get
    type: io.kestra.plugin.nats.kv.Get
    url: nats://localhost:4222
    bucketName: {bucket}_b
    keys:
      - key1
      - key3
      - missing
  - id: get_revisions
    type: io.kestra.plugin.nats.kv.Get
    url: nats://localhost:4222
    bucketName: {bucket}_b
    keyRevisions:
      key1: 1
      key2: 1
  - id: delete
    type: io.kestra.plugin.nats.kv.Delete
    url: nats://localhost:4222
    bucketName: {bucket}_b
    keys:
      - key1
      - key2
  - id: get_deleted
    type: io.kestra.plugin.nats.kv.Get
    url: nats://localhost:4222
    bucketName: {bucket}_b
    keys: [key1, key3]
"""


async def test_key_value_tasks_as_kestra_documents_them(tmp_path: Path, client: Client) -> None:
    bucket = f"tc_{uuid.uuid4().hex[:12]}"
    js = client.jetstream()
    try:
        async with running_engine(tmp_path, KV.format(bucket=bucket)) as engine:
            execution = await run(engine, "company.team", "nats_kv")
            await succeeded(engine, execution)
            assert outputs(execution, "create_bucket") == {
                "bucket": bucket,
                "description": None,
                "history": 1,
                "entryCount": 0,
                "bucketSize": -1,
                "valueSize": -1,
                "metadata": {},
            }
            created = outputs(execution, "create_bucket_with_options")
            assert created["description"] == "my bucket for special purposes"
            assert (created["history"], created["bucketSize"], created["valueSize"]) == (2, 1024, 1024)
            # The metadata as the server keeps it (NATS 2.10 and later; older servers drop it).
            kept = (await js.stream_info(f"KV_{bucket}_b")).config.metadata or {}
            assert created["metadata"] == {k: v for k, v in kept.items() if not k.startswith("_nats")}
            assert outputs(execution, "put") == {"revisions": {"key1": 1, "key2": 2, "key3": 3}}
            assert outputs(execution, "put_again") == {"revisions": {"key1": 4}}
            assert outputs(execution, "get") == {
                "output": {"key1": [1, 2], "key3": {"subKey1": "some other value"}}
            }
            # key2's revision 1 is key1's: a revision of another key is left out, as a missing key.
            assert outputs(execution, "get_revisions") == {"output": {"key1": "value1"}}
            assert outputs(execution, "delete") == {"deletedCount": 2}
            assert outputs(execution, "get_deleted") == {"output": {"key3": {"subKey1": "some other value"}}}
        stored_bucket = await js.key_value(f"{bucket}_b")
        assert (await stored_bucket.get("key3")).value == b'{"subKey1":"some other value"}'
        assert (await stored_bucket.status()).history == 2
    finally:
        for name in (bucket, f"{bucket}_b"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_key_value(name)


BAD = """
id: bad
namespace: company.team
tasks:
  - id: task
    type: io.kestra.plugin.nats.core.{task}
"""


@pytest.mark.parametrize(
    ("task", "properties", "expected"),
    [
        (
            "Produce",
            {"url": "nats://127.0.0.1:1", "subject": "x", "from": {"data": "a"}},
            "NATS at 127.0.0.1:1",
        ),
        ("Consume", {"url": URL, "subject": "{prefix}.>", "deliverPolicy": "Sometimes"}, "`deliverPolicy`"),
        ("Consume", {"url": URL, "subject": "nostream_{prefix}.x"}, "no JetStream stream holds the subject"),
        ("Consume", {"url": URL, "subject": "{prefix}.>", "since": "yesterday"}, "`since` `yesterday`"),
        ("Produce", {"url": URL, "subject": "{prefix}.x", "from": "not a uri"}, "`from` must be a message"),
        ("Produce", {"url": URL, "subject": "{prefix}.x", "from": [{"data": "a"}, 3]}, "`from[1]`"),
    ],
)
async def test_bad_settings_fail_the_task_saying_what(
    tmp_path: Path, prefix: str, task: str, properties: dict[str, Any], expected: str
) -> None:
    body = "".join(f"    {key}: {value!r}\n" for key, value in properties.items()).replace("{prefix}", prefix)
    async with running_engine(tmp_path, BAD.format(task=task) + body) as engine:
        execution = await asyncio.wait_for(run(engine, "company.team", "bad"), 30)
        assert execution.state.current is StateType.FAILED
        assert any(expected in line for line in messages(await logs_of(engine, execution.id)))


MALFORMED = """
id: malformed
namespace: company.team
inputs:
  - id: file
    type: FILE
tasks:
  - id: produce
    type: io.kestra.plugin.nats.core.Produce
    url: {url}
    subject: {prefix}.x
    from: "{{{{ inputs.file }}}}"
"""


async def test_a_malformed_ion_line_in_from_fails_naming_the_line(
    tmp_path: Path, client: Client, prefix: str
) -> None:
    source = tmp_path / "messages.ion"
    source.write_text('{data:"fine"}\n{data:"broken\n')
    async with running_engine(tmp_path, MALFORMED.format(url=URL, prefix=prefix)) as engine:
        execution, said = await run_to_end(engine, "malformed", {"file": str(source)}, timeout=30)
        assert execution.state.current is StateType.FAILED
        assert any("`from` line 2" in line for line in said)


def test_a_bad_duration_is_a_validation_error() -> None:
    with pytest.raises(FlowParseError, match="pollDuration"):
        parse_flow(BAD.format(task="Consume") + f"    url: {URL}\n    subject: s\n    pollDuration: often\n")


SLOW_CONSUMER = """
id: slow
namespace: company.team
tasks:
  - id: consume
    type: io.kestra.plugin.nats.core.Consume
    url: {url}
    subject: {prefix}.>
    pollDuration: PT60S
    timeout: PT1S
"""


async def test_a_consumer_past_its_timeout_is_stopped_and_removed(
    tmp_path: Path, client: Client, prefix: str
) -> None:
    async with running_engine(tmp_path, SLOW_CONSUMER.format(url=URL, prefix=prefix)) as engine:
        execution = await asyncio.wait_for(run(engine, "company.team", "slow"), 30)
        assert execution.state.current is StateType.FAILED

    async def no_consumer() -> bool:
        info = await client.jetstream().stream_info(prefix)
        return bool(info.state.consumer_count == 0)

    gone: bool = await until(no_consumer, what="the ephemeral consumer to be deleted")
    assert gone


def test_a_flow_using_nats_without_nats_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    source = BAD.format(task="Produce") + f"    url: {URL}\n    subject: s\n    from: {{data: a}}\n"
    expected = r"needs the Python module nats.*pip install 'tiercel\[nats\]'"
    with module_missing(monkeypatch, "nats"), pytest.raises(FlowParseError, match=expected):
        parse_flow(source)
