"""Nested mappings: merged, as namespaces inherit variables and flow triggers gather outputs, and
the strings they hold."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra` over `base`: nested mappings merge key by key, anything else in `extra` wins."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def strings_in(value: Any) -> Iterator[str]:
    """Every string held in a value of nested mappings and lists (outputs, for instance)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)
