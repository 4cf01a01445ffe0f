"""ExcelToIon and IonToExcel (`io.kestra.plugin.serdes.excel`), with openpyxl in its streaming modes
(read_only and write_only), so memory stays bounded whatever the workbook's size.

Reading gives cells as Kestra's POI reader gives them: numbers as doubles, date-formatted cells as
their ISO date (`dateTimeRender`), formulas as their cached result, a missing header cell as
`Column<i>`, each selected sheet stored as its own Ion file (output `uris`, by sheet title). Writing
puts numbers, booleans and dates in typed cells (dates in `dateFormat` when `styles`), `Formula:`
strings as formulas and any other value as Java's text of it (null as `null`, as Kestra does)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from tiercel.engine.plugin import TaskContext, TaskFailure, ion_dumps, java_iso

from . import common
from .common import Work

VALUE_RENDERS: Final = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
DATE_TIME_RENDERS: Final = ("SERIAL_NUMBER", "FORMATTED_STRING", "UNFORMATTED_VALUE")
_LONG: Final = 2**63
_MAX_TEXT: Final = 32767
_EXCEL_EPOCH: Final = datetime(1899, 12, 30)


def _openpyxl() -> Any:
    return importlib.import_module("openpyxl")


async def _off_loop(context: TaskContext, job: Callable[[Path, Work], Any]) -> Mapping[str, Any]:
    """`job(folder, work)` off the loop (`common.in_folder`); it returns the coroutine function that
    stores its files (while the folder exists) and gives the outputs."""

    async def finish(store: Any) -> Mapping[str, Any]:
        outputs: Mapping[str, Any] = await store(context)
        return outputs

    return await common.in_folder(context, job, finish)


# -- Excel's number formats, as POI's DataFormatter shows the common ones --------------------------------

_DATE_TOKEN: Final = re.compile(
    r'"[^"]*"|\\.|\[[^\]]*\]|yyyy|yy|mmmmm|mmmm|mmm|mm|m|dddd|ddd|dd|d|hh|h|ss|s|am/pm|a/p|\.0+|.', re.I
)


def _date_text(value: datetime, code: str) -> str:
    """A date cell shown in its Excel format (the common tokens; locale and colour tags dropped)."""
    code = code.split(";", 1)[0]
    tokens = [t for t in _DATE_TOKEN.findall(code) if not t.startswith("[")]
    twelve = any(t.lower() in ("am/pm", "a/p") for t in tokens)
    out: list[str] = []
    for index, token in enumerate(tokens):
        low = token.lower()
        before = next((t.lower() for t in reversed(tokens[:index]) if t.strip(" :-/.,")), "")
        after = next((t.lower() for t in tokens[index + 1 :] if t.strip(" :-/.,")), "")
        hour = value.hour % 12 or 12 if twelve else value.hour
        if low in ("m", "mm") and (before.startswith("h") or after.startswith("s")):
            out.append(f"{value.minute:0{len(low)}d}")
        elif low in ("yyyy", "yy"):
            out.append(f"{value.year:04d}" if low == "yyyy" else f"{value.year % 100:02d}")
        elif low in ("m", "mm"):
            out.append(f"{value.month:0{len(low)}d}")
        elif low in ("mmm", "mmmm", "mmmmm"):
            name = value.strftime("%B")
            out.append(name[: {3: 3, 4: len(name), 5: 1}[len(low)]])
        elif low in ("d", "dd"):
            out.append(f"{value.day:0{len(low)}d}")
        elif low in ("ddd", "dddd"):
            out.append(value.strftime("%a" if low == "ddd" else "%A"))
        elif low in ("h", "hh"):
            out.append(f"{hour:0{len(low)}d}")
        elif low in ("s", "ss"):
            out.append(f"{value.second:0{len(low)}d}")
        elif low in ("am/pm", "a/p"):
            text = "AM" if value.hour < 12 else "PM"
            out.append(text if low == "am/pm" else text[0])
        elif low.startswith(".0"):
            out.append("." + f"{value.microsecond:06d}"[: len(low) - 1])
        elif token.startswith('"'):
            out.append(token[1:-1])
        elif token.startswith("\\"):
            out.append(token[1:])
        else:
            out.append(token)
    return "".join(out)


def _general(number: float) -> str:
    """Excel's General format: up to 11 significant characters, no trailing zeros."""
    if number == int(number) and abs(number) < 1e11:
        return str(int(number))
    if abs(number) >= 1e11 or abs(number) < 1e-9:
        mantissa, _, power = f"{number:.5E}".partition("E")
        return f"{mantissa.rstrip('0').rstrip('.')}E{'+' if int(power) >= 0 else '-'}{abs(int(power)):02d}"
    return f"{round(number, 10):.10f}".rstrip("0").rstrip(".")


