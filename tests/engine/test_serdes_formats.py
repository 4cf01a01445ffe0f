"""The serdes family's binary and document formats (Avro, Parquet), run through a real engine: Kestra's
documented example flows (a FILE input in place of the remote download), round trips Ion -> format ->
Ion, the written files read back with the format's own library (types included), and bad input
failing the task with a message that says what and where."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from tiercel.engine.model import StateType
from tiercel.engine.plugin import ion_dumps

from .helpers import one_run, running_engine
from .test_serdes_family import convert, failure, ion_rows, run_file

pytestmark = pytest.mark.asyncio


def avro_records(data: bytes) -> tuple[dict[str, Any], list[Any]]:
    reader = fastavro.reader(io.BytesIO(data))
    return reader.writer_schema or {}, list(reader)


def avro_file(schema: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records)
    return out.getvalue()


# -- Avro --------------------------------------------------------------------------------------------------

DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}
PRODUCTS_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Product", "namespace": "com.example",
    "fields": [
        {"name": "product_id", "type": "int"},
        {"name": "product_name", "type": "string"},
        {"name": "price", "type": ["null", DECIMAL]},
        {"name": "added", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["TEA", "COFFEE"]}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "stock", "type": {"type": "map", "values": "long"}},
    ],
}  # fmt: skip
PRODUCT = {
    "product_id": 1, "product_name": "Tea", "price": Decimal("2.50"),
    "added": datetime(2024, 2, 29, 13, 5, 9, 123000, tzinfo=UTC), "day": date(2024, 2, 29),
    "local": datetime(2024, 2, 29, 13, 5, 9, 123456), "at": time(13, 5, 9, 123000), "kind": "TEA",
    "id": "0b7c2a35-8f7e-4d1a-a8c1-5f8f4e0d9a11", "tags": ["green", "loose"], "stock": {"paris": 3},
}  # fmt: skip
AVRO_TO_ION = """
id: avro_to_ion
namespace: company.team
inputs:
  - id: file
    type: FILE
tasks:
  - id: to_ion
    type: io.kestra.plugin.serdes.avro.AvroToIon
    from: "{{ inputs.file }}"
    onBadLines: WARN
