"""The serdes family (io.kestra.plugin.serdes), loaded through its `tiercel.tasks` entry point:
Kestra's documented example flows run through a real engine (a FILE input in place of the remote
download), their stored files read back, with the expected values of Kestra's own unit tests where
they have them, and bad input failing the task with a message that says what and where."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tiercel.engine.engine import Engine
from tiercel.engine.model import Execution, StateType
from tiercel.engine.plugin import ion_dumps, ion_loads
from tiercel.engine.tasks.registry import registry

from .helpers import logs_of, messages, one_run, running_engine

pytestmark = pytest.mark.asyncio
SERDES = "io.kestra.plugin.serdes"


def one_task(flow_id: str, task_type: str, **props: Any) -> str:
    """A flow with a FILE input `file` and one serdes task `convert` reading it."""
    lines = "".join(f"    {key}: {json.dumps(value)}\n" for key, value in props.items())
    return (
        f"id: {flow_id}\nnamespace: company.team\ninputs:\n  - id: file\n    type: FILE\ntasks:\n"
        f'  - id: convert\n    type: {SERDES}.{task_type}\n    from: "{{{{ inputs.file }}}}"\n{lines}'
    )


async def run_file(engine: Engine, flow_id: str, path: Path) -> Execution:
    execution_id = await engine.trigger("company.team", flow_id, {"file": str(path)}, [], local_files=True)
    return await asyncio.wait_for(engine.wait(execution_id), 60)


async def convert(
    tmp_path: Path, task_type: str, data: bytes | str, **props: Any
) -> tuple[bytes, dict[str, Any]]:
    """Run one conversion of `data`; the stored result and the task run's outputs (plus its metrics)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    given = tmp_path / "given.data"
    given.write_bytes(data.encode() if isinstance(data, str) else data)
    async with running_engine(tmp_path, one_task("conversion", task_type, **props)) as engine:
        execution = await run_file(engine, "conversion", given)
        said = messages(await logs_of(engine, execution.id))
        assert execution.state.current is StateType.SUCCESS, said
        outputs = dict(one_run(execution, "convert").outputs or {})
        outputs["metrics"] = {m.name: m.value for m in await engine.metrics(execution.id)}
        outputs["logs"] = said
        return engine.storage.read_bytes(outputs["uri"]), outputs


async def failure(tmp_path: Path, task_type: str, data: bytes | str, **props: Any) -> list[str]:
    """Run one conversion that must fail; its log lines."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    given = tmp_path / "given.data"
    given.write_bytes(data.encode() if isinstance(data, str) else data)
    async with running_engine(tmp_path, one_task("conversion", task_type, **props)) as engine:
        execution = await run_file(engine, "conversion", given)
        assert execution.state.current is StateType.FAILED
        return messages(await logs_of(engine, execution.id))


def ion_rows(data: bytes) -> list[Any]:
    return [ion_loads(line) for line in data.decode().splitlines()]


async def test_the_family_and_kestras_old_names_come_through_the_entry_point() -> None:
    tasks = registry()
    assert not tasks.failures
    assert tasks.source(f"{SERDES}.csv.CsvToIon").startswith("tiercel ")
    for old, new in [
        ("csv.CsvReader", "csv.CsvToIon"),
        ("csv.CsvWriter", "csv.IonToCsv"),
        ("json.JsonReader", "json.JsonToIon"),
        ("json.JsonWriter", "json.IonToJson"),
    ]:
        found = tasks.lookup(f"{SERDES}.{old}")
        assert found is not None and found.name == f"{SERDES}.{new}"


# -- CSV ---------------------------------------------------------------------------------------------------

PRODUCTS = 'product_id,product_name,price\n1,"Tea, green",2.50\n2,"Say ""hi""",\\N\n3,Caf\u00e9,\n'
PIPELINE = """
id: csv_to_ion
namespace: company.team
inputs:
  - id: file
    type: FILE
tasks:
  - id: to_ion
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{{ inputs.file }}"
  - id: to_json
    type: io.kestra.plugin.serdes.json.IonToJson
    from: "{{ outputs.to_ion.uri }}"
  - id: result
    type: io.kestra.plugin.serdes.csv.IonToCsv
    from: "{{ outputs.to_ion.uri }}"
"""