def _number_text(number: float, code: str) -> str:
    """A number shown in its format: General, 0, 0.00, #,##0.00, 0%, 0.00E+00 (others as General)."""
    code = re.sub(r"\[[^\]]*\]|\"[^\"]*\"|\\.|_.|\*.", "", code.split(";", 1)[0]).strip()
    shape = re.fullmatch(r"([#,0]*0)(?:\.(0+))?(%|E\+00)?", code)
    if code.lower() in ("general", "") or shape is None:
        return _general(number)
    decimals = len(shape.group(2) or "")
    if shape.group(3) == "E+00":
        mantissa, _, power = f"{number:.{decimals}E}".partition("E")
        return f"{mantissa}E{'+' if int(power) >= 0 else '-'}{abs(int(power)):02d}"
    if shape.group(3) == "%":
        number *= 100
    text = f"{number:{',' if ',' in shape.group(1) else ''}.{decimals}f}"
    return text + ("%" if shape.group(3) == "%" else "")


# -- reading ------------------------------------------------------------------------------------------------


class _ReadOptions:
    def __init__(self, context: TaskContext) -> None:
        sheets = context.prop("sheetsTitle") or []
        if isinstance(sheets, str):
            sheets = [sheets]
        if not isinstance(sheets, list):
            raise TaskFailure(f"`sheetsTitle` must be a list of sheet titles, got `{str(sheets)[:100]}`")
        self.sheets = [str(context.render(title)) for title in sheets]
        self.header = context.flag("header", True)
        self.skip_empty = context.flag("skipEmptyRows", False)
        self.skip_rows = common.integer(context, "skipRows", 0)
        self.value_render = common.choice(context, "valueRender", VALUE_RENDERS, "UNFORMATTED_VALUE")
        self.date_render = common.choice(context, "dateTimeRender", DATE_TIME_RENDERS, "UNFORMATTED_VALUE")
        common.charset(context)  # Kestra accepts it; an xlsx file carries its own encoding


def _serial(value: datetime | date | time | timedelta) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds() / 86400
    if isinstance(value, time):
        return (value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6) / 86400
    moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
    days = (moment.replace(tzinfo=None) - _EXCEL_EPOCH).total_seconds() / 86400
    return days if days > 60 else days - 1  # Excel's 29 February 1900


def _as_moment(value: datetime | date | time | timedelta) -> datetime:
    """The date-time POI's getDateCellValue gives: a time of day or a duration counts from 1899-12-31."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    base = datetime(1899, 12, 31)
    if isinstance(value, time):
        return base.replace(hour=value.hour, minute=value.minute, second=value.second)
    return base + value


def _cell_value(cell: Any, options: _ReadOptions) -> Any:
    """A cell's value as Kestra's reader gives it."""
    value = cell.value
    if value is None:
        return None
    if isinstance(value, datetime | date | time | timedelta):
        if options.date_render == "SERIAL_NUMBER":
            return _serial(value)
        if options.date_render == "FORMATTED_STRING":
            return _date_text(_as_moment(value), cell.number_format or "General")
        if options.value_render == "FORMATTED_VALUE":
            return _as_moment(value)  # Kestra gives getDateCellValue itself here
        return _as_moment(value).date().isoformat()
    if options.value_render == "FORMATTED_VALUE":
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int | float):
            return _number_text(float(value), cell.number_format or "General")
        return str(value)
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return None  # an error (#DIV/0! ...) is null, as in Kestra


def _is_absent(row: tuple[Any, ...]) -> bool:
    return all(type(cell).__name__ == "EmptyCell" for cell in row)


def _rows(sheet: Any, options: _ReadOptions, work: Work) -> Iterator[tuple[Any, ...]]:
    """The sheet's rows as POI iterates them: rows missing from the file left out, `skipRows` skipped."""
    skipped = 0
    for row in sheet.iter_rows():
        work.tick()
        if _is_absent(row):
            continue
        if skipped < options.skip_rows:
            skipped += 1
            continue
        yield row