"""


async def test_kestras_avro_to_ion_example_gives_kestras_ion_types(tmp_path: Path) -> None:
    given = tmp_path / "products.avro"
    given.write_bytes(avro_file(PRODUCTS_SCHEMA, [PRODUCT, {**PRODUCT, "product_id": 2, "price": None}]))
    async with running_engine(tmp_path, AVRO_TO_ION) as engine:
        execution = await run_file(engine, "avro_to_ion", given)
        assert execution.state.current is StateType.SUCCESS
        outputs = one_run(execution, "to_ion").outputs or {}
        assert outputs["size"] == 2 and outputs["uri"].endswith(".ion")
        lines = engine.storage.read_bytes(outputs["uri"]).decode().splitlines()
        assert [(m.name, m.value) for m in await engine.metrics(execution.id)] == [("records", 2.0)]
    assert lines[0] == (
        '{product_id:1,product_name:"Tea",price:2.50,added:2024-02-29T13:05:09.123Z,day:2024-02-29,'
        'local:LocalDateTime::"2024-02-29T13:05:09.123456",at:LocalTime::"13:05:09.123",kind:"TEA",'
        'id:"0b7c2a35-8f7e-4d1a-a8c1-5f8f4e0d9a11",tags:["green","loose"],stock:{paris:3}}'
    )
    assert ion_rows(lines[1].encode())[0]["price"] is None


async def test_ion_to_avro_and_back_keeps_values_and_logical_types(tmp_path: Path) -> None:
    ion = ion_dumps(PRODUCT) + "\n"
    avro, wrote = await convert(tmp_path / "a", "avro.IonToAvro", ion, schema=json.dumps(PRODUCTS_SCHEMA))
    assert wrote["uri"].endswith(".avro") and wrote["size"] == 1 and wrote["metrics"] == {"records": 1.0}
    schema, records = avro_records(avro)
    assert schema["name"] == "com.example.Product"
    assert records == [{**PRODUCT, "id": uuid.UUID(PRODUCT["id"])}]
    back, read = await convert(tmp_path / "b", "avro.AvroToIon", avro)
    assert ion_rows(back) == [PRODUCT] and read["size"] == 1


FULL_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Full", "namespace": "io.kestra",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "nameNullable", "type": ["null", "string"], "default": None},
        {"name": "enum", "type": {"type": "enum", "name": "Gender", "symbols": ["Female", "Male"]}},
        {"name": "long", "type": ["long", "null"]},
        {"name": "double", "type": "double"},
        {"name": "boolean", "type": "boolean"},
        {"name": "date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "timeMillis", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "timestampMillis", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "timestampMicros", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}  # fmt: skip
FULL_CSV = (
    "id,nameNullable,enum,long,double,boolean,date,timeMillis,timestampMillis,timestampMicros\n"
    "4814976,,Female,-867174862080523000,1783477.3480111,true,2017/11/16,5:14,2017-02-07T11:23:39Z,"
    "2013-02-05T11:07:59Z\n"
)


async def test_csv_text_values_convert_with_kestras_formats(tmp_path: Path) -> None:
    ion, _ = await convert(tmp_path / "a", "csv.CsvToIon", FULL_CSV)
    avro, _ = await convert(
        tmp_path / "b", "avro.IonToAvro", ion,
        schema=json.dumps(FULL_SCHEMA), dateFormat="yyyy/MM/dd", timeFormat="H:mm",
    )  # fmt: skip
    assert avro_records(avro)[1] == [
        {
            "id": 4814976, "nameNullable": None, "enum": "Female", "long": -867174862080523000,
            "double": 1783477.3480111, "boolean": True, "date": date(2017, 11, 16), "timeMillis": time(5, 14),
            "timestampMillis": datetime(2017, 2, 7, 11, 23, 39, tzinfo=UTC),
            "timestampMicros": datetime(2013, 2, 5, 11, 7, 59, tzinfo=UTC),
        }
    ]  # fmt: skip
    # Kestra's converter cases: offsets, epoch numbers, decimal separators, positional rows.
    schema = {
        "type": "record", "name": "R",
        "fields": [
            {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "m", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}},
            {"name": "f", "type": "float"},
            {"name": "n", "type": ["null", "int"]},
        ],
    }  # fmt: skip
    rows = '["2019-12-26 12:13 +02","1577362391123","12,8444",12.8e0,"NA"]\n{col0:"2019-12-26 00:00 Z"}\n'
    avro, _ = await convert(
        tmp_path / "c", "avro.IonToAvro", rows,
        schema=json.dumps(schema), datetimeFormat="yyyy-MM-dd' 'HH:mm' 'X", decimalSeparator=",",
        onBadLines="SKIP",
    )  # fmt: skip
    records = avro_records(avro)[1]
    assert records[0] == {
        "t": datetime(2019, 12, 26, 10, 13, tzinfo=UTC),
        "m": datetime(2019, 12, 26, 12, 13, 11, 123000, tzinfo=UTC),
        "d": Decimal("12.84"), "f": pytest.approx(12.8), "n": None,
    }  # fmt: skip
    assert len(records) == 1  # the second row lacks non-null fields: skipped


async def test_infer_avro_schema_from_ion_as_kestra_does(tmp_path: Path) -> None:
    rows = (
        '{myString:"string",myInt:2,myDouble:3.2e0,myInstant:2021-05-05T10:21:12.123Z,myDate:2021-05-05,'
        'myTime:LocalTime::"12:21:12",myDecimal:7.47,big:5000000000}\n{}\n'
        '{id:1,labels:["lab1"],data1:{field1:"hey"}}\n'
    )
    avsc, outputs = await convert(tmp_path / "a", "avro.InferAvroSchemaFromIon", rows, numberOfRowsToScan=100)
    assert outputs["uri"].endswith(".avsc") and outputs["metrics"] == {}
    schema = json.loads(avsc)
    assert (schema["name"], schema["namespace"]) == ("root", "io.kestra.plugin.serdes.avro")
    types = {field["name"]: field["type"] for field in schema["fields"]}
    assert types["myString"] == ["null", "string"] and types["myInt"] == ["null", "int"]
    assert types["myDouble"] == ["null", "double"] and types["myDecimal"] == ["null", "string"]
    assert types["myInstant"] == ["null", {"type": "long", "logicalType": "local-timestamp-millis"}]
    assert types["myDate"] == ["null", {"type": "int", "logicalType": "date"}]
    assert types["myTime"] == ["null", {"type": "int", "logicalType": "time-millis"}]
    assert types["big"] == ["null", "long"]
    assert types["labels"] == [{"type": "array", "items": ["null", "string"]}, "null"]
    assert types["data1"][0]["fields"] == [{"name": "field1", "type": ["null", "string"]}]
    # Without a schema IonToAvro infers the same, and the round trip gives every field back.
    avro, _ = await convert(tmp_path / "b", "avro.IonToAvro", rows)
    back, _ = await convert(tmp_path / "c", "avro.AvroToIon", avro)
    got = ion_rows(back)
    assert got[1] == dict.fromkeys(types)
    assert got[2]["labels"] == ["lab1"] and got[2]["data1"] == {"field1": "hey"}
    assert got[0]["myDecimal"] == "7.47" and got[0]["myInstant"] == datetime(2021, 5, 5, 10, 21, 12, 123000)
    lists, _ = await convert(tmp_path / "d", "avro.IonToAvro", '["one","two"]\n')
    back, _ = await convert(tmp_path / "e", "avro.AvroToIon", lists)
    assert ion_rows(back) == [["one", "two"]]  # Kestra's `root` wrapper is taken off again


async def test_bad_avro_input_fails_with_what_and_where(tmp_path: Path) -> None:
    schema = json.dumps({"type": "record", "name": "R", "fields": [{"name": "age", "type": "int"}]})
    said = await failure(tmp_path / "a", "avro.IonToAvro", '{age:1}\n{age:"old"}\n', schema=schema)
    assert any("`from` line 2: field `age`: cannot convert str `old` to int" in line for line in said), said
    said = await failure(tmp_path / "b", "avro.IonToAvro", "{age:1}\n", schema='{"type": "record"')
    assert any(line.startswith("Invalid Avro schema") for line in said)
    said = await failure(
        tmp_path / "c", "avro.IonToAvro", "{age:1}\n", schema='{"type": "recrd", "name": "R"}'
    )
    assert any(line.startswith("Invalid Avro schema") for line in said)
    said = await failure(tmp_path / "d", "avro.IonToAvro", "{age:1,x:2}\n", schema=schema, strictSchema=True)
    assert any("Data contains more fields than schema: expected 1, got 2" in line for line in said)
    _, warned = await convert(
        tmp_path / "e", "avro.IonToAvro", '{age:1}\n{age:"old"}\n', schema=schema, onBadLines="WARN"
    )
    assert warned["size"] == 1
    assert any(
        line.startswith("Bad record skipped (onBadLines=WARN): `from` line 2") for line in warned["logs"]
    )
    said = await failure(tmp_path / "f", "avro.AvroToIon", b"Obj\x01garbage")
    assert any("`from` is not an Avro data file" in line for line in said), said
    good = avro_file(PRODUCTS_SCHEMA, [PRODUCT] * 50)
    said = await failure(tmp_path / "g", "avro.AvroToIon", good[: len(good) - 200])
    assert any(line.startswith("Bad Avro record encountered") for line in said), said
    said = await failure(tmp_path / "h", "avro.IonToAvro", "", schema=None)
    assert any("Cannot infer Avro schema from ION input" in line for line in said)
    said = await failure(tmp_path / "i", "avro.IonToAvro", "{age:1}\n", schema=schema, dateFormat="yyyy-qq")
    assert any("`dateFormat` `yyyy-qq` is not a valid date pattern" in line for line in said)


async def test_a_large_avro_file_streams_both_ways(tmp_path: Path) -> None:
    rows = 20_000
    ion = "".join(f'{{id:{n},name:"name {n}",at:2024-01-01T00:00:{n % 60:02d}.500Z}}\n' for n in range(rows))
    schema = {
        "type": "record", "name": "R",
        "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"},
                   {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}],
    }  # fmt: skip
    avro, wrote = await convert(tmp_path / "a", "avro.IonToAvro", ion, schema=json.dumps(schema))
    assert wrote["size"] == rows
    back, read = await convert(tmp_path / "b", "avro.AvroToIon", avro)
    assert read["size"] == rows
    assert back.decode() == ion, "the Ion read back differs"  # no diff of 20,000 lines


async def test_zoned_values_are_instants_and_local_ones_take_the_zone(tmp_path: Path) -> None:
    schema = {
        "type": "record", "name": "R",
        "fields": [{"name": "a", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                   {"name": "b", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                   {"name": "c", "type": {"type": "int", "logicalType": "date"}}],
    }  # fmt: skip
    row = (
        'a:ZonedDateTime::"2021-05-05T12:21:12+02:00",b:LocalDateTime::"2021-05-05T12:21:12",'
        "c:2021-05-05T23:30Z"
    )
    avro, _ = await convert(
        tmp_path, "avro.IonToAvro", "{" + row + "}\n", schema=json.dumps(schema), timeZoneId="Europe/Paris"
    )
    assert avro_records(avro)[1] == [
        {"a": datetime(2021, 5, 5, 10, 21, 12, tzinfo=UTC), "b": datetime(2021, 5, 5, 10, 21, 12, tzinfo=UTC),
         "c": date(2021, 5, 6)}
    ]  # fmt: skip


# -- Parquet -----------------------------------------------------------------------------------------------

ION_TO_PARQUET = """
id: ion_to_parquet
namespace: company.team
inputs:
  - id: file
    type: FILE
