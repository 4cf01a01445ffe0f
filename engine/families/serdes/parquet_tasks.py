"""ParquetToIon and IonToParquet (`io.kestra.plugin.serdes.parquet`), with pyarrow.

Kestra writes Parquet through parquet-avro: the `schema` is an Avro schema (or one inferred as for
IonToAvro), records are converted as IonToAvro converts them, and the Avro schema is kept in the
file's `parquet.avro.schema` metadata as parquet-avro keeps it. Avro types map to Parquet's as
parquet-avro maps them (a timestamp-millis is a UTC-adjusted timestamp, a local one is not, a decimal
a decimal, an enum or uuid a string). Reading goes batch by batch and writing buffers one row group
(`rowGroupSize` bytes, as parquet-mr does), so memory stays bounded whatever the file's size."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tiercel.engine.plugin import TaskContext, TaskFailure, ion_dumps

from . import avro_tasks, common
from .avro_convert import Options, rows_to_scan
from .avro_schema import AvroSchema, Node
from .common import Work

CODECS: Final = ("UNCOMPRESSED", "SNAPPY", "GZIP", "ZSTD")
VERSIONS: Final = ("V1", "V2")
_BATCH: Final = 4096
_AVRO_SCHEMA_KEY: Final = b"parquet.avro.schema"
_UNITS: Final = {"millis": "ms", "micros": "us"}


def _arrow() -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet, imported when a task runs (pyarrow ships no type hints)."""
    return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")


# -- reading ------------------------------------------------------------------------------------------------


def _ion_value(value: Any, kind: Any) -> Any:
    """A value pyarrow gave, as Kestra's Avro reader gives it: maps as structs, instants in UTC."""
    pa, _ = _arrow()

    if value is None:
        return None
    if pa.types.is_map(kind):
        return {str(key): _ion_value(item, kind.item_type) for key, item in value}
    if pa.types.is_struct(kind):
        return {field.name: _ion_value(value.get(field.name), field.type) for field in kind}
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return [_ion_value(item, kind.value_type) for item in value]
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _readable(schema: Any) -> Any:
    """The schema to read with: nanosecond times and timestamps as microseconds (Python's precision)."""
    pa, _ = _arrow()

    fields = []
    for field in schema:
        kind = field.type
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            kind = pa.timestamp("us", kind.tz)
        elif pa.types.is_time64(kind) and kind.unit == "ns":
            kind = pa.time64("us")
        elif pa.types.is_dictionary(kind):
            kind = kind.value_type
        fields.append(field.with_type(kind))
    return pa.schema(fields)


def _root_list(metadata: Mapping[bytes, bytes] | None) -> bool:
    """Whether the file holds Kestra's `root` record around lists (written from an Ion file of lists)."""
    text = (metadata or {}).get(_AVRO_SCHEMA_KEY)
    if not text:
        return False
    try:
        return avro_tasks.wrapped_field(json.loads(text)) is not None
    except ValueError:
        return False


def _parquet_to_ion(source: Path, target: Path, work: Work) -> int:
    pa, pq = _arrow()

    count = 0
    with target.open("w", encoding="utf-8", newline="\n") as out:
        try:
            with pq.ParquetFile(source) as parquet:
                unwrap = _root_list(parquet.schema_arrow.metadata)
                readable = _readable(parquet.schema_arrow)
                for batch in parquet.iter_batches(batch_size=_BATCH):
                    work.tick()
                    batch = batch.cast(readable, safe=False)
                    columns = [(field.name, field.type) for field in readable]
                    for row in batch.to_pylist():
                        value = {name: _ion_value(row[name], kind) for name, kind in columns}
                        out.write(ion_dumps(value["value"] if unwrap else value) + "\n")
                        count += 1
        except (pa.ArrowException, ValueError) as error:
            raise TaskFailure(
                f"`from` is not a readable Parquet file (after {count} records): {error}"
            ) from None
    return count


async def parquet_to_ion(context: TaskContext) -> Mapping[str, Any]:
    """Convert a Parquet file to an Ion item file, a struct a row in the file's column order."""
    return await common.convert(context, ".ion", _parquet_to_ion)


# -- writing ------------------------------------------------------------------------------------------------


def arrow_type(node: Node, path: str) -> tuple[Any, bool]:
    """The Arrow type of an Avro type as parquet-avro maps it, and whether it is nullable."""
    pa, _ = _arrow()

    if node.type == "union":
        others = [branch for branch in node.branches if branch.type != "null"]
        if len(others) != 1:
            if not others:
                return pa.null(), True
            raise TaskFailure(
                f"Invalid Avro schema for Parquet: `{path}` is a union of several types "
                f"({node.describe()}); only a type or null is supported here"
            )
        return arrow_type(others[0], path)[0], True
    logical = node.logical or ""
    if logical == "decimal" and node.type in ("bytes", "fixed"):
        return (pa.decimal128 if node.precision <= 38 else pa.decimal256)(node.precision, node.scale), False
    if logical == "date" and node.type == "int":
        return pa.date32(), False
    if logical.startswith("time-"):
        unit = _UNITS[logical.rsplit("-", 1)[1]]
        return (pa.time32(unit) if unit == "ms" else pa.time64(unit)), False
    if logical.startswith(("timestamp-", "local-timestamp-")) and node.type == "long":
        unit = _UNITS[logical.rsplit("-", 1)[1]]
        return pa.timestamp(unit, None if logical.startswith("local-") else "UTC"), False
    simple = {
        "null": pa.null(), "boolean": pa.bool_(), "int": pa.int32(), "long": pa.int64(),
        "float": pa.float32(), "double": pa.float64(), "bytes": pa.binary(), "string": pa.string(),
        "enum": pa.string(),
    }  # fmt: skip
    if node.type in simple:
        return simple[node.type], node.type == "null"
    if node.type == "fixed":
        return pa.binary(node.size), False
    if node.type == "array":
        assert node.items is not None
        item, nullable = arrow_type(node.items, f"{path}[]")
        return pa.list_(pa.field("element", item, nullable)), False
    if node.type == "map":
        assert node.items is not None
        item, nullable = arrow_type(node.items, f"{path}{{}}")
        return pa.map_(pa.string(), pa.field("value", item, nullable)), False
    if node.type == "record":
        return pa.struct(arrow_fields(node, path)), False
    raise TaskFailure(f"Invalid Avro schema for Parquet: `{path}` has the unknown type {node.describe()}")


