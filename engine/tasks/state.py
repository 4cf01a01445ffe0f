"""The deprecated state.Get, state.Set and state.Delete: a map of values kept between executions.

Kestra keeps each state in the KV store of the flow's namespace (its StateStore, since the state
files in the internal storage were migrated there), under the key
``[<flow id slug>_]states_tasks-states_<name>[_<hash of taskrun.value>]``: the flow id prefix unless
`namespace` shares the state with the whole namespace, the hash (Guava's murmur3_128 of the value, in
hex) inside a loop unless `taskrunValue` is false. The same keys are used here, so that
``kv.GetKeys`` lists the states as Kestra's does; the value is the state's map itself.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from ..expressions import to_text
from ..store.errors import StoreError
from .base import TaskContext, TaskFailure
from .services import KeyValueStore

CORE = "io.kestra.plugin.core"
_MASK = (1 << 64) - 1
_C1, _C2 = 0x87C37B91114253D5, 0x4CF5AD432745937F


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (64 - shift))) & _MASK


def _fmix(value: int) -> int:
    value ^= value >> 33
    value = (value * 0xFF51AFD7ED558CCD) & _MASK
    value ^= value >> 33
    value = (value * 0xC4CEB9FE1A85EC53) & _MASK
    return value ^ (value >> 33)


def murmur3_128_hex(text: str) -> str:
    """Guava's ``murmur3_128().hashString(text, UTF_8).toString()`` (seed 0): 32 hex digits."""
    data = text.encode("utf-8")
    h1 = h2 = 0
    blocks = len(data) // 16
    for index in range(blocks):
        k1 = int.from_bytes(data[index * 16 : index * 16 + 8], "little")
        k2 = int.from_bytes(data[index * 16 + 8 : index * 16 + 16], "little")
        h1 ^= (_rotl((k1 * _C1) & _MASK, 31) * _C2) & _MASK
        h1 = (_rotl(h1, 27) + h2) & _MASK
        h1 = (h1 * 5 + 0x52DCE729) & _MASK
        h2 ^= (_rotl((k2 * _C2) & _MASK, 33) * _C1) & _MASK
        h2 = (_rotl(h2, 31) + h1) & _MASK
        h2 = (h2 * 5 + 0x38495AB5) & _MASK
    tail = data[blocks * 16 :]
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        k2 = int.from_bytes(tail[8:], "little")
        if k2:
            h2 ^= (_rotl((k2 * _C2) & _MASK, 33) * _C1) & _MASK
        if k1:
            h1 ^= (_rotl((k1 * _C1) & _MASK, 31) * _C2) & _MASK
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    return (h1.to_bytes(8, "little") + h2.to_bytes(8, "little")).hex()


def slugify(text: str) -> str:
    """Kestra's ``Slugify.of``: blanks to dashes, accents and other characters dropped, lower case."""
    slug = re.sub(r"\s", "-", text)
    slug = unicodedata.normalize("NFD", slug)
    slug = re.sub(r"[^\w-]", "", slug, flags=re.ASCII).replace("_", "-")
    slug = re.sub(r"-{2,}", "-", slug).strip("-")
    return slug.lower()


def state_key(context: TaskContext) -> str:
    """The KV key of the task's state, as Kestra's StateStore builds it."""
    name = to_text(context.prop("name", "default"))
    shared = context.flag("namespace", False)
    value = context.run.value if context.flag("taskrunValue", True) else None
    key = ("" if shared else slugify(context.flow.id) + "_") + "states_tasks-states_" + name
    return key if value is None else key + "_" + murmur3_128_hex(value)


def _kv(context: TaskContext) -> KeyValueStore:
    if context.kv is None:
        raise TaskFailure("The state tasks need the KV store, which needs a database")
    return context.kv


async def _read(context: TaskContext, key: str) -> dict[str, Any] | None:
    found, value = await _kv(context).kv_get(context.execution.namespace, key)
    if not found:
        return None
    if isinstance(value, (str, bytes)):  # a state stored as JSON text
        try:
            value = json.loads(value)
        except ValueError:
            raise TaskFailure(f"State {key} does not hold a JSON map") from None
    if not isinstance(value, Mapping):
        raise TaskFailure(f"State {key} does not hold a map")
    return dict(value)


def merge(current: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Kestra's ``MapUtils.merge``: maps merge deeply, lists concatenate, a null keeps the old value."""
    merged = dict(current)
    for key, value in new.items():
        original = merged.get(key)
        if value is None:
            merged[key] = original
        elif isinstance(value, Mapping) and isinstance(original, Mapping):
            merged[key] = merge(original, value)
        elif isinstance(value, list) and isinstance(original, list):
            merged[key] = [*original, *value]
        else:
            merged[key] = value
    return merged


async def get(context: TaskContext) -> Mapping[str, Any] | None:
    key = state_key(context)
    data = await _read(context, key)
    if data is None:
        if context.flag("errorOnMissing", False):
            raise TaskFailure(f"State {key} not found")
        data = {}
    return {"count": len(data), "data": data}


async def set_(context: TaskContext) -> Mapping[str, Any] | None:
    key = state_key(context)
    new = context.prop("data") or {}
    if not isinstance(new, Mapping):
        raise TaskFailure("`data` must be a map")
    merged = merge(await _read(context, key) or {}, {to_text(k): v for k, v in new.items()})
    try:
        await _kv(context).kv_set(context.execution.namespace, key, merged)
    except StoreError as error:
        raise TaskFailure(str(error)) from None
    return {"count": len(merged), "key": key}


async def delete(context: TaskContext) -> Mapping[str, Any] | None:
    key = state_key(context)
    deleted = await _kv(context).kv_delete(context.execution.namespace, key)
    if not deleted and context.flag("errorOnMissing", False):
        raise TaskFailure(f"Unable to find the state file '{to_text(context.prop('name', 'default'))}'")
    return {"deleted": deleted}


HANDLERS: dict[str, Any] = {
    f"{CORE}.state.Get": get,
    f"{CORE}.state.Set": set_,
    f"{CORE}.state.Delete": delete,
}