tasks:
  - id: avg_salary_by_job_title
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{{ inputs.file }}"
  - id: result
    type: io.kestra.plugin.serdes.parquet.IonToParquet
    from: "{{ outputs.avg_salary_by_job_title.uri }}"
    schema: |
      {
        "type": "record",
        "name": "Salary",
        "namespace": "com.example.salary",
        "fields": [
          {"name": "job_title", "type": "string"},
          {"name": "avg_salary", "type": "double"}
        ]
      }
  - id: to_ion
    type: io.kestra.plugin.serdes.parquet.ParquetToIon
    from: "{{ outputs.result.uri }}"
"""


async def test_kestras_parquet_examples_write_typed_columns_and_read_back(tmp_path: Path) -> None:
    given = tmp_path / "salaries.csv"
    given.write_text("job_title,avg_salary\nData Engineer,142785.73\nData Analyst,108322.5\n")
    async with running_engine(tmp_path, ION_TO_PARQUET) as engine:
        execution = await run_file(engine, "ion_to_parquet", given)
        assert execution.state.current is StateType.SUCCESS
        written = one_run(execution, "result").outputs or {}
        assert written["size"] == 2 and written["uri"].endswith(".parquet")
        table = pq.read_table(io.BytesIO(engine.storage.read_bytes(written["uri"])))
        back = one_run(execution, "to_ion").outputs or {}
        assert engine.storage.read_bytes(back["uri"]).decode() == (
            '{job_title:"Data Engineer",avg_salary:142785.73e0}\n'
            '{job_title:"Data Analyst",avg_salary:108322.5e0}\n'
        )
        counted = sorted((m.task_id, m.value) for m in await engine.metrics(execution.id))
        assert counted == [("avg_salary_by_job_title", 2.0), ("result", 2.0), ("to_ion", 2.0)]
    assert (
        table.schema.field("job_title").type == pa.string() and not table.schema.field("job_title").nullable
    )
    assert table.schema.field("avg_salary").type == pa.float64()
    assert table.column("avg_salary").to_pylist() == [142785.73, 108322.5]
    assert json.loads(table.schema.metadata[b"parquet.avro.schema"])["name"] == "Salary"


async def test_ion_to_parquet_and_back_keeps_logical_types(tmp_path: Path) -> None:
    rows = [PRODUCT, {**PRODUCT, "product_id": 2, "price": None, "stock": {}, "tags": []}]
    ion = "".join(ion_dumps(row) + "\n" for row in rows)
    data, wrote = await convert(
        tmp_path / "a",
        "parquet.IonToParquet",
        ion,
        schema=json.dumps(PRODUCTS_SCHEMA),
        compressionCodec="ZSTD",
    )
    assert wrote["size"] == 2 and wrote["metrics"] == {"records": 2.0}
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    kinds = {field.name: field.type for field in parquet.schema_arrow}
    assert kinds["price"] == pa.decimal128(6, 2) and kinds["added"] == pa.timestamp("ms", "UTC")
    assert kinds["day"] == pa.date32() and kinds["local"] == pa.timestamp("us")
    assert kinds["at"] == pa.time32("ms") and kinds["stock"].item_type == pa.int64()
    assert parquet.read().column("price").to_pylist() == [Decimal("2.50"), None]
    back, read = await convert(tmp_path / "b", "parquet.ParquetToIon", data)
    assert ion_rows(back) == rows and read["size"] == 2
    inferred, _ = await convert(tmp_path / "c", "parquet.IonToParquet", '{a:1,b:"x"}\n{a:null,b:"y"}\n')
    assert pq.read_table(io.BytesIO(inferred)).to_pylist() == [{"a": 1, "b": "x"}, {"a": None, "b": "y"}]
    v1, _ = await convert(
        tmp_path / "d",
        "parquet.IonToParquet",
        "{a:1}\n",
        parquetVersion="V1",
        compressionCodec="UNCOMPRESSED",
    )
    assert pq.ParquetFile(io.BytesIO(v1)).metadata.format_version == "1.0"


async def test_parquet_streams_by_row_groups_and_batches(tmp_path: Path) -> None:
    rows = 20_000
    ion = "".join(f'{{id:{n},name:"name {n}"}}\n' for n in range(rows))
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
    }
    data, _ = await convert(
        tmp_path / "a", "parquet.IonToParquet", ion, schema=json.dumps(schema), rowGroupSize=65536
    )
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.num_rows == rows and parquet.metadata.num_row_groups > 1
    back, read = await convert(tmp_path / "b", "parquet.ParquetToIon", data)
    assert read["size"] == rows
    assert back.decode() == ion, "the Ion read back differs"


async def test_bad_parquet_input_fails_with_what_and_where(tmp_path: Path) -> None:
    said = await failure(tmp_path / "a", "parquet.ParquetToIon", b"PAR1 not really parquet")
    assert any(line.startswith("`from` is not a readable Parquet file") for line in said), said
    union = {"type": "record", "name": "R", "fields": [{"name": "u", "type": ["int", "string"]}]}
    said = await failure(tmp_path / "b", "parquet.IonToParquet", "{u:1}\n", schema=json.dumps(union))
    assert any("`u` is a union of several types" in line for line in said), said
    said = await failure(tmp_path / "c", "parquet.IonToParquet", "{a:1}\n", compressionCodec="LZ4")
    assert any("`compressionCodec` must be one of UNCOMPRESSED, SNAPPY, GZIP, ZSTD" in line for line in said)
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "day", "type": {"type": "int", "logicalType": "date"}}],
    }
    said = await failure(
        tmp_path / "d", "parquet.IonToParquet", '{day:"2024-13-45"}\n', schema=json.dumps(schema)
    )
    assert any(line.startswith("`from` line 1: field `day`: cannot convert") for line in said), said
