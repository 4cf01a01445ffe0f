"""The serdes family's Excel and XML tasks, run through a real engine: Kestra's documented example flows
(a FILE input in place of the remote download), round trips (Ion -> Excel -> Ion, XML -> Ion -> XML
against Kestra's own expected files), the written files read back with openpyxl and xml.etree, and bad
input (a corrupt workbook, a hostile XML file) failing the task with a message saying what and where."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl
import pytest

from tiercel.engine.model import StateType
from tiercel.engine.plugin import ion_dumps
from tiercel.engine.tasks.registry import registry

from .helpers import one_run, running_engine
from .test_serdes_family import SERDES, convert, failure, ion_rows, run_file

pytestmark = pytest.mark.asyncio


def workbook_bytes(
    sheets: dict[str, list[list[Any]]], formats: dict[tuple[str, int, int], str] | None = None
) -> bytes:
    """An .xlsx file of these sheets (rows of values), `formats` by (sheet, row, column)."""
    book = openpyxl.Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
        for (where, row_at, column), code in (formats or {}).items():
            if where == title:
                sheet.cell(row_at, column).number_format = code
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def read_workbook(data: bytes) -> dict[str, list[list[Any]]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return {
        sheet.title: [list(row) for row in sheet.iter_rows(values_only=True)] for sheet in book.worksheets
    }


# Kestra's insurance_sample.xlsx: the policy ids as text, the amounts as numbers.
INSURANCE = [
    ["policyID", "statecode", "county", "eq_site_limit", "point_latitude"],
    ["119736", "FL", "CLAY COUNTY", 498960, 30.102261],
    ["448094", "FL", "CLAY COUNTY", 1322376.3, 30.063936],
    ["206893", "FL", "CLAY COUNTY", 190724.4, 30.089579],
    ["333743", "FL", "CLAY COUNTY", 0, 30.102261],
    ["172534", "FL", "CLAY COUNTY", 0, 30.063236],
]


async def test_the_excel_and_xml_tasks_and_kestras_old_xml_names_are_registered() -> None:
    tasks = registry()
    for name in ("excel.ExcelToIon", "excel.IonToExcel", "xml.XmlToIon"):
        assert tasks.lookup(f"{SERDES}.{name}") is not None
    found = tasks.lookup(f"{SERDES}.xml.XmlReader")
    assert found is not None and found.name == f"{SERDES}.xml.XmlToIon"


# -- Excel ---------------------------------------------------------------------------------------------------


async def excel_to_ion(
    tmp_path: Path, data: bytes, sheet: str, **props: Any
) -> tuple[list[Any], dict[str, Any]]:
    """ExcelToIon of `data` run through an engine; one sheet's records, and the outputs."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    given = tmp_path / "given.xlsx"
    given.write_bytes(data)
    lines = "".join(f"    {key}: {value!r}\n" for key, value in props.items()).replace("'", '"')
    flow = (
        "id: excel_to_ion\nnamespace: company.team\ninputs:\n  - id: file\n    type: FILE\ntasks:\n"
        f'  - id: to_ion\n    type: {SERDES}.excel.ExcelToIon\n    from: "{{{{ inputs.file }}}}"\n{lines}'
    )
    async with running_engine(tmp_path, flow) as engine:
        execution = await run_file(engine, "excel_to_ion", given)
        assert execution.state.current is StateType.SUCCESS
        outputs = dict(one_run(execution, "to_ion").outputs or {})
        return ion_rows(engine.storage.read_bytes(outputs["uris"][sheet])), outputs