def _read_sheet(sheet: Any, target: Path, options: _ReadOptions, work: Work) -> int:
    rows = _rows(sheet, options, work)
    headers: list[str] | None = None
    first, last = 0, -1
    count = 0
    with target.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            if last == -1:
                present = [index for index, cell in enumerate(row) if type(cell).__name__ != "EmptyCell"]
                first, last = (present[0], present[-1] + 1) if present else (0, 0)
                if options.header:
                    first = first if present else 0
                    headers = [
                        f"Column{index}" if row[index].value is None
                        else common.java_string(_cell_value(row[index], options))
                        for index in range(first, last)
                    ]  # fmt: skip
                    continue
                first = 0
            values = [_cell_value(row[i], options) if i < len(row) else None for i in range(first, last)]
            if options.skip_empty and all(value in (None, "") for value in values):
                continue
            record: Any = dict(zip(headers, values, strict=True)) if headers is not None else values
            out.write(ion_dumps(record) + "\n")
            count += 1
    return count


def _excel_to_ion(source: Path, folder: Path, options: _ReadOptions, work: Work) -> Any:
    openpyxl = _openpyxl()
    invalid = importlib.import_module("openpyxl.utils.exceptions").InvalidFileException
    files: dict[str, Path] = {}
    total = 0
    with source.open("rb") as handle:  # a handle: openpyxl would refuse a stored file not named .xlsx
        try:
            workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except (zipfile.BadZipFile, invalid, KeyError, ValueError, TypeError, SyntaxError) as error:
            raise TaskFailure(f"`from` is not a readable Excel (.xlsx) workbook: {error}") from None
        try:
            titles = list(workbook.sheetnames)
            for position, title in enumerate(titles):
                if options.sheets and title not in options.sheets:
                    continue
                target = folder / f"sheet{position}.ion"
                try:
                    total += _read_sheet(workbook[title], target, options, work)
                except (zipfile.BadZipFile, KeyError, ValueError, TypeError, SyntaxError) as error:
                    raise TaskFailure(f"Cannot read sheet `{title}` of `from`: {error}") from None
                files[title] = target
        finally:
            workbook.close()

    async def store(context: TaskContext) -> Mapping[str, Any]:
        context.metric("counter", "sheets", len(titles))
        uris = {
            title: await asyncio.to_thread(context.put_file, f"{title}.ion", path)
            for title, path in files.items()
        }
        return {"uris": uris, "size": total}

    return store


async def excel_to_ion(context: TaskContext) -> Mapping[str, Any]:
    """Convert the sheets of an Excel workbook to Ion item files, one a sheet (output `uris`)."""
    source = common.source_file(context)
    options = _ReadOptions(context)
    return await _off_loop(context, lambda folder, work: _excel_to_ion(source, folder, options, work))


# -- writing ------------------------------------------------------------------------------------------------

_ILLEGAL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class _WriteOptions:
    def __init__(self, context: TaskContext) -> None:
        self.header = context.flag("header", True)
        self.styles = context.flag("styles", True)
        self.date_format = str(context.prop("dateFormat", "yyyy-MM-dd"))
        self.zone: tzinfo = common.zone(context)
        common.charset(context)


def _text_cell(text: str, where: str) -> str:
    if len(text) > _MAX_TEXT:
        raise TaskFailure(
            f"{where}: a text of {len(text)} characters; an Excel cell holds at most {_MAX_TEXT}"
        )
    return _ILLEGAL.sub(lambda m: f"_x{ord(m.group()):04X}_", text)  # as POI escapes them


