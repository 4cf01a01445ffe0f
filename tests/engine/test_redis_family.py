"""The redis family (io.kestra.plugin.redis) against the Redis server on 127.0.0.1:6379: Kestra's
documented examples run through a real engine, and what the server holds afterwards is read with the
`redis` client. Each test works on keys of its own (a uuid prefix), deleted afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tiercel.engine.engine import Engine
from tiercel.engine.families.redis.lists import listen, pop_messages
from tiercel.engine.model import Execution, StateType
from tiercel.engine.plugin import TaskFailure, ion_dumps
from tiercel.engine.tasks.registry import registry

from ..waiting import until
from .brokers import ion_rows, outputs, run_to_end, validate_without
from .helpers import logs_of, messages, run, running_engine

URL = "redis://127.0.0.1:6379/0"
NS = "company.team"


@pytest.fixture
def server() -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=6379, db=0, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def prefix(server: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    name = f"tc-{uuid.uuid4().hex[:10]}-"
    yield name
    keys = list(server.scan_iter(f"{name}*"))
    if keys:
        server.delete(*keys)


async def metrics(engine: Engine, execution: Execution) -> list[tuple[str, float, dict[str, str]]]:
    return [(m.name, m.value, dict(m.tags)) for m in await engine.metrics(execution.id)]


async def succeeded(engine: Engine, flow_id: str, inputs: dict[str, Any] | None = None) -> Execution:
    execution = await run(engine, NS, flow_id, inputs)
    said = messages(await logs_of(engine, execution.id))
    assert execution.state.current is StateType.SUCCESS, said
    return execution


async def failed(engine: Engine, flow_id: str, inputs: dict[str, Any] | None = None) -> list[str]:
    execution = await run(engine, NS, flow_id, inputs)
    assert execution.state.current is StateType.FAILED
    return messages(await logs_of(engine, execution.id))


async def test_the_family_and_its_old_names_come_through_the_entry_point() -> None:
    tasks = registry()
    assert not tasks.failures
    for name in ("string.Set", "list.ListPop", "pubsub.Publish", "json.Get", "string.Ttl"):
        assert tasks.source(f"io.kestra.plugin.redis.{name}").startswith("tiercel ")
    for old, new in (("Set", "string.Set"), ("ListPush", "list.ListPush"), ("Publish", "pubsub.Publish")):
        found = tasks.lookup(f"io.kestra.plugin.redis.{old}")
        assert found is not None and found.name == f"io.kestra.plugin.redis.{new}"


SET_EXAMPLES = f"""
id: redis_set
namespace: company.team
inputs:
  - id: key_name
    type: STRING
  - id: key_value
    type: STRING
tasks:
  - id: set
    type: io.kestra.plugin.redis.string.Set
    url: {URL}
    key: "{{{{ inputs.key_name }}}}"
    value: "{{{{ inputs.key_value }}}}"
    serdeType: STRING
    get: true
    options:
      mustExist: true
      keepTtl: true
"""
SET_JSON = f"""
id: redis_set_json
namespace: company.team
inputs:
  - id: prefix
    type: STRING
tasks:
  - id: set
    type: io.kestra.plugin.redis.string.Set
    url: {URL}
    key: "{{{{ inputs.prefix }}}}key_json_{{{{ execution.id }}}}"
    value: |
      {{{{ {{
        "flow": flow.id,
        "namespace": flow.namespace
      }} | toJson }}}}
    serdeType: JSON
  - id: get
    type: io.kestra.plugin.redis.string.Get
    url: {URL}
    serdeType: JSON
    key: "{{{{ inputs.prefix }}}}key_json_{{{{ execution.id }}}}"
"""
GET = f"""
id: redis_get
namespace: company.team
inputs:
  - id: key_name
    type: STRING
tasks:
  - id: get
    type: io.kestra.plugin.redis.string.Get
    url: {URL}
    key: "{{{{ inputs.key_name }}}}"