async def test_kestras_excel_to_ion_example_gives_kestras_values(tmp_path: Path) -> None:
    dated = [
        ["date_", "employee_id", "expense"],
        [datetime(2025, 4, 1), 3455, 25],
        ["2025-06-27 14h22", 42, 23],
    ]
    missing = [["PrizeId", "PrizeCode", "PrizeMasterType", "PrizeType"], ["1.2", "GL-MMMM", None, "FnB"]]
    data = workbook_bytes(
        {"Worksheet": INSURANCE, "Dates": dated, "Missing": missing}, {("Dates", 2, 1): "yyyy\\-mm\\-dd"}
    )
    rows, outputs = await excel_to_ion(tmp_path, data, "Worksheet")
    assert outputs["size"] == 5 + 2 + 1 and sorted(outputs["uris"]) == ["Dates", "Missing", "Worksheet"]
    assert rows[3] == {
        "policyID": "333743", "statecode": "FL", "county": "CLAY COUNTY", "eq_site_limit": 0.0,
        "point_latitude": 30.102261,
    }  # fmt: skip
    # Kestra's own expectations (ExcelToIonTest), on the stored text
    text = "\n".join(ion_dumps(row) for row in rows)
    assert 'policyID:"333743"' in text and "point_latitude:30.102261" in text
    dates, _ = await excel_to_ion(tmp_path / "dates", data, "Dates")
    assert dates == [
        {"date_": "2025-04-01", "employee_id": 3455.0, "expense": 25.0},
        {"date_": "2025-06-27 14h22", "employee_id": 42.0, "expense": 23.0},
    ]
    gaps, _ = await excel_to_ion(tmp_path / "gaps", data, "Missing")
    assert gaps == [{"PrizeId": "1.2", "PrizeCode": "GL-MMMM", "PrizeMasterType": None, "PrizeType": "FnB"}]


async def test_excel_to_ion_options_sheets_header_skip_rows_and_renders(tmp_path: Path) -> None:
    data = workbook_bytes(
        {
            "Worksheet_1": INSURANCE,
            "Worksheet_2": INSURANCE,
            "Dates": [["when", "share"], [datetime(2025, 4, 1, 14, 5), 0.256]],
        },
        {("Dates", 2, 1): "dd/mm/yyyy hh:mm", ("Dates", 2, 2): "0.0%"},
    )
    rows, outputs = await excel_to_ion(
        tmp_path, data, "Worksheet_2", sheetsTitle=["Worksheet_2"], header=False
    )
    assert list(outputs["uris"]) == ["Worksheet_2"] and outputs["size"] == 6
    assert rows[0] == ["policyID", "statecode", "county", "eq_site_limit", "point_latitude"]
    skipped, outputs = await excel_to_ion(tmp_path / "skip", data, "Worksheet_1", skipRows=4, header=False)
    assert outputs["size"] == 2 + 2 + 0 and [row[0] for row in skipped] == ["333743", "172534"]
    serial, _ = await excel_to_ion(tmp_path / "serial", data, "Dates", dateTimeRender="SERIAL_NUMBER")
    assert serial[0]["when"] == pytest.approx(45748 + (14 * 60 + 5) / 1440)
    shown, _ = await excel_to_ion(
        tmp_path / "shown", data, "Dates", valueRender="FORMATTED_VALUE", dateTimeRender="FORMATTED_STRING"
    )
    assert shown == [{"when": "01/04/2025 14:05", "share": "25.6%"}]


async def test_kestras_ion_to_excel_examples_and_round_trip(tmp_path: Path) -> None:
    records = [dict(zip(INSURANCE[0], row, strict=True)) for row in INSURANCE[1:]]
    records[0]["point_latitude"] = None
    ion = "".join(ion_dumps(record) + "\n" for record in records)
    stored, outputs = await convert(tmp_path, "excel.IonToExcel", ion, sheetsTitle="Worksheet")
    assert (
        outputs["size"] == 5 and outputs["uri"].endswith(".xlsx") and outputs["metrics"] == {"records": 5.0}
    )
    sheets = read_workbook(stored)
    assert list(sheets) == ["Worksheet"] and sheets["Worksheet"][0] == INSURANCE[0]
    assert sheets["Worksheet"][1] == ["119736", "FL", "CLAY COUNTY", 498960, "null"]  # Kestra writes null so
    assert sheets["Worksheet"][2:] == INSURANCE[2:]
    back, _ = await excel_to_ion(tmp_path / "back", stored, "Worksheet")
    assert back[1] == {**records[1], "eq_site_limit": 1322376.3}
    no_header, _ = await convert(tmp_path / "bare", "excel.IonToExcel", ion, header=False)
    assert read_workbook(no_header)["Sheet"][0] == ["119736", "FL", "CLAY COUNTY", 498960, "null"]