async def test_kestras_csv_examples_chained_convert_and_round_trip(tmp_path: Path) -> None:
    given = tmp_path / "products.csv"
    given.write_text(PRODUCTS)
    async with running_engine(tmp_path, PIPELINE) as engine:
        execution = await run_file(engine, "csv_to_ion", given)
        assert execution.state.current is StateType.SUCCESS
        to_ion = one_run(execution, "to_ion").outputs or {}
        assert to_ion["size"] == 3
        assert engine.storage.read_bytes(to_ion["uri"]).decode() == (
            '{product_id:"1",product_name:"Tea, green",price:"2.50"}\n'
            '{product_id:"2",product_name:"Say \\"hi\\"",price:null}\n'
            '{product_id:"3",product_name:"Caf\u00e9",price:""}\n'
        )
        to_json = one_run(execution, "to_json").outputs or {}
        assert to_json["uri"].endswith(".jsonl")
        assert engine.storage.read_bytes(to_json["uri"]).decode() == (
            '{"product_id":"1","product_name":"Tea, green","price":"2.50"}\n'
            '{"product_id":"2","product_name":"Say \\"hi\\""}\n'  # Kestra's JSON mapper drops nulls
            '{"product_id":"3","product_name":"Caf\u00e9","price":""}\n'
        )
        back = one_run(execution, "result").outputs or {}
        assert engine.storage.read_bytes(back["uri"]).decode() == PRODUCTS.replace("\\N", "")
        counted = [(m.task_id, m.name, m.value) for m in await engine.metrics(execution.id)]
        assert sorted(counted) == [
            ("result", "records", 3.0),
            ("to_ion", "records", 3.0),
            ("to_json", "records", 3.0),
        ]


INSURANCE = (
    '"policyID";"statecode";"county";"point_latitude"\r\n'
    '"119736";"FL";"CLAY COUNTY";"30.102261"\r\n'
    '"448094";"FL";"CLAY; COUNTY";"30.063936"\r\n'
    '"206893";"FL";"";"30.089579"\r\n'
)


@pytest.mark.parametrize("header", [True, False])
async def test_kestras_semicolon_round_trip_gives_the_same_bytes(tmp_path: Path, header: bool) -> None:
    source = INSURANCE if header else INSURANCE.split("\r\n", 1)[1]
    ion, read = await convert(tmp_path / "in", "csv.CsvToIon", source, fieldSeparator=";", header=header)
    values = ["119736", "FL", "CLAY COUNTY", "30.102261"]
    names = ["policyID", "statecode", "county", "point_latitude"]
    assert ion_rows(ion)[0] == (dict(zip(names, values, strict=True)) if header else values)
    back, wrote = await convert(
        tmp_path / "out", "csv.IonToCsv", ion,
        fieldSeparator=";", alwaysDelimitText=True, lineDelimiter="\r\n", header=header,
    )  # fmt: skip
    assert back.decode() == source
    assert read["size"] == wrote["size"] == 3
    assert read["metrics"] == {"records": 3.0}


async def test_rows_without_header_skip_rows_bom_and_empty_lines(tmp_path: Path) -> None:
    ion, outputs = await convert(tmp_path / "a", "csv.CsvToIon", "ABC\nXYZ\n", header=False)
    assert ion_rows(ion) == [["ABC"], ["XYZ"]]
    ion, outputs = await convert(tmp_path / "b", "csv.CsvToIon", "h\n1\n2\n3\n4\n5\n6\n", skipRows=4)
    assert ion_rows(ion) == [{"h": "5"}, {"h": "6"}] and outputs["metrics"] == {"records": 2.0}
    bom = b"\xef\xbb\xbfcode_insee;nom_commune\n1001;L'Abergement-Cl\xc3\xa9menciat\n"
    ion, _ = await convert(tmp_path / "c", "csv.CsvToIon", bom, fieldSeparator=";")
    assert ion_rows(ion) == [{"code_insee": "1001", "nom_commune": "L'Abergement-Cl\u00e9menciat"}]
    ion, _ = await convert(tmp_path / "d", "csv.CsvToIon", bom, fieldSeparator=";", charset="ISO-8859-1")
    assert list(ion_rows(ion)[0]) == ["\u00ef\u00bb\u00bfcode_insee", "nom_commune"]  # not a BOM in Latin-1
    ion, _ = await convert(tmp_path / "e", "csv.CsvToIon", "a\n\nb\n", header=False)
    assert ion_rows(ion) == [["a"], [""], ["b"]]  # an empty line is a record of one empty field
    ion, _ = await convert(tmp_path / "f", "csv.CsvToIon", "a\n\nb\n", header=False, skipEmptyRows=True)
    assert ion_rows(ion) == [["a"], ["b"]]
    ion, _ = await convert(tmp_path / "g", "csv.CsvToIon", 'a\tb\n"multi\nline"\tx"y\n', fieldSeparator="\t")
    assert ion_rows(ion) == [{"a": "multi\nline", "b": 'x"y'}]