"""


async def test_set_and_get_as_kestra_documents_them(tmp_path: Path, server: redis.Redis, prefix: str) -> None:
    key = f"{prefix}greeting"
    server.set(key, "hello", ex=1000)
    async with running_engine(tmp_path, SET_EXAMPLES, SET_JSON, GET) as engine:
        execution = await succeeded(engine, "redis_set", {"key_name": key, "key_value": "bonjour"})
        assert outputs(execution, "set") == {"oldValue": "hello"}
        assert server.get(key) == "bonjour" and 0 < server.ttl(key) <= 1000  # keepTtl

        # mustExist: a key that is not there is left unset, and no old value is given
        execution = await succeeded(engine, "redis_set", {"key_name": f"{prefix}absent", "key_value": "x"})
        assert outputs(execution, "set") == {}
        assert server.exists(f"{prefix}absent") == 0

        execution = await succeeded(engine, "redis_set_json", {"prefix": prefix})
        assert outputs(execution, "get")["data"] == {"flow": "redis_set_json", "namespace": "company.team"}
        stored = server.get(f"{prefix}key_json_{execution.id}")
        assert stored is not None and stored.strip() == '{"flow":"redis_set_json","namespace":"company.team"}'

        execution = await succeeded(engine, "redis_get", {"key_name": key})
        assert outputs(execution, "get") == {"data": "bonjour", "key": key}
        execution = await succeeded(engine, "redis_get", {"key_name": f"{prefix}nothing"})
        assert outputs(execution, "get") == {"key": f"{prefix}nothing"}  # no `data`, as Kestra


KEYS_STRING = f"""
id: keys_string
namespace: company.team
inputs:
  - id: prefix
    type: STRING
tasks:
  - id: set
    type: io.kestra.plugin.redis.string.Set
    url: {URL}
    key: "{{{{ inputs.prefix }}}}key_string"
    value: "{{{{ flow.id }}}}"
  - id: setWithTtl
    type: io.kestra.plugin.redis.string.Set
    url: {URL}
    key: "{{{{ inputs.prefix }}}}key_string_ttl"
    value: [1, true, {{a: b}}]
    options:
      expirationDuration: P1D
  - id: getTtl
    type: io.kestra.plugin.redis.string.Ttl
    url: {URL}
    key: "{{{{ inputs.prefix }}}}key_string_ttl"
  - id: delete
    type: io.kestra.plugin.redis.Delete
    url: {URL}
    keys:
      - "{{{{ inputs.prefix }}}}key_string"
      - "{{{{ inputs.prefix }}}}keyDelete2"
  - id: incr1
    type: io.kestra.plugin.redis.string.Increment
    url: {URL}
    key: "{{{{ inputs.prefix }}}}incr"
  - id: incr2
    type: io.kestra.plugin.redis.string.Increment
    url: {URL}
    key: "{{{{ inputs.prefix }}}}incr"
    amount: 2
  - id: incr3
    type: io.kestra.plugin.redis.string.Increment
    url: {URL}
    key: "{{{{ inputs.prefix }}}}incr"
    amount: 2.5
    options:
      expirationDuration: PT1H
"""


async def test_ttl_delete_and_increment(tmp_path: Path, server: redis.Redis, prefix: str) -> None:
    async with running_engine(tmp_path, KEYS_STRING) as engine:
        execution = await succeeded(engine, "keys_string", {"prefix": prefix})
        assert server.get(f"{prefix}key_string_ttl") == "[1, true, {a=b}]"  # Java's String.valueOf
        assert outputs(execution, "getTtl")["ttl"] > 86000
        assert outputs(execution, "delete") == {"count": 1}
        assert server.exists(f"{prefix}key_string") == 0
        assert outputs(execution, "incr1") == {"value": 1, "key": f"{prefix}incr"}
        assert outputs(execution, "incr2")["value"] == 3
        assert outputs(execution, "incr3")["value"] == 5.5
        assert server.get(f"{prefix}incr") == "5.5" and 0 < server.ttl(f"{prefix}incr") <= 3600
        assert ("deleted.records.count", 1, {}) in await metrics(engine, execution)


LISTS = f"""
id: redis_lists
namespace: company.team
inputs:
  - id: prefix
    type: STRING
