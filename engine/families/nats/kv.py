"""Kestra's NATS key-value tasks (`io.kestra.plugin.nats.kv`): CreateBucket, Put, Get and Delete.

Values are stored as JSON, as Kestra's Put writes them and its Get reads them back; a key that is
missing (or deleted) is left out of Get's `output`, as Kestra leaves it out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tiercel.engine.plugin import TaskContext, TaskFailure, settings_of, whole_number

from .common import CONNECTION, connected, failure, text

CREATE_BUCKET_PROPERTIES = CONNECTION | {
    "name",
    "description",
    "metadata",
    "historyPerKey",
    "bucketSize",
    "valueSize",
}
PUT_PROPERTIES = CONNECTION | {"bucketName", "values"}
GET_PROPERTIES = CONNECTION | {"bucketName", "keys", "keyRevisions"}
DELETE_PROPERTIES = CONNECTION | {"bucketName", "keys"}


def _keys(settings: Mapping[str, Any]) -> list[str]:
    keys = settings.get("keys")
    if isinstance(keys, str):
        return [keys]
    if not isinstance(keys, list):
        raise TaskFailure("`keys` must be a list of keys")
    return [str(key) for key in keys]


def _string_map(settings: Mapping[str, Any], name: str) -> dict[str, str] | None:
    value = settings.get(name)
    if value is None:
        return None
    if isinstance(value, str):  # `metadata: {"key1": "value1"}` rendered from an expression
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise TaskFailure(f"`{name}` must be a map of strings, not `{value[:200]}`") from None
    if not isinstance(value, Mapping):
        raise TaskFailure(f"`{name}` must be a map of strings")
    return {str(key): str(item) for key, item in value.items()}


async def create_bucket(context: TaskContext) -> Mapping[str, Any]:
    """CreateBucket: a new bucket; its name, description, history, entry count, size limits (-1:
    none) and metadata as the server reports them."""
    from nats.js.api import KeyValueConfig

    settings = settings_of(context, CREATE_BUCKET_PROPERTIES)
    name = text(settings, "name")
    assert name is not None
    history = whole_number("historyPerKey", settings.get("historyPerKey"), 1, least=1)
    assert history is not None
    metadata = _string_map(settings, "metadata")
    config = KeyValueConfig(
        bucket=name,
        description=text(settings, "description", required=False),
        history=history,
        max_bytes=whole_number("bucketSize", settings.get("bucketSize"), None, least=-1),
        max_value_size=whole_number("valueSize", settings.get("valueSize"), None, least=-1),
    )
    async with connected(settings) as client:
        js = client.jetstream()
        try:
            bucket = await js.create_key_value(config)
            status = await bucket.status()
            stream = status.stream_info.config
            if metadata:  # nats-py's bucket config has no metadata: it is set on the bucket's stream
                stream.metadata = {**(stream.metadata or {}), **metadata}
                stream = (await js.update_stream(stream)).config
            status = await bucket.status()
        except TaskFailure:
            raise
        except Exception as error:
            raise failure(settings["url"], error) from None
    shown = {key: value for key, value in (stream.metadata or {}).items() if not key.startswith("_nats.")}
    return {
        "bucket": status.bucket,
        "description": stream.description,
        "history": status.history,
        "entryCount": status.values,
        "bucketSize": stream.max_bytes if stream.max_bytes is not None else -1,
        "valueSize": stream.max_msg_size if stream.max_msg_size is not None else -1,
        "metadata": shown,
    }


async def put(context: TaskContext) -> Mapping[str, Any]:
    """Put: each of `values` stored as JSON under its key; the new `revisions`."""
    settings = settings_of(context, PUT_PROPERTIES)
    bucket_name = text(settings, "bucketName")
    values = settings.get("values")
    if not isinstance(values, Mapping):
        raise TaskFailure("`values` must map keys to the values to store")
    revisions: dict[str, int] = {}
    async with connected(settings) as client:
        try:
            bucket = await client.jetstream().key_value(str(bucket_name))
            for key, value in values.items():
                stored = json.dumps(value, separators=(",", ":"), default=str).encode()  # Jackson's form
                revisions[str(key)] = await bucket.put(str(key), stored)
        except Exception as error:
            raise failure(settings["url"], error) from None
    return {"revisions": revisions}


async def get(context: TaskContext) -> Mapping[str, Any]:
    """Get: the values of `keys`, or of `keyRevisions` (key -> revision) when given, read as JSON."""
    from nats.js.errors import KeyValueError, NotFoundError

    settings = settings_of(context, GET_PROPERTIES)
    bucket_name = text(settings, "bucketName")
    wanted: list[tuple[str, int | None]]
    revisions = settings.get("keyRevisions")
    if revisions is not None:
        if not isinstance(revisions, Mapping):
            raise TaskFailure("`keyRevisions` must map keys to revision numbers")
        wanted = [
            (str(key), whole_number("keyRevisions", value, least=1)) for key, value in revisions.items()
        ]
    else:
        wanted = [(key, None) for key in _keys(settings)]
    found: dict[str, Any] = {}
    async with connected(settings) as client:
        try:
            bucket = await client.jetstream().key_value(str(bucket_name))
            for key, revision in wanted:
                try:
                    entry = await bucket.get(key, revision=revision)
                except (KeyValueError, NotFoundError) as error:
                    if "bucket" in type(error).__name__.lower():
                        raise
                    continue
                if entry.value is None or entry.key != key:
                    continue
                try:
                    found[key] = json.loads(entry.value)
                except json.JSONDecodeError:
                    raise TaskFailure(f"The value of `{key}` is not JSON: {entry.value[:200]!r}") from None
        except TaskFailure:
            raise
        except Exception as error:
            raise failure(settings["url"], error) from None
    return {"output": found}


async def delete(context: TaskContext) -> Mapping[str, Any]:
    """Delete: a delete marker written for each of `keys`; `deletedCount`."""
    settings = settings_of(context, DELETE_PROPERTIES)
    bucket_name = text(settings, "bucketName")
    keys = _keys(settings)
    async with connected(settings) as client:
        try:
            bucket = await client.jetstream().key_value(str(bucket_name))
            for key in keys:
                await bucket.delete(key)
        except Exception as error:
            raise failure(settings["url"], error) from None
    return {"deletedCount": len(keys)}