async def test_unnamed_header_columns_dropped_or_renamed_as_kestra_does(tmp_path: Path) -> None:
    ion, outputs = await convert(
        tmp_path / "a", "csv.CsvToIon", "id;region;;\n1;north;100;200\n", fieldSeparator=";"
    )
    assert ion_rows(ion) == [{"id": "1", "region": "north"}]
    assert any("Dropped 2 trailing unnamed header column(s)" in line for line in outputs["logs"])
    ion, _ = await convert(
        tmp_path / "b", "csv.CsvToIon", "a;;col_1;d\n1;2;3;4\n", fieldSeparator=";", onEmptyHeader="RENAME"
    )
    assert ion_rows(ion) == [{"a": "1", "col_1_2": "2", "col_1": "3", "d": "4"}]
    ion, _ = await convert(tmp_path / "c", "csv.CsvToIon", "code;;nom\n1001;X;L\n", fieldSeparator=";")
    assert ion_rows(ion) == [{"code": "1001", "": "X", "nom": "L"}]
    ion, _ = await convert(tmp_path / "d", "csv.CsvToIon", ";;;\n1;2;3;4\n", fieldSeparator=";")
    assert ion.decode() == "{'':\"4\"}\n"


BAD_ROWS = (
    'header1,header2\nvalue1,value2\nvalue3,"value4\nvalue6,value7\nvalue8,value9,value10\nvalue11,value12'
)


async def test_bad_lines_fail_warn_or_skip(tmp_path: Path) -> None:
    said = await failure(
        tmp_path / "a", "csv.CsvToIon", "header1,header2\nvalue1,value2\nvalue3,value4,value5\n"
    )
    assert "Bad line encountered (field count mismatch): Expected 2, got 3 fields. (line 3)" in said
    # Kestra's expectations: a quote left open runs to the end of the file, a record of two fields.
    _, warned = await convert(tmp_path / "b", "csv.CsvToIon", BAD_ROWS, onBadLines="WARN")
    assert warned["size"] == 2
    bad_rows = "name,age,city\nAlice,New York\nBob,25,London,extra\nCharlie,35,Paris"
    ion, skipped = await convert(tmp_path / "c", "csv.CsvToIon", bad_rows, onBadLines="SKIP")
    assert ion_rows(ion) == [{"name": "Charlie", "age": "35", "city": "Paris"}]
    assert not any("Bad line" in line for line in skipped["logs"])
    _, warned = await convert(
        tmp_path / "d", "csv.CsvToIon", "name,age,city\nAlice,New York\nCharlie,35,Paris", onBadLines="WARN"
    )
    assert any("Expected 3, got 2 fields. (line 2)" in line for line in warned["logs"])
    said = await failure(tmp_path / "e", "csv.CsvToIon", 'col1\n"' + "x" * 50 + '"\n', maxBufferSize=8)
    assert any("maximum buffer size of 8" in line for line in said)
    said = await failure(tmp_path / "f", "csv.CsvToIon", 'a,b\n"x"y,z\n')
    assert any("record that started in line 2" in line for line in said)
    ion, _ = await convert(
        tmp_path / "g", "csv.CsvToIon", 'a,b\n"x"y,z\n', allowExtraCharsAfterClosingQuote=True
    )
    assert ion_rows(ion) == [{"a": "xy", "b": "z"}]