tasks:
  - id: list_push
    type: io.kestra.plugin.redis.list.ListPush
    url: {URL}
    key: "{{{{ inputs.prefix }}}}mykey"
    from:
      - value1
      - value2
  - id: push_json
    type: io.kestra.plugin.redis.list.ListPush
    url: {URL}
    serdeType: JSON
    key: "{{{{ inputs.prefix }}}}mypopkeyjson"
    batchSize: 2
    from: '[{{"city": "Paris"}}, {{"city": "London"}}, {{"n": [1, 2.5, null]}}]'
  - id: list_pop
    type: io.kestra.plugin.redis.list.ListPop
    url: {URL}
    key: "{{{{ inputs.prefix }}}}mypopkeyjson"
    serdeType: JSON
    maxRecords: 1
    maxDuration: PT10S
    count: 50
  - id: pop_strings
    type: io.kestra.plugin.redis.ListPop
    url: {URL}
    key: "{{{{ inputs.prefix }}}}mykey"
    count: 1
    maxRecords: 1
  - id: push_back
    type: io.kestra.plugin.redis.list.ListPush
    url: {URL}
    key: "{{{{ inputs.prefix }}}}copy"
    serdeType: JSON
    from: "{{{{ outputs.list_pop.uri }}}}"
"""


async def test_list_push_and_pop_as_kestra_documents_them(
    tmp_path: Path, server: redis.Redis, prefix: str
) -> None:
    async with running_engine(tmp_path, LISTS) as engine:
        execution = await succeeded(engine, "redis_lists", {"prefix": prefix})
        assert outputs(execution, "list_push") == {"count": 2}
        assert outputs(execution, "push_json") == {"count": 3}
        popped = outputs(execution, "list_pop")
        # maxRecords is checked after each batch: the batch of 50 took the whole list
        assert popped["count"] == 3
        assert ion_rows(engine, popped["uri"]) == [
            {"n": [1, 2.5, None]},
            {"city": "London"},
            {"city": "Paris"},
        ]
        assert server.exists(f"{prefix}mypopkeyjson") == 0
        strings = outputs(execution, "pop_strings")
        assert strings["count"] == 1 and ion_rows(engine, strings["uri"]) == ["value2"]
        assert server.lrange(f"{prefix}mykey", 0, -1) == ["value1"]
        assert outputs(execution, "push_back") == {"count": 3}
        assert server.lrange(f"{prefix}copy", 0, -1) == [
            '{"city":"Paris"}',
            '{"city":"London"}',
            '{"n":[1,2.5,null]}',
        ]
        counted = await metrics(engine, execution)
        assert ("popped.records.count", 3, {"key": f"{prefix}mypopkeyjson"}) in counted
        assert ("popped.records.count", 1, {"key": f"{prefix}mykey"}) in counted
        assert ("inserted.records.count", 3, {}) in counted


PUBLISH = f"""
id: redis_publish
namespace: company.team
inputs:
  - id: channel
    type: STRING
  - id: file
    type: FILE
tasks:
  - id: publish
    type: io.kestra.plugin.redis.pubsub.Publish
    url: {URL}
    channel: "{{{{ inputs.channel }}}}"
    from:
      - value1
      - value2
  - id: publish_file
    type: io.kestra.plugin.redis.pubsub.Publish
    url: {URL}
    channel: "{{{{ inputs.channel }}}}"
    from: "{{{{ inputs.file }}}}"
    serdeType: JSON
