"""AvroToIon, IonToAvro and InferAvroSchemaFromIon (`io.kestra.plugin.serdes.avro`), with fastavro.

Both conversions stream record by record. AvroToIon gives the logical types as Kestra's Ion writer
does (a timestamp as an Ion timestamp, a local one as a `LocalDateTime`, a date as a date, a decimal
as a decimal, a uuid as a string) and unwraps the `root` record Kestra's inference puts around a
list. IonToAvro converts each record with the task's schema (`avro_convert`), or with a schema
inferred from the first `numberOfRowsToScan` records (all with `inferAllFields`)."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Final

from tiercel.engine.plugin import TaskContext, TaskFailure, ion_dumps

from . import avro_schema, common
from .avro_convert import BAD_LINES, BadRecord, CellError, Converter, Options, rows_to_scan
from .avro_schema import AvroSchema
from .common import Stopped, Work

CONVERTER_PROPERTIES: Final = frozenset(
    {
        "from", "schema", "numberOfRowsToScan", "trueValues", "falseValues", "nullValues", "dateFormat",
        "timeFormat", "datetimeFormat", "decimalSeparator", "strictSchema", "inferAllFields", "timeZoneId",
        "onBadLines",
    }
)  # fmt: skip


# -- reading Avro --------------------------------------------------------------------------------------------


def ion_value(value: Any) -> Any:
    """A value fastavro read, in the form Kestra's Ion writer gives it."""
    if isinstance(value, dict):
        return {key: ion_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [ion_value(item) for item in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def wrapped_field(schema: Any) -> str | None:
    """The field of Kestra's `root` record around a list, if the schema is one."""
    if not isinstance(schema, Mapping) or str(schema.get("name", "")).rsplit(".", 1)[-1] != "root":
        return None
    fields = schema.get("fields") or []
    if len(fields) != 1 or fields[0].get("name") != "value":
        return None
    kind = fields[0].get("type")
    return "value" if isinstance(kind, Mapping) and kind.get("type") == "array" else None


def _avro_to_ion(source: Path, target: Path, on_bad_lines: str, work: Work) -> int:
    import fastavro

    count = 0
    with source.open("rb") as handle, target.open("w", encoding="utf-8", newline="\n") as out:
        try:
            reader = fastavro.reader(handle)
        except Exception as error:
            raise TaskFailure(f"`from` is not an Avro data file: {error}") from None
        wrapped = wrapped_field(reader.writer_schema)
        records: Iterator[Any] = iter(reader)
        while True:
            try:
                record = next(records, None)
            except (Stopped, TaskFailure):
                raise
            except Exception as error:
                message = f"Failed to read Avro record {count + 1}: {error or type(error).__name__}"
                if on_bad_lines == "ERROR":
                    raise TaskFailure(f"Bad Avro record encountered: {message}") from None
                if on_bad_lines == "WARN":
                    work.warn(
                        f"Bad Avro record encountered (skipped): {message}; the rest of the file is not read"
                    )
                break
            if record is None:
                break
            work.tick()
            value = record[wrapped] if wrapped and isinstance(record, dict) else record
            out.write(ion_dumps(ion_value(value)) + "\n")
            count += 1
    return count


async def avro_to_ion(context: TaskContext) -> Mapping[str, Any]:
    """Convert an Avro data file to an Ion item file, a struct a record in the schema's field order."""
    on_bad_lines = common.choice(context, "onBadLines", BAD_LINES, "ERROR") or "ERROR"
    return await common.convert(context, ".ion", lambda s, t, w: _avro_to_ion(s, t, on_bad_lines, w))


# -- writing Avro --------------------------------------------------------------------------------------------


def inferred_schema(source: Path, rows: int | None, work: Work) -> AvroSchema:
    """The schema Kestra infers from the first `rows` records of an Ion file (all when None)."""
    with source.open("rb") as handle:
        values = (value for _, value in common.ion_records(handle, work))
        schema = avro_schema.infer(itertools.islice(values, rows))
    return avro_schema.parse(json.dumps(schema), "inferred schema")


def given_schema(context: TaskContext) -> AvroSchema | None:
    text = context.prop("schema")
    return None if text is None or text == "" else avro_schema.parse(text)


def datums(handle: IO[bytes], schema: AvroSchema, options: Options, work: Work) -> Iterator[dict[str, Any]]:
    """The Avro datums of an Ion file's records; a record that cannot be written is skipped (WARN:
    with a warning), and with ERROR a value that does not fit fails the task, saying where."""
    converter = Converter(options, work.warn)
    for number, row in common.ion_records(handle, work):
        try:
            yield converter.row(schema.root, row)
        except CellError as error:
            raise TaskFailure(f"`from` line {number}: {error}") from None
        except BadRecord as error:
            if options.on_bad_lines == "WARN":
                work.warn(f"Bad record skipped (onBadLines=WARN): `from` line {number}: {error}")
        except RecursionError:
            raise TaskFailure(f"`from` line {number}: the record nests too deeply") from None


def _ion_to_avro(
    source: Path, target: Path, given: AvroSchema | None, options: Options, rows: int | None, work: Work
) -> int:
    from fastavro.write import Writer

    schema = given or inferred_schema(source, rows, work)
    count = 0
    with source.open("rb") as handle, target.open("wb") as out:
        writer = Writer(out, schema.parsed, codec="null")
        for datum in datums(handle, schema, options, work):
            try:
                writer.write(datum)
            except (ValueError, TypeError, OverflowError) as error:  # a datum the converter let through
                raise TaskFailure(f"Cannot write record {count + 1} to Avro: {error}") from None
            count += 1
        writer.flush()
    return count


async def ion_to_avro(context: TaskContext) -> Mapping[str, Any]:
    """Convert an Ion item file to an Avro data file of the `schema` given (or inferred)."""
    given = given_schema(context)
    options = Options.of(context)
    rows = rows_to_scan(context)
    return await common.convert(context, ".avro", lambda s, t, w: _ion_to_avro(s, t, given, options, rows, w))


# -- inferring a schema ------------------------------------------------------------------------------------


def _infer_schema(source: Path, target: Path, rows: int, work: Work) -> int:
    schema = inferred_schema(source, rows, work)
    target.write_text(json.dumps(schema.source, separators=(",", ":")), encoding="utf-8")
    return 0


async def infer_avro_schema_from_ion(context: TaskContext) -> Mapping[str, Any]:
    """Write the Avro schema Kestra infers from the first `numberOfRowsToScan` records, as an .avsc."""
    rows = common.integer(context, "numberOfRowsToScan", 100, 1)
    outputs = await common.convert(
        context, ".avsc", lambda s, t, w: _infer_schema(s, t, rows, w), count_metric=False
    )
    return {"uri": outputs["uri"]}


AVRO_TO_ION_PROPERTIES: Final = frozenset({"from", "onBadLines"})
ION_TO_AVRO_PROPERTIES: Final = CONVERTER_PROPERTIES
INFER_PROPERTIES: Final = frozenset({"from", "numberOfRowsToScan"})