async def test_bad_csv_properties_and_files_fail_clearly(tmp_path: Path) -> None:
    said = await failure(tmp_path / "a", "csv.CsvToIon", "a\n1\n", charset="NOPE-42")
    assert any("`charset` NOPE-42: not a known charset" in line for line in said)
    said = await failure(tmp_path / "b", "csv.CsvToIon", "a\n1\n", fieldSeparator=";;")
    assert any("`fieldSeparator` must be a single character" in line for line in said)
    said = await failure(tmp_path / "c", "csv.CsvToIon", "a\n1\n", onBadLines="IGNORE")
    assert any("`onBadLines` must be one of ERROR, WARN, SKIP" in line for line in said)
    said = await failure(tmp_path / "d", "csv.IonToCsv", '{a:"1"}\n{a:"2"\n')
    assert any("`from` line 2 is not valid Ion" in line for line in said)
    said = await failure(tmp_path / "e", "csv.IonToCsv", '["1","2"]\n')
    assert any("Invalid data of type List with header" in line for line in said)
    said = await failure(tmp_path / "f", "csv.IonToCsv", '{a:"1"}\n', lineDelimiter=";")
    assert any("`lineDelimiter` must be" in line for line in said)


# Kestra's IonToCsvTest.ion row, as its Ion mapper writes the Java values.
KESTRA_ROW = (
    '["string",2,3.200000047683716e0,3.2e0,2021-05-05T10:21:12.123Z,'
    'ZonedDateTime::"2021-05-05T12:21:12.123456+02:00",LocalDateTime::"2021-05-05T12:21:00",'
    'OffsetDateTime::"2021-05-05T12:21:12.123456+02:00",2021-05-05,LocalTime::"12:21:12.123456",'
    'OffsetTime::"12:21:12.123456+02:00",2021-05-05T10:21:12.123Z]\n'
)


async def test_ion_to_csv_formats_values_as_kestra_does(tmp_path: Path) -> None:
    out, _ = await convert(
        tmp_path / "a",
        "csv.IonToCsv",
        KESTRA_ROW,
        alwaysDelimitText=True,
        header=False,
        timeZoneId="Europe/Lisbon",
    )
    assert out.decode() == (
        '"string","2","3.200000047683716","3.2","2021-05-05T10:21:12.123Z","2021-05-05T11:21:12.123+01:00",'
        '"2021-05-05T12:21:00.000","2021-05-05T11:21:12.123+01:00","2021-05-05","12:21:12","12:21:12+02:00",'
        '"2021-05-05T10:21:12.123Z"\n'
    )
    row = ion_dumps(
        {"referencia": "PE1617279780", "descripcion": "E:4 PAST FR", "cantidad": 1, "precio": 34.03}
    )
    out, _ = await convert(tmp_path / "b", "csv.IonToCsv", row + "\n", header=True, quoteMode="NON_NUMERIC")
    assert (
        out.decode()
        == '"referencia","descripcion","cantidad","precio"\n"PE1617279780","E:4 PAST FR",1,34.03\n'
    )
    quoted = ion_dumps({"r": '"PE1617279780"', "n": 1, "e": None, "s": ""})
    out, _ = await convert(tmp_path / "c", "csv.IonToCsv", quoted + "\n", header=False)
    assert out.decode() == '"""PE1617279780""",1,,\n'
    mixed = ion_dumps(["test", 42, -7, 3.14, -0.5, "12abc"])
    out, _ = await convert(
        tmp_path / "d", "csv.IonToCsv", mixed + "\n", header=False, quoteMode="NON_NUMERIC"
    )
    assert out.decode() == '"test",42,-7,3.14,-0.5,"12abc"\n'
    dates = "{d:2024-02-29,t:2024-02-29T13:05:09.5Z}\n{d:2024-03-01,t:2024-03-01T00:00:01Z}\n"
    out, _ = await convert(
        tmp_path / "e", "csv.IonToCsv", dates, dateFormat="dd/MM/yyyy", dateTimeFormat="yyyy-MM-dd HH:mm[ X]"
    )
    assert out.decode() == "d,t\n29/02/2024,2024-02-29 13:05 Z\n01/03/2024,2024-03-01 00:00 Z\n"
    said = await failure(tmp_path / "f", "csv.IonToCsv", dates, dateTimeFormat="yyyy-MM-dd qq")
    assert any("`dateTimeFormat` `yyyy-MM-dd qq` is not a valid date pattern" in line for line in said)


