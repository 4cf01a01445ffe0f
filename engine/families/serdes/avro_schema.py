"""Avro schemas as Kestra's Avro and Parquet tasks take them: the `schema` property parsed (fastavro
checks it as Avro's own parser does) into `Node`s the converters walk, and Kestra's schema inference
from an Ion file (`InferAvroSchemaFromIon`, and IonToAvro/IonToParquet without a `schema`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Final

from tiercel.engine.plugin import TaskFailure

NAMESPACE: Final = "io.kestra.plugin.serdes.avro"
_NAMED: Final = ("record", "enum", "fixed")
_INT32: Final = 2**31


@dataclass(eq=False)
class Node:
    """One Avro type: its `type`, logical type and what its kind needs (fields, items, branches ...)."""

    type: str
    logical: str | None = None
    name: str = ""
    fields: list[tuple[str, tuple[str, ...], Node]] = field(default_factory=list)
    items: Node | None = None  # array items, map values
    branches: list[Node] = field(default_factory=list)
    symbols: tuple[str, ...] = ()
    size: int = 0
    precision: int = 0
    scale: int = 0

    @property
    def nullable(self) -> bool:
        return self.type == "null" or any(branch.type == "null" for branch in self.branches)

    def describe(self) -> str:
        """The type as a short text for messages (`long (timestamp-millis)`, `union [null, int]`)."""
        if self.type == "union":
            return "union [" + ", ".join(branch.describe() for branch in self.branches) + "]"
        text = f"{self.type} {self.name}".strip() if self.type in _NAMED else self.type
        return f"{text} ({self.logical})" if self.logical else text


def _compile(schema: Any, names: dict[str, Node], namespace: str) -> Node:
    if isinstance(schema, str):
        if schema in names:
            return names[schema]
        qualified = f"{namespace}.{schema}" if namespace and "." not in schema else schema
        return names.get(qualified) or Node(schema)
    if isinstance(schema, list):
        return Node("union", branches=[_compile(branch, names, namespace) for branch in schema])
    kind = schema["type"]
    logical = schema.get("logicalType")
    if kind in _NAMED:
        name = schema["name"]
        space = schema.get("namespace", namespace if "." not in name else name.rsplit(".", 1)[0])
        full = name if "." in name or not space else f"{space}.{name}"
        node = Node(kind, logical, name=full)
        names[full] = names.setdefault(name.rsplit(".", 1)[-1], node)
        if kind == "record":
            for item in schema["fields"]:
                aliases = tuple(item.get("aliases") or ())
                node.fields.append((item["name"], aliases, _compile(item["type"], names, space)))
        node.symbols = tuple(schema.get("symbols") or ())
        node.size = int(schema.get("size") or 0)
        node.precision, node.scale = int(schema.get("precision") or 0), int(schema.get("scale") or 0)
        return node
    if kind == "array":
        return Node(kind, logical, items=_compile(schema["items"], names, namespace))
    if kind == "map":
        return Node(kind, logical, items=_compile(schema["values"], names, namespace))
    if isinstance(kind, dict | list) or kind in names:
        return _compile(kind, names, namespace)
    node = Node(kind, logical)
    node.precision, node.scale = int(schema.get("precision") or 0), int(schema.get("scale") or 0)
    return node


@dataclass(frozen=True)
class AvroSchema:
    """A parsed schema: its JSON (for the file's header), fastavro's parsed form, and the tree."""

    source: Mapping[str, Any]
    parsed: Any
    root: Node


def parse(text: Any, name: str = "schema") -> AvroSchema:
    """Parse a schema given as JSON text (or as a YAML mapping); its top level must be a record."""
    import fastavro

    try:
        source = json.loads(text) if isinstance(text, str) else text
        parsed = fastavro.parse_schema(source, _write_hint=False)
    except (ValueError, TypeError, KeyError, AttributeError, fastavro.schema.SchemaParseException) as error:
        raise TaskFailure(f"Invalid Avro schema: `{name}` {error}") from None
    if not isinstance(source, Mapping) or source.get("type") != "record":
        raise TaskFailure(f'Invalid Avro schema: `{name}` must be a record schema (`"type": "record"`)')
    _check_logical(source)
    return AvroSchema(source, parsed, _compile(source, {}, ""))


def _check_logical(schema: Any) -> None:
    """A decimal needs a precision at least its scale, as Avro's parser checks (fastavro does not)."""
    if isinstance(schema, list):
        for branch in schema:
            _check_logical(branch)
    elif isinstance(schema, Mapping):
        if schema.get("logicalType") == "decimal":
            precision, scale = schema.get("precision"), schema.get("scale", 0)
            if (
                not isinstance(precision, int)
                or precision < 1
                or not isinstance(scale, int)
                or scale > precision
            ):
                raise TaskFailure(
                    f"Invalid Avro schema: decimal precision {precision} and scale {scale} are not valid"
                )
        for key in ("type", "items", "values"):
            if not isinstance(schema.get(key), str):
                _check_logical(schema.get(key))
        for item in schema.get("fields") or ():
            _check_logical(item.get("type") if isinstance(item, Mapping) else None)


# -- inference ---------------------------------------------------------------------------------------------

_Schema = Any  # an Avro schema as JSON values: a name, a mapping or a list (a union)


def _nullable(schema: _Schema) -> list[_Schema]:
    return ["null", schema]


def _kind(schema: _Schema) -> str:
    if isinstance(schema, list):
        return "union"
    return schema if isinstance(schema, str) else str(schema["type"])


class Inference:
    """Kestra's InferAvroSchema: each record's type found, merged with what the same path had before
    (a field seen once as an int and once as a string becomes `[null, int, string]`)."""

    def __init__(self) -> None:
        self._known: dict[str, _Schema] = {}
        self.merged: _Schema | None = None

    def add(self, row: Any) -> None:
        found = self._infer(".", "root", row)
        self.merged = found if self.merged is None else merge(self.merged, found)

    def _infer(self, path: str, name: str, node: Any) -> _Schema:
        if isinstance(node, Mapping):
            fields = [
                {"name": str(key), "type": self._infer(f"{path}_{name}_{key}", str(key), value)}
                for key, value in node.items()
            ]
            record = {"type": "record", "name": name, "namespace": NAMESPACE, "fields": fields}
            found: _Schema = record if name == "root" else [record, "null"]
        elif isinstance(node, list):
            if not node:
                found = [{"type": "array", "items": "string"}, "null"]
            else:
                item: _Schema = None
                for value in node:
                    item = self._infer(f"{path}_{name}_items", f"{name}_items", value)
                array = {"type": "array", "items": item}
                if name == "root":
                    value_field = {"name": "value", "type": array, "doc": ""}
                    found = {
                        "type": "record",
                        "name": "root",
                        "namespace": NAMESPACE,
                        "fields": [value_field],
                    }
                else:
                    found = [array, "null"]
        elif node is None:
            found = "null"
        else:
            found = _nullable(_primitive(path, node))
        known = self._known.get(path)
        merged = found if known is None else merge(found, known)
        self._known[path] = merged
        return merged


def _primitive(path: str, node: Any) -> _Schema:
    if isinstance(node, bytes | bytearray):
        return "bytes"
    if isinstance(node, str | Decimal):
        return "string"
    if isinstance(node, bool):
        return "boolean"
    if isinstance(node, int):
        return "int" if -_INT32 <= node < _INT32 else "long"
    if isinstance(node, float):
        return "double"
    if isinstance(node, datetime):
        return {"type": "long", "logicalType": "local-timestamp-millis"}
    if isinstance(node, date):
        return {"type": "int", "logicalType": "date"}
    if isinstance(node, time):
        return {"type": "int", "logicalType": "time-millis"}
    raise TaskFailure(f"Cannot infer an Avro type for {path}: {type(node).__name__} `{str(node)[:100]}`")


def _members(schema: _Schema) -> Iterator[_Schema]:
    if isinstance(schema, list):
        yield from schema
    else:
        yield schema


def merge(first: _Schema, second: _Schema) -> _Schema:
    """Kestra's mergeTypes: the most precise type holding both."""
    kinds = _kind(first), _kind(second)
    if "union" in kinds:
        members: list[_Schema] = []
        for member in [*_members(first), *_members(second)]:
            if member not in members:
                members.append(member)
        for kind in ("record", "array"):
            same = [member for member in members if _kind(member) == kind]
            if len(same) > 1:
                members = [m for m in members if _kind(m) != kind] + [merge(same[0], same[1])]
                break
        return members
    if "record" in kinds:
        if kinds != ("record", "record"):
            raise TaskFailure(f"Cannot infer an Avro schema: a record and a {kinds[1]} in the same field")
        names: dict[str, _Schema] = {}
        for item in [*first["fields"], *second["fields"]]:
            names[item["name"]] = (
                merge(names[item["name"]], item["type"]) if item["name"] in names else item["type"]
            )
        return {**first, "fields": [{"name": key, "type": value} for key, value in names.items()]}
    if kinds[0] == kinds[1]:
        return first
    return [first, second]


def infer(rows: Iterator[Any]) -> Mapping[str, Any]:
    """The schema of the rows (at least one), as Kestra infers it."""
    inference = Inference()
    for row in rows:
        inference.add(row)
    if inference.merged is None:
        raise TaskFailure(
            "Cannot infer Avro schema from ION input: the file appears to be empty or contains no valid "
            "records."
        )
    if not isinstance(inference.merged, Mapping):
        raise TaskFailure("Cannot infer an Avro schema: the records of `from` must be structs or lists")
    return inference.merged