"""


async def test_publish_reaches_a_subscriber(tmp_path: Path, prefix: str) -> None:
    given = tmp_path / "rows.ion"
    given.write_text("".join(ion_dumps(row) + "\n" for row in [{"id": 1, "tags": ["a"]}, 2, "[3]"]))
    channel = f"{prefix}mych"
    subscriber = redis.asyncio.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    async with subscriber, subscriber.pubsub() as pubsub:
        await pubsub.subscribe(channel)
        async with running_engine(tmp_path, PUBLISH) as engine:
            inputs = {"channel": channel, "file": str(given)}
            execution_id = await engine.trigger(NS, "redis_publish", inputs, [], local_files=True)
            execution = await asyncio.wait_for(engine.wait(execution_id), 60)
            said = messages(await logs_of(engine, execution.id))
            assert execution.state.current is StateType.SUCCESS, said
            assert outputs(execution, "publish") == {"count": 2}
            assert outputs(execution, "publish_file") == {"count": 3}
            counted = await metrics(engine, execution)
            assert sorted(value for name, value, _ in counted if name == "published.records.count") == [2, 3]
        received: list[str] = []

        async def five() -> bool:  # None for the subscription's own confirmation
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                received.append(message["data"])
            return len(received) == 5

        await until(five)
        # JSON: a record written as JSON, a string sent as it is (JSON already, or the task fails)
    assert received == ["value1", "value2", '{"id":1,"tags":["a"]}', "2", "[3]"]


async def test_the_consuming_the_list_triggers_share(server: redis.Redis, prefix: str) -> None:
    key = f"{prefix}trigger"
    server.rpush(key, "a", "b", "c")
    settings = {"url": URL, "key": key, "count": 2, "maxRecords": 2}
    assert await pop_messages(settings) == ["a", "b"]  # one batch of 2 reached maxRecords
    assert await pop_messages(settings) == ["c"]
    assert await pop_messages(settings) == []
    with pytest.raises(TaskFailure, match="maxDuration or maxRecords must be set"):
        await pop_messages({"url": URL, "key": key})

    name = f"{prefix}listener"
    got: list[Any] = []

    async def consume() -> None:
        async for value in listen({"url": URL, "key": key, "serdeType": "JSON"}, name=name):
            got.append(value)

    consumer = asyncio.create_task(consume())
    server.rpush(key, '{"n": 1}', "[2]")
    await until(lambda: len(got) == 2)
    assert got == [{"n": 1}, [2]]
    assert any(client["name"] == name for client in server.client_list())
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    await until(lambda: all(client["name"] != name for client in server.client_list()))


STREAMING_POP = f"""
id: streaming_pop
namespace: company.team
inputs:
  - id: key
    type: STRING
tasks:
  - id: pop
    type: io.kestra.plugin.redis.list.ListPop
    url: {URL}
    key: "{{{{ inputs.key }}}}"
    count: 1
    maxDuration: PT1M
    timeout: PT1S
"""


async def test_a_killed_pop_closes_its_connection(tmp_path: Path, server: redis.Redis, prefix: str) -> None:
    key = f"{prefix}busy"
    server.rpush(key, *[str(n) for n in range(1000)])

    async def refill() -> None:  # a list that never empties keeps ListPop popping until its timeout
        while True:
            await asyncio.to_thread(server.rpush, key, *[str(n) for n in range(100)])
            await asyncio.sleep(0.01)

    filler = asyncio.create_task(refill())
    try:
        async with running_engine(tmp_path, STREAMING_POP) as engine:
            execution = await run(engine, NS, "streaming_pop", {"key": key}, timeout=60)
            assert execution.state.current is StateType.FAILED
            assert any("timeout" in line.lower() for line in messages(await logs_of(engine, execution.id)))
            mine = f"tiercel:{execution.id}:pop"
            await until(lambda: all(client["name"] != mine for client in server.client_list()))
    finally:
        filler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await filler


JSON_TASKS = f"""
id: redis_json
namespace: company.team
inputs:
  - id: key_name
    type: STRING
tasks:
  - id: set
    type: io.kestra.plugin.redis.json.Set
    url: {URL}
    key: "{{{{ inputs.key_name }}}}"
    value: |
      {{
        "name": "{{{{ inputs.key_name }}}}", "n": 1
      }}
  - id: increment
    type: io.kestra.plugin.redis.json.Increment
    url: {URL}
    key: "{{{{ inputs.key_name }}}}"
    path: "$.n"
  - id: get
    type: io.kestra.plugin.redis.json.Get
    url: {URL}
    key: "{{{{ inputs.key_name }}}}"
  - id: delete
    type: io.kestra.plugin.redis.json.Delete
    url: {URL}
    failedOnMissing: true
    keys:
      "{{{{ inputs.key_name }}}}": []