async def test_a_large_csv_streams_through_both_ways(tmp_path: Path) -> None:
    rows = 120_000
    data = "id,name,note\n" + "".join(f'{n},name {n},"a, b {n}"\n' for n in range(rows))
    ion, outputs = await convert(tmp_path / "a", "csv.CsvToIon", data)
    assert outputs["size"] == rows and outputs["metrics"] == {"records": float(rows)}
    lines = ion.decode().splitlines()
    assert lines[-1] == f'{{id:"{rows - 1}",name:"name {rows - 1}",note:"a, b {rows - 1}"}}'
    assert all(line == ion_dumps(ion_loads(line)) for line in lines[:500])  # exactly as ion_dumps writes
    back, _ = await convert(tmp_path / "b", "csv.IonToCsv", ion)
    assert back.decode() == data


# -- JSON --------------------------------------------------------------------------------------------------

FULL_JSONL = (
    '{"id":4814976,"name":"Viva","nameNullable":"","long":-8671748620805230000,"double":1783477.3480111,'
    '"boolean":true,"date":"2017/11/16","tags":[1,2.5e10,null],"nested":{"a":null}}\n'
    '{"id":1010871,"name":"Voomm \\u00e9\\n","nameNullable":null,"long":5,"double":0.5,"boolean":false,'
    '"date":"2013/10/23","tags":[],"nested":{}}\n'
)


async def test_json_lines_to_ion_and_back(tmp_path: Path) -> None:
    ion, read = await convert(tmp_path / "a", "json.JsonToIon", FULL_JSONL)
    assert read["size"] == 2 and read["metrics"] == {"records": 2.0}
    assert ion.decode().splitlines()[0] == (
        '{id:4814976,name:"Viva",nameNullable:"",long:-8671748620805230000,double:1783477.3480111e0,'
        'boolean:true,date:"2017/11/16",tags:[1,2.5E10,null],nested:{a:null}}'
    )
    back, wrote = await convert(tmp_path / "b", "json.IonToJson", ion)
    assert wrote["uri"].endswith(".jsonl") and wrote["size"] == 2
    assert back.decode().splitlines()[0] == (
        '{"id":4814976,"name":"Viva","nameNullable":"","long":-8671748620805230000,"double":1783477.3480111,'
        '"boolean":true,"date":"2017/11/16","tags":[1,2.5E10,null],"nested":{}}'
    )
    assert back.decode().splitlines()[1].startswith('{"id":1010871,"name":"Voomm \u00e9\\n","long":5')


async def test_a_json_array_streams_and_a_lone_value_is_one_record(tmp_path: Path) -> None:
    items = [{"id": n, "name": f"Item{n}", "price": n / 4} for n in range(50_000)]
    ion, read = await convert(tmp_path / "a", "json.JsonToIon", json.dumps(items, indent=1), newLine=False)
    assert read["size"] == 50_000 and ion_rows(ion)[-1] == {
        "id": 49_999,
        "name": "Item49999",
        "price": 12499.75,
    }
    back, wrote = await convert(tmp_path / "b", "json.IonToJson", ion, newLine=False)
    assert wrote["uri"].endswith(".json") and json.loads(back) == items
    ion, read = await convert(
        tmp_path / "c", "json.JsonToIon", ' {"id": 4814976, "x": [1]} trailing', newLine=False
    )
    assert ion.decode() == "{id:4814976,x:[1]}\n"
    back, _ = await convert(tmp_path / "d", "json.IonToJson", ion, newLine=False)
    assert back.decode() == '{"id":4814976,"x":[1]}'  # one record: no array around it


