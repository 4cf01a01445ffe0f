"""Kestra's serdes plugin (`io.kestra.plugin.serdes`): converting files between Kestra's Ion item
files and CSV, JSON (and JSON lines), Excel, Avro, Parquet and XML.

Each task reads the stored file `from`, streams it into a new stored file, and outputs its `uri`
(ExcelToIon: `uris`, a file per sheet) and `size` (the records converted, also Kestra's `records`
counter). Kestra's older names of the
tasks (CsvReader, JsonWriter ...) are accepted as aliases. The format libraries (openpyxl, fastavro,
pyarrow) are imported when a task runs, so loading the family costs nothing.
"""

from __future__ import annotations

from typing import Any

from tiercel.engine.plugin import Kind, Registry, TaskType

from . import avro_tasks, csv_tasks, excel_tasks, ion_to_xml, json_tasks, parquet_tasks, xml_tasks
from .common import PACKAGE

# The library each format's tasks import when they run (CSV, JSON and XML need the standard library).
_LIBRARIES = {"avro": ("fastavro",), "parquet": ("pyarrow",), "excel": ("openpyxl",)}


def _type(name: str, handler: Any, properties: frozenset[str], aliases: tuple[str, ...] = ()) -> TaskType:
    return TaskType(
        f"{PACKAGE}.{name}",
        Kind.RUNNABLE,
        properties=properties,
        required=frozenset({"from"}),
        handler=handler,
        aliases=tuple(f"{PACKAGE}.{alias}" for alias in aliases),
        requires=_LIBRARIES.get(name.split(".", 1)[0], ()),
        extra="serdes",
    )


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the serdes family."""
    registry.add(_type("csv.CsvToIon", csv_tasks.csv_to_ion, csv_tasks.READER_PROPERTIES, ("csv.CsvReader",)))
    registry.add(_type("csv.IonToCsv", csv_tasks.ion_to_csv, csv_tasks.WRITER_PROPERTIES, ("csv.CsvWriter",)))
    registry.add(
        _type(
            "json.JsonToIon", json_tasks.json_to_ion, json_tasks.JSON_TO_ION_PROPERTIES, ("json.JsonReader",)
        )
    )
    registry.add(
        _type(
            "json.IonToJson", json_tasks.ion_to_json, json_tasks.ION_TO_JSON_PROPERTIES, ("json.JsonWriter",)
        )
    )
    registry.add(_type("json.JsonToJsonl", json_tasks.json_to_jsonl, json_tasks.JSON_TO_JSONL_PROPERTIES))
    registry.add(
        _type(
            "avro.AvroToIon", avro_tasks.avro_to_ion, avro_tasks.AVRO_TO_ION_PROPERTIES, ("avro.AvroReader",)
        )
    )
    registry.add(
        _type(
            "avro.IonToAvro", avro_tasks.ion_to_avro, avro_tasks.ION_TO_AVRO_PROPERTIES, ("avro.AvroWriter",)
        )
    )
    registry.add(
        _type(
            "avro.InferAvroSchemaFromIon",
            avro_tasks.infer_avro_schema_from_ion,
            avro_tasks.INFER_PROPERTIES,
        )
    )
    registry.add(
        _type(
            "parquet.ParquetToIon",
            parquet_tasks.parquet_to_ion,
            parquet_tasks.PARQUET_TO_ION_PROPERTIES,
            ("parquet.ParquetReader",),
        )
    )
    registry.add(
        _type(
            "parquet.IonToParquet",
            parquet_tasks.ion_to_parquet,
            parquet_tasks.ION_TO_PARQUET_PROPERTIES,
            ("parquet.ParquetWriter",),
        )
    )
    registry.add(_type("excel.ExcelToIon", excel_tasks.excel_to_ion, excel_tasks.EXCEL_TO_ION_PROPERTIES))
    registry.add(_type("excel.IonToExcel", excel_tasks.ion_to_excel, excel_tasks.ION_TO_EXCEL_PROPERTIES))
    registry.add(
        _type("xml.XmlToIon", xml_tasks.xml_to_ion, xml_tasks.XML_TO_ION_PROPERTIES, ("xml.XmlReader",))
    )
    registry.add(
        _type("xml.IonToXml", ion_to_xml.ion_to_xml, ion_to_xml.ION_TO_XML_PROPERTIES, ("xml.XmlWriter",))
    )