def _excel_cell(sheet: Any, value: Any, options: _WriteOptions, where: str) -> Any:
    """A value as Kestra's IonToExcel writes it into a cell."""
    cell_type = importlib.import_module("openpyxl.cell").WriteOnlyCell
    dated: Any = None
    if isinstance(value, bool):
        return cell_type(sheet, value)
    if isinstance(value, int):
        return cell_type(sheet, value) if -_LONG <= value < _LONG else cell_type(sheet, str(value))
    if isinstance(value, float | Decimal):
        number = float(value)
        if math.isfinite(number):
            return cell_type(sheet, number)
        return cell_type(sheet, common.java_double(number))
    if isinstance(value, datetime) and value.tzinfo is UTC:  # an instant: its date in the task's zone
        dated = value.astimezone(options.zone).date()
    elif not isinstance(value, datetime) or value.tzinfo is None:
        dated = value if isinstance(value, date) else None
    if dated is not None:
        cell = cell_type(sheet, dated)
        cell.number_format = options.date_format if options.styles else "General"
        return cell
    if isinstance(value, datetime):
        key = value.tzinfo.key if isinstance(value.tzinfo, ZoneInfo) else None
        text = java_iso(value) + (f"[{key}]" if key else "")
    elif isinstance(value, time):
        text = java_iso(value)
    else:
        text = common.java_string(value)
    if text.startswith("Formula:"):
        return cell_type(sheet, "=" + text[len("Formula:") :])
    cell = cell_type(sheet, _text_cell(text, where))
    cell.data_type = "s"  # a text starting with `=` stays a text
    return cell


def _write_sheet(workbook: Any, title: str, source: Path, options: _WriteOptions, work: Work) -> int:
    try:
        sheet = workbook.create_sheet(title)
    except ValueError as error:
        raise TaskFailure(f"Invalid sheet title `{title[:100]}`: {error}") from None
    count = 0
    first = True
    with source.open("rb") as handle:
        for number, row in common.ion_records(handle, work):
            where = f"`from` line {number}"
            count += 1
            if isinstance(row, list):
                if options.header:
                    raise TaskFailure(f"{where} is a list, which needs `header: false`")
                sheet.append([_excel_cell(sheet, value, options, where) for value in row])
            elif isinstance(row, Mapping):
                if first and options.header:
                    sheet.append([_excel_cell(sheet, str(key), options, where) for key in row])
                sheet.append([_excel_cell(sheet, value, options, where) for value in row.values()])
                first = False
            else:
                work.warn(f"{where} is neither a struct nor a list: no row written for it")
    return count


def _ion_to_excel(sheets: list[tuple[str, Path]], folder: Path, options: _WriteOptions, work: Work) -> Any:
    workbook = _openpyxl().Workbook(write_only=True)
    try:
        count = sum(_write_sheet(workbook, title, source, options, work) for title, source in sheets)
    except BaseException:
        with contextlib.suppress(Exception):  # closes the sheets' pending writers
            workbook.save(folder / "discarded.xlsx")
        raise
    target = folder / f"{sheets[0][1].stem if len(sheets) == 1 else 'data'}.xlsx"
    workbook.save(target)

    async def store(context: TaskContext) -> Mapping[str, Any]:
        context.metric("counter", "records", count)
        return {"uri": await asyncio.to_thread(context.put_file, target.name, target), "size": count}

    return store


def _sources(context: TaskContext) -> list[tuple[str, Path]]:
    """The sheets to write: `from` a URI (the sheet `sheetsTitle`) or a map of sheet title -> URI."""
    given = context.prop("from")
    if isinstance(given, Mapping):
        pairs = [(str(title), context.render(uri)) for title, uri in given.items()]
        if not pairs:
            raise TaskFailure("`from` is an empty map: give at least one sheet title -> kestra:// URI")
    else:
        pairs = [(str(context.prop("sheetsTitle", "Sheet")), given)]
    sheets = []
    for title, uri in pairs:
        if not isinstance(uri, str) or not uri.startswith("kestra://"):
            raise TaskFailure(f"`from` must be the kestra:// URI of a stored file, not `{str(uri)[:200]}`")
        sheets.append((title, context.stored_file(uri)))
    return sheets


async def ion_to_excel(context: TaskContext) -> Mapping[str, Any]:
    """Convert one Ion item file (or several, one a sheet) to an Excel workbook."""
    sheets = _sources(context)
    options = _WriteOptions(context)
    return await _off_loop(context, lambda folder, work: _ion_to_excel(sheets, folder, options, work))


EXCEL_TO_ION_PROPERTIES: Final = frozenset(
    {"from", "sheetsTitle", "charset", "valueRender", "dateTimeRender", "header", "skipEmptyRows", "skipRows"}
)
ION_TO_EXCEL_PROPERTIES: Final = frozenset(
    {"from", "charset", "sheetsTitle", "header", "styles", "dateFormat", "timeFormat", "dateTimeFormat",
     "timeZoneId"}
)  # fmt: skip