"""


async def test_json_tasks_need_the_redisjson_module(tmp_path: Path, server: redis.Redis, prefix: str) -> None:
    key = f"{prefix}doc"
    modules = {str(module.get("name")) for module in server.module_list()}
    async with running_engine(tmp_path, JSON_TASKS) as engine:
        if "ReJSON" not in modules:
            said = await failed(engine, "redis_json", {"key_name": key})
            assert any("the server lacks the RedisJSON module" in line for line in said), said
            return
        execution = await succeeded(engine, "redis_json", {"key_name": key})
        assert outputs(execution, "increment")["value"] == 2
        assert outputs(execution, "get")["data"] == {"name": key, "n": 2}
        assert outputs(execution, "delete") == {"count": 1}


BAD = """
id: bad
namespace: company.team
inputs:
  - id: file
    type: FILE
tasks:
  - id: task
    type: io.kestra.plugin.redis.{task}
"""


@pytest.mark.parametrize(
    ("task", "properties", "expected"),
    [
        ("string.Get", {"url": "redis://:secret@127.0.0.1:1/0", "key": "k"}, "Redis at 127.0.0.1:1: "),
        ("string.Get", {"url": "http://127.0.0.1/0", "key": "k"}, "`url` is not a Redis URL"),
        ("string.Get", {"url": URL, "key": "k", "serdeType": "XML"}, "`serdeType` XML: must be one of"),
        (
            "list.ListPush",
            {"url": URL, "key": "{prefix}l", "from": "{{ inputs.file }}"},
            "line 2 is not valid",
        ),
        ("list.ListPush", {"url": URL, "key": "{prefix}l", "from": "not-a-uri"}, "`from` must be a list"),
        ("list.ListPush", {"url": URL, "key": "{prefix}l", "from": ["x"], "batchSize": 0}, "`batchSize`"),
        ("list.ListPop", {"url": URL, "key": "{prefix}l"}, "maxDuration or maxRecords must be set"),
        ("list.ListPop", {"url": URL, "key": "{prefix}l", "maxRecords": "many"}, "`maxRecords`"),
        (
            "pubsub.Publish",
            {"url": URL, "channel": "{prefix}c", "from": ["value1"], "serdeType": "JSON"},
            "`from` value 1 is not JSON",
        ),
        ("string.Get", {"url": URL, "key": "{prefix}none", "failedOnMissing": True}, "Missing keys"),
        (
            "string.Set",
            {
                "url": URL,
                "key": "{prefix}k",
                "value": "v",
                "options": {"keepTtl": True, "expirationDuration": "PT1S"},
            },
            "you can't use 'keepTtl'",
        ),
    ],
)
async def test_bad_settings_fail_the_task_saying_what(
    tmp_path: Path, prefix: str, task: str, properties: dict[str, Any], expected: str
) -> None:
    given = tmp_path / "rows.ion"
    given.write_text('"fine"\n{broken\n')
    body = "".join(f"    {key}: {as_yaml(value, prefix)}\n" for key, value in properties.items())
    source = BAD.format(task=task) + body
    async with running_engine(tmp_path, source) as engine:
        execution, said = await run_to_end(engine, "bad", {"file": str(given)}, timeout=60)
        assert execution.state.current is StateType.FAILED
        assert any(expected in line for line in said), said
        assert not any("secret" in line for line in said)  # the URL's password is never shown


def as_yaml(value: Any, prefix: str) -> str:
    """A property value as flow YAML (flow style), the test's prefix put into its keys."""
    return json.dumps(value).replace("{prefix}", prefix)


def test_a_flow_using_redis_without_its_client_names_the_extra(tmp_path: Path) -> None:
    check = validate_without(
        tmp_path, "redis", BAD.format(task="string.Get") + f"    url: {URL}\n    key: k\n"
    )
    assert check.returncode == 1
    assert "needs the Python module redis, not installed here: pip install 'tiercel[redis]'" in check.stdout