def arrow_fields(node: Node, parent: str = "") -> list[Any]:
    pa, _ = _arrow()

    fields = []
    for name, _, schema in node.fields:
        path = f"{parent}.{name}" if parent else name
        kind, nullable = arrow_type(schema, path)
        fields.append(pa.field(name, kind, nullable))
    return fields


def _arrow_value(node: Node, value: Any) -> Any:
    """A datum in the form pyarrow takes: maps as (key, value) pairs."""
    if value is None:
        return None
    if node.type == "union":
        branch = next((b for b in node.branches if b.type != "null"), None)
        return value if branch is None else _arrow_value(branch, value)
    if node.type == "map" and node.items is not None:
        return [(key, _arrow_value(node.items, item)) for key, item in value.items()]
    if node.type == "array" and node.items is not None:
        return [_arrow_value(node.items, item) for item in value]
    if node.type == "record":
        return {name: _arrow_value(schema, value.get(name)) for name, _, schema in node.fields}
    return value


def _has_map(node: Node, seen: set[int] | None = None) -> bool:
    seen = seen if seen is not None else set()
    if id(node) in seen:
        return False
    seen.add(id(node))
    children = [schema for _, _, schema in node.fields] + node.branches + ([node.items] if node.items else [])
    return node.type == "map" or any(_has_map(child, seen) for child in children)


class _Settings:
    def __init__(self, context: TaskContext) -> None:
        codec = common.choice(context, "compressionCodec", CODECS, "GZIP") or "GZIP"
        self.compression = "NONE" if codec == "UNCOMPRESSED" else codec
        self.version = common.choice(context, "parquetVersion", VERSIONS, "V2") or "V2"
        self.row_group_bytes = common.integer(context, "rowGroupSize", 128 * 1024 * 1024, 1)
        self.page_size = common.integer(context, "pageSize", 1024 * 1024, 1)
        self.dictionary_page_size = common.integer(context, "dictionaryPageSize", 1024 * 1024, 1)


def _batches(
    rows: Iterator[dict[str, Any]], schema: AvroSchema, arrow_schema: Any
) -> Iterator[tuple[Any, int]]:
    pa, _ = _arrow()

    converts = _has_map(schema.root)
    done = 0
    while True:
        chunk = []
        for row in rows:
            chunk.append(_arrow_value(schema.root, row) if converts else row)
            if len(chunk) == _BATCH:
                break
        if not chunk:
            return
        try:
            yield pa.RecordBatch.from_pylist(chunk, schema=arrow_schema), done
        except (pa.ArrowException, ValueError, TypeError, OverflowError) as error:
            raise TaskFailure(
                f"Cannot write records {done + 1} to {done + len(chunk)} to Parquet: {error}"
            ) from None
        done += len(chunk)


def _ion_to_parquet(
    source: Path, target: Path, given: AvroSchema | None, options: Options, rows: int | None,
    settings: _Settings, work: Work,
) -> int:  # fmt: skip
    pa, pq = _arrow()

    schema = given or avro_tasks.inferred_schema(source, rows, work)
    metadata = {_AVRO_SCHEMA_KEY: json.dumps(schema.source).encode(), b"writer.model.name": b"avro"}
    arrow_schema = pa.schema(arrow_fields(schema.root), metadata=metadata)
    count = 0
    pending: list[Any] = []
    pending_bytes = 0
    with source.open("rb") as handle, pq.ParquetWriter(
        target, arrow_schema,
        compression=settings.compression,
        version="2.6" if settings.version == "V2" else "1.0",
        data_page_version="2.0" if settings.version == "V2" else "1.0",
        data_page_size=settings.page_size,
        dictionary_pagesize_limit=settings.dictionary_page_size,
        use_dictionary=True,
    ) as writer:  # fmt: skip
        for batch, _ in _batches(avro_tasks.datums(handle, schema, options, work), schema, arrow_schema):
            pending.append(batch)
            pending_bytes += batch.nbytes
            count += batch.num_rows
            if pending_bytes >= settings.row_group_bytes:  # one row group of about rowGroupSize bytes
                writer.write_table(pa.Table.from_batches(pending), row_group_size=count)
                pending, pending_bytes = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending), row_group_size=count)
    return count


async def ion_to_parquet(context: TaskContext) -> Mapping[str, Any]:
    """Convert an Ion item file to Parquet with the Avro `schema` given (or inferred)."""
    given = avro_tasks.given_schema(context)
    options = Options.of(context)
    rows = rows_to_scan(context)
    settings = _Settings(context)
    if given is not None:
        arrow_fields(given.root)  # a schema Parquet cannot hold fails before anything is read
    return await common.convert(
        context, ".parquet", lambda s, t, w: _ion_to_parquet(s, t, given, options, rows, settings, w)
    )


PARQUET_TO_ION_PROPERTIES: Final = frozenset({"from"})
ION_TO_PARQUET_PROPERTIES: Final = avro_tasks.CONVERTER_PROPERTIES | {
    "compressionCodec", "parquetVersion", "rowGroupSize", "pageSize", "dictionaryPageSize",
}  # fmt: skip