IN_TWO_SHEETS = """
id: excel
namespace: company.team
inputs:
  - id: products
    type: FILE
  - id: fruit
    type: FILE
tasks:
  - id: convert1
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{{ inputs.products }}"
  - id: convert2
    type: io.kestra.plugin.serdes.csv.CsvToIon
    from: "{{ inputs.fruit }}"
  - id: write
    type: io.kestra.plugin.serdes.excel.IonToExcel
    from:
      Sheet_1: "{{ outputs.convert1.uri }}"
      Sheet_2: "{{ outputs.convert2.uri }}"
"""


async def test_kestras_csv_files_into_dedicated_sheets(tmp_path: Path) -> None:
    (tmp_path / "products.csv").write_text("id,name\n1,Tea\n2,=1+1\n")
    (tmp_path / "fruit.csv").write_text("fruit\nApple\n")
    async with running_engine(tmp_path, IN_TWO_SHEETS) as engine:
        inputs = {"products": str(tmp_path / "products.csv"), "fruit": str(tmp_path / "fruit.csv")}
        execution_id = await engine.trigger("company.team", "excel", inputs, [], local_files=True)
        execution = await engine.wait(execution_id)
        assert execution.state.current is StateType.SUCCESS
        outputs = one_run(execution, "write").outputs or {}
        assert outputs["size"] == 3
        assert read_workbook(engine.storage.read_bytes(outputs["uri"])) == {
            "Sheet_1": [["id", "name"], ["1", "Tea"], ["2", "=1+1"]],  # a text, not a formula
            "Sheet_2": [["fruit"], ["Apple"]],
        }


async def test_ion_to_excel_types_dates_formulas_and_lists(tmp_path: Path) -> None:
    ion = (
        "{n:1,big:123456789012345678901234567890,d:2.50,f:1.5e0,ok:true,day:2024-02-29,"
        'at:LocalDateTime::"2024-02-29T13:45:00",instant:2024-02-29T23:30:00Z,'
        'formula:"Formula:SUM(A2:B2)",list:[1,"a"]}\n'
    )
    stored, _ = await convert(tmp_path, "excel.IonToExcel", ion, timeZoneId="Europe/Paris")
    book = openpyxl.load_workbook(io.BytesIO(stored))
    row = [cell for cell in next(book.worksheets[0].iter_rows(min_row=2, max_row=2))]
    values = [cell.value for cell in row]
    assert values[:5] == [1, "123456789012345678901234567890", 2.5, 1.5, True]
    assert values[5] == datetime(2024, 2, 29) and row[5].number_format == "yyyy-MM-dd"
    assert values[6] == datetime(2024, 2, 29, 13, 45)
    assert values[7] == datetime(2024, 3, 1)  # an instant as its date in the task's zone, as Kestra does
    assert values[8] == "=SUM(A2:B2)" and values[9] == "[1, a]"
    plain, _ = await convert(tmp_path / "plain", "excel.IonToExcel", ion, styles=False)
    assert openpyxl.load_workbook(io.BytesIO(plain)).worksheets[0]["F2"].number_format == "General"
    lists, _ = await convert(tmp_path / "lists", "excel.IonToExcel", "[1,2]\n[3,4]\n", header=False)
    assert read_workbook(lists)["Sheet"] == [[1, 2], [3, 4]]