async def test_ion_to_json_writes_kestras_strings_and_timestamps(tmp_path: Path) -> None:
    # Kestra's JsonToIonTest.ion: strings pass through, floats in Java's form.
    ion = (
        '{String:"string",Int:2,Float:3.200000047683716e0,Double:3.2e0,Instant:"2021-05-05T10:21:12.123Z",'
        'LocalDate:"2021-05-05"}\n'
    )
    out, _ = await convert(tmp_path / "a", "json.IonToJson", ion, timeZoneId="Europe/Lisbon")
    assert out.decode() == (
        '{"String":"string","Int":2,"Float":3.200000047683716,"Double":3.2,'
        '"Instant":"2021-05-05T10:21:12.123Z","LocalDate":"2021-05-05"}\n'
    )
    typed = (
        '{t:2021-05-05T10:21:12.123Z,l:LocalDateTime::"2021-05-05T12:21:12.5",'
        + "d:2021-05-05,b:{{aGk=}},n:2.50}\n"
    )
    out, _ = await convert(tmp_path / "b", "json.IonToJson", typed, timeZoneId="Europe/Lisbon")
    assert json.loads(out) == {
        "t": "2021-05-05T11:21:12.123+01:00", "l": "2021-05-05T12:21:12.5", "d": "2021-05-05", "b": "aGk=",
        "n": 2.5,
    }  # fmt: skip
    assert b'"n":2.50' in out


async def test_json_to_jsonl_splits_arrays_and_object_sequences(tmp_path: Path) -> None:
    out, outputs = await convert(tmp_path / "a", "json.JsonToJsonl", '[{"a": 1, "b": null}, [2], "x"]')
    assert out.decode() == '{"a":1,"b":null}\n[2]\n"x"\n' and outputs["metrics"] == {"records": 3.0}
    out, _ = await convert(tmp_path / "b", "json.JsonToJsonl", '{"a": 1}\n{"a": 2.0}\n\n{"a": 1e20}\n')
    assert out.decode() == '{"a":1}\n{"a":2.0}\n{"a":1.0E20}\n'
    out, outputs = await convert(tmp_path / "c", "json.JsonToJsonl", "")
    assert out == b"" and outputs["size"] == 0
    said = await failure(tmp_path / "d", "json.JsonToJsonl", "42")
    assert "Invalid JSON format. Expected JSON array or object, but found: VALUE_NUMBER_INT" in said


async def test_bad_json_fails_with_where(tmp_path: Path) -> None:
    said = await failure(tmp_path / "a", "json.JsonToIon", '{"a": 1}\n{"a": }\n')
    assert any(line.startswith("`from` line 2 is not valid JSON") for line in said)
    said = await failure(tmp_path / "b", "json.JsonToIon", '[\n{"a": 1},\n{"a": NaN}\n]', newLine=False)
    assert any(line.startswith("`from` is not valid JSON at line 3") for line in said)
    said = await failure(tmp_path / "c", "json.JsonToIon", '[{"a": 1} {"a": 2}]', newLine=False)
    assert any("expected , or ] but found `{`" in line for line in said)
    said = await failure(tmp_path / "d", "json.JsonToIon", '{"a": 1}\n\n{"a": 2}\n')
    assert any("`from` line 2 is not valid JSON: No content" in line for line in said)
    said = await failure(tmp_path / "e", "json.IonToJson", "{a:1}\n", shouldKeepAnnotations=True)
    assert any("`shouldKeepAnnotations: true` is not supported" in line for line in said)


async def test_a_missing_source_file_fails_the_task(tmp_path: Path) -> None:
    flow = textwrap.dedent(
        """
        id: missing
        namespace: company.team
        tasks:
          - id: convert
            type: io.kestra.plugin.serdes.csv.CsvToIon
            from: "kestra:///company/team/missing/executions/{{ execution.id }}/tasks/t/r/nothing.csv"
        """
    )
    async with running_engine(tmp_path, flow) as engine:
        execution_id = await engine.trigger("company.team", "missing", {}, [])
        execution = await asyncio.wait_for(engine.wait(execution_id), 20)
        assert execution.state.current is StateType.FAILED
        said = messages(await logs_of(engine, execution.id))
        assert any("does not exist in the internal storage" in line for line in said), said