async def test_bad_excel_input_fails_with_what_and_where(tmp_path: Path) -> None:
    said = await failure(tmp_path / "corrupt", "excel.ExcelToIon", b"PK\x03\x04 not really a zip")
    assert any("`from` is not a readable Excel (.xlsx) workbook" in line for line in said)
    said = await failure(tmp_path / "text", "excel.ExcelToIon", "a,b\n1,2\n")
    assert any("not a readable Excel" in line for line in said)
    said = await failure(tmp_path / "list", "excel.IonToExcel", "{a:1}\n[1,2]\n")
    assert any("`from` line 2 is a list, which needs `header: false`" in line for line in said)
    said = await failure(tmp_path / "ion", "excel.IonToExcel", "{a:1}\n{a:\n")
    assert any("`from` line 2 is not valid Ion" in line for line in said)
    said = await failure(tmp_path / "title", "excel.IonToExcel", "{a:1}\n", sheetsTitle="a/b")
    assert any("Invalid sheet title `a/b`" in line for line in said)
    said = await failure(
        tmp_path / "render", "excel.ExcelToIon", workbook_bytes({"S": [["a"]]}), valueRender="RAW"
    )
    assert any("`valueRender` must be one of" in line for line in said)


# -- XML -----------------------------------------------------------------------------------------------------

BOOKS = """<?xml version="1.0"?>
<catalog>
    <book id="bk101">
        <author>Gambardella, Matthew</author>
        <title>XML Developer's Guide</title>
        <genre>Computer</genre>
        <price>44.95</price>
        <publish_date>2000-10-01</publish_date>
        <description>An in-depth look at creating applications
            with XML.</description>
    </book>
    <book id="bk102">
        <author>Ralls, Kim</author>
        <title>Midnight Rain</title>
        <genre>Fantasy</genre>
        <price>5.95</price>
        <publish_date>2000-12-16</publish_date>
        <description>A former architect battles corporate zombies.</description>
    </book>
</catalog>
"""


async def test_kestras_book_query_gives_kestras_fields_in_kestras_order(tmp_path: Path) -> None:
    stored, outputs = await convert(tmp_path, "xml.XmlToIon", BOOKS, query="/catalog/book")
    assert outputs["size"] == 2 and outputs["metrics"] == {"records": 2.0}
    first = ion_rows(stored)[0]
    # the fields and order of Kestra's book_result.xml (Java's HashMap order), price a decimal
    assert list(first) == ["author", "price", "genre", "description", "id", "title", "publish_date"]
    assert first["price"] == Decimal("44.95") and first["id"] == "bk101"
    assert first["description"] == "An in-depth look at creating applications\n            with XML."
    assert stored.decode().startswith('{author:"Gambardella, Matthew",price:44.95,genre:"Computer",')


async def test_kestras_xml_example_unwraps_items_and_types_text(tmp_path: Path) -> None:
    items = (
        "<?xml version='1.0' encoding='UTF-8'?>\n<items>\n"
        "  <item><job_title>BI Data Analyst</job_title><avg_salary>836644.8</avg_salary></item>\n"
        "  <item><job_title>ML Engineer</job_title><avg_salary>679247.63</avg_salary></item>\n</items>\n"
    )
    stored, outputs = await convert(tmp_path, "xml.XmlToIon", items)
    assert outputs["size"] == 2
    assert ion_rows(stored)[0] == {"avg_salary": Decimal("836644.8"), "job_title": "BI Data Analyst"}
    mixed = (
        '<r a="1"><n>007</n><b>TRUE</b><z>null</z><e/><x k="v">text &amp; more</x>'
        "<c><![CDATA[ <raw> ]]></c><l>1</l><l>2</l></r>"
    )
    stored, outputs = await convert(tmp_path / "mixed", "xml.XmlToIon", mixed)
    assert ion_rows(stored) == [
        {"r": {"a": 1, "n": "007", "b": True, "z": None, "e": "", "x": {"k": "v", "content": "text & more"},
               "c": " <raw> ", "l": [1, 2]}}
    ]  # fmt: skip
    forced, _ = await convert(
        tmp_path / "forced", "xml.XmlToIon", "<r><one>1</one></r>", parserConfiguration={"forceList": ["one"]}
    )
    assert ion_rows(forced) == [1]  # {r: {one: [1]}} unwrapped to the list's items, as Kestra does


async def test_empty_files_and_queries_give_what_kestra_gives(tmp_path: Path) -> None:
    stored, outputs = await convert(tmp_path / "empty", "xml.XmlToIon", "", query="/random/stuff")
    assert stored == b"" and outputs["size"] == 0
    stored, _ = await convert(
        tmp_path / "bad", "xml.XmlToIon", "<catalog>\n\n</catalog>", query="/random/stuff"
    )
    assert stored == b""
    stored, _ = await convert(tmp_path / "good", "xml.XmlToIon", "<catalog>\n\n</catalog>", query="/catalog")
    assert stored == b'""\n'
    stored, outputs = await convert(tmp_path / "whole", "xml.XmlToIon", "")
    assert stored == b"{}\n" and outputs["size"] == 1


async def test_a_large_xml_file_streams_by_query(tmp_path: Path) -> None:
    rows = "".join(
        f'<item id="{i}"><name>Item {i}</name><value>{i * 1.5}</value></item>\n' for i in range(10_000)
    )
    stored, outputs = await convert(
        tmp_path, "xml.XmlToIon", f"<catalog>\n{rows}</catalog>", query="/catalog/item"
    )
    assert outputs["size"] == 10_000
    assert ion_rows(stored)[3] == {"name": "Item 3", "id": 3, "value": Decimal("4.5")}


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<lolz>&lol3;</lolz>
"""
EXTERNAL = '<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<r>&x;</r>\n'


async def test_hostile_and_malformed_xml_is_refused(tmp_path: Path) -> None:
    for name, data in [("bomb", BOMB), ("external", EXTERNAL)]:
        said = await failure(tmp_path / name, "xml.XmlToIon", data)
        assert any("declares a document type or entities (line 2): refused" in line for line in said), said
    said = await failure(tmp_path / "broken", "xml.XmlToIon", "<a>\n  <b></a>\n")
    assert any("`from` is not well-formed XML at line 2, column" in line for line in said), said
    said = await failure(tmp_path / "query", "xml.XmlToIon", "<a/>", query="//a[@x]")
    assert any("`query` must be a path of element names" in line for line in said), said


ION_RECORDS = (
    '{id:1,name:"A & B <co>",price:12.50,ok:true,tags:["x","y"],address:{city:"Lyon",zip:null},'
    "seen:2024-01-02T03:04:05.000Z,ratio:1.5e0}\n"
    '{id:2,name:"",price:null,ok:false,tags:[],address:{},seen:null,ratio:1.0E10}\n'
)


async def test_ion_to_xml_writes_the_records_as_jackson_does(tmp_path: Path) -> None:
    written, outputs = await convert(tmp_path, "xml.IonToXml", ION_RECORDS, timeZoneId="UTC")
    assert outputs["size"] == 2 and outputs["metrics"]["records"] == 2
    text = written.decode()
    assert text.startswith("<?xml version='1.0' encoding='UTF-8'?>\n<items>\n  <item>\n    <id>1</id>\n")
    assert "    <name>A &amp; B &lt;co&gt;</name>\n" in text
    assert "    <tags>\n      <tags>x</tags>\n      <tags>y</tags>\n    </tags>\n" in text
    assert "      <zip/>\n" in text and "    <price/>\n" in text and "    <address/>\n" in text
    root = ElementTree.fromstring(written)  # well-formed, read back by the standard library's parser
    first, second = root.findall("item")
    assert first.findtext("price") == "12.50" and first.findtext("seen") == "2024-01-02T03:04:05Z"
    assert first.findtext("ratio") == "1.5" and second.findtext("ratio") == "1.0E10"
    assert [tag.text for tag in first.findall("tags/tags")] == ["x", "y"]
    assert first.findtext("address/city") == "Lyon" and second.findtext("name") == ""


async def test_ion_to_xml_with_no_records_and_a_root_name(tmp_path: Path) -> None:
    written, outputs = await convert(tmp_path, "xml.IonToXml", "", rootName="books")
    assert written == b"<?xml version='1.0' encoding='UTF-8'?>\n<books/>\n" and outputs["size"] == 0
    said = await failure(tmp_path / "bad", "xml.IonToXml", "{a:1}\n", rootName="not a name")
    assert any("`rootName` not a name: not an XML element name" in line for line in said)
