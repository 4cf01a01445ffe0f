"""CsvToIon and IonToCsv (`io.kestra.plugin.serdes.csv`), with the reading and writing rules of the
FastCSV library Kestra uses: an empty line is a record of one empty field (unless `skipEmptyRows`),
a quote only opens a field at its start, a quoted field left open runs to the end of the file, `\\N`
is null, and the record starting on line 1 is the header. The stdlib `csv` module parses (in C); the
rules it does not share are applied around it. Both stream, one record at a time."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path
from typing import IO, Any, Final

from tiercel.engine.plugin import TaskContext, TaskFailure

from . import common
from .common import Work
from .javatime import JavaFormat

BAD_LINES: Final = ("ERROR", "WARN", "SKIP")
EMPTY_HEADER: Final = ("DROP", "RENAME")
QUOTE_MODES: Final = ("ALWAYS", "REQUIRED", "NON_NUMERIC")
_MAX_FIELDS: Final = 16 * 1024
_DEFAULT_MAX: Final = 16 * 1024 * 1024
_FIELD_LIMIT: Final = 2**31 - 1
_LINE_DELIMITERS: Final = {"\n": "\n", "\r\n": "\r\n", "\r": "\r"}


class _ParseError(Exception):
    """FastCSV's CsvParseException: Kestra lets `onBadLines` decide, and stops reading."""


# -- reading ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ReadOptions:
    header: bool
    separator: str
    quote: str
    skip_empty: bool
    skip_rows: int
    charset: str
    on_bad_lines: str
    on_empty_header: str
    max_buffer: int
    max_field: int
    extra_after_quote: bool


class _Lines:
    """The source's lines (\\n, \\r\\n or \\r ended) for `csv.reader`, counted, with the lines of the
    record being read kept (to recover a quoted field left open at the end of the file)."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self.count = 0
        self.current: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._text)
        self.count += 1
        self.current.append(line)
        return line


def _records(text: IO[str], options: _ReadOptions) -> Iterator[tuple[int, list[str]]]:
    """(starting line, fields) of each record, FastCSV's way."""
    lines = _Lines(text)
    strict = not options.extra_after_quote
    reader = csv.reader(lines, delimiter=options.separator, quotechar=options.quote, strict=strict)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "unexpected end of data" not in str(error):
                start = lines.count - len(lines.current) + 1
                raise _ParseError(
                    f"Exception when reading record that started in line {start}: {error}"
                ) from None
            # FastCSV ends a quoted field left open at the end of the file there, with no error.
            fields = next(
                csv.reader(iter(lines.current), delimiter=options.separator, quotechar=options.quote)
            )
        start = lines.count - len(lines.current) + 1
        lines.current = []
        if not fields:
            if options.skip_empty:
                continue
            fields = [""]
        _check_sizes(fields, start, options)
        yield start, fields


def _check_sizes(fields: list[str], start: int, options: _ReadOptions) -> None:
    if len(fields) > _MAX_FIELDS:
        raise _ParseError(
            f"Record starting at line {start} has surpassed the maximum limit of {_MAX_FIELDS} fields"
        )
    for index, field in enumerate(fields):
        if len(field) > options.max_buffer:
            raise _ParseError(
                f"The maximum buffer size of {options.max_buffer} is insufficient to read the data of a "
                f"single field (line {start}); a quoted field may not be closed"
            )
        if len(field) > options.max_field:
            raise _ParseError(
                f"Field at index {index} in record starting at line {start} exceeds the max field size of "
                f"{options.max_field} characters"
            )


def _header_names(names: list[str], policy: str, work: Work) -> tuple[list[str], int]:
    """The output names of the header's columns and how many columns are kept (`onEmptyHeader`)."""
    if policy == "RENAME":
        taken = set(names)
        renamed = []
        for index, name in enumerate(names):
            if not name:
                attempt = 1
                while (name := f"col_{index}" if attempt == 1 else f"col_{index}_{attempt}") in taken:
                    attempt += 1
                taken.add(name)
            renamed.append(name)
        return renamed, len(names)
    named = [index for index, name in enumerate(names) if name]
    kept = (named[-1] if named else len(names) - 1) + 1
    if kept < len(names):
        work.warn(
            f"Dropped {len(names) - kept} trailing unnamed header column(s); their values are not emitted. "
            "Set onEmptyHeader=RENAME to keep them."
        )
    distinct = len(set(names[:kept]))
    if distinct < kept:
        work.warn(
            f"Header has {kept - distinct} duplicate or empty column name(s) among the kept columns. "
            "Colliding columns share one output key and only the last value is kept. "
            "Set onEmptyHeader=RENAME to keep every column."
        )
    return names, kept


def _csv_to_ion(source: Path, target: Path, options: _ReadOptions, work: Work) -> int:
    count = skipped = 0
    names: list[str] = []
    kept = 0
    symbols: list[str] | None = None
    with source.open("rb") as raw, target.open("w", encoding="utf-8", newline="\n") as out:
        if options.charset == "utf-8" and raw.read(3) != b"\xef\xbb\xbf":
            raw.seek(0)
        text = io.TextIOWrapper(raw, encoding=options.charset, errors="replace", newline="")
        records = _records(text, options)
        while True:
            try:
                item = next(records, None)
            except _ParseError as error:
                if options.on_bad_lines == "ERROR":
                    raise TaskFailure(str(error)) from None
                if options.on_bad_lines == "WARN":
                    work.warn(f"Bad line encountered (skipped): {error}; the rest of the file is not read")
                break
            if item is None:
                break
            work.tick()
            start, fields = item
            if options.header and start == 1:
                names, kept = _header_names(fields, options.on_empty_header, work)
                unique = len(set(names[:kept])) == kept
                symbols = [common.ion_symbol(name) for name in names[:kept]] if unique else None
                continue
            if skipped < options.skip_rows:
                skipped += 1
                continue
            values = [None if field == "\\N" else field for field in fields]
            if not options.header:
                out.write("[" + ",".join(map(common.ion_text, values)) + "]\n")
            elif len(fields) != len(names):
                expected, got = len(names), len(fields)
                message = (
                    f"Bad line encountered (field count mismatch): Expected {expected}, got {got} fields."
                )
                if options.on_bad_lines == "ERROR":
                    raise TaskFailure(f"{message} (line {start})")
                if options.on_bad_lines == "WARN":
                    work.warn(f"{message} (line {start})")
                continue
            elif symbols is not None:
                cells = (
                    f"{symbol}:{common.ion_text(value)}"
                    for symbol, value in zip(symbols, values, strict=False)
                )
                out.write("{" + ",".join(cells) + "}\n")
            else:
                row = {name: value for name, value in zip(names[:kept], values, strict=False)}
                out.write(
                    "{"
                    + ",".join(f"{common.ion_symbol(k)}:{common.ion_text(v)}" for k, v in row.items())
                    + "}\n"
                )
            count += 1
    return count


async def csv_to_ion(context: TaskContext) -> Mapping[str, Any]:
    """Convert a CSV file to an Ion item file: one struct a row with a header, else one list."""
    if context.prop("errorOnDifferentFieldCount") is not None:
        context.flag("errorOnDifferentFieldCount", False)  # deprecated and ignored, as in Kestra
    separator = common.character(context, "fieldSeparator", ",")
    quote = common.character(context, "textDelimiter", '"')
    if separator in "\r\n" or quote in "\r\n" or separator == quote:
        raise TaskFailure("`fieldSeparator` and `textDelimiter` must differ, and be neither CR nor LF")
    options = _ReadOptions(
        header=context.flag("header", True),
        separator=separator,
        quote=quote,
        skip_empty=context.flag("skipEmptyRows", False),
        skip_rows=common.integer(context, "skipRows", 0),
        charset=common.charset(context),
        on_bad_lines=common.choice(context, "onBadLines", BAD_LINES, "ERROR") or "ERROR",
        on_empty_header=common.choice(context, "onEmptyHeader", EMPTY_HEADER, "DROP") or "DROP",
        max_buffer=common.integer(context, "maxBufferSize", _DEFAULT_MAX, 1),
        max_field=common.integer(context, "maxFieldSize", _DEFAULT_MAX, 1),
        extra_after_quote=context.flag("allowExtraCharsAfterClosingQuote", False),
    )
    if csv.field_size_limit() < _FIELD_LIMIT:  # the limits are Kestra's, checked per field
        csv.field_size_limit(_FIELD_LIMIT)
    return await common.convert(context, ".ion", lambda s, t, w: _csv_to_ion(s, t, options, w))


# -- writing ------------------------------------------------------------------------------------------------


class _Cells:
    """AbstractTextWriter's `convert`: a value as the text of a cell, dates in the task's formats."""

    def __init__(self, context: TaskContext) -> None:
        self.date = JavaFormat(str(context.prop("dateFormat", "yyyy-MM-dd")), "dateFormat")
        self.time = JavaFormat(str(context.prop("timeFormat", "HH:mm:ss[XXX]")), "timeFormat")
        self.date_time = JavaFormat(
            str(context.prop("dateTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSS[XXX]")), "dateTimeFormat"
        )
        self.zone: tzinfo = common.zone(context)

    def text(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if isinstance(value, datetime):
            offset = value.utcoffset()
            if offset is None:
                return self.date_time.format(value)
            if value.tzinfo is UTC:  # an Instant, written in UTC
                return self.date_time.format(value)
            return self.date_time.format(value.astimezone(self.zone))
        if isinstance(value, date):
            return self.date.format(value)
        if isinstance(value, time):
            return self.time.format(value)
        return common.java_string(value)


def _numeric(value: str) -> bool:
    """The NON_NUMERIC quote mode's test: an optional sign, digits and at most one point."""
    body = value[1:] if value[:1] in "+-" else value
    return bool(body) and body.count(".") <= 1 and all(char in "0123456789." for char in body)


class _Writer:
    """FastCSV's CsvWriter: fields quoted when they must be (or as the quote mode says), quotes doubled."""

    def __init__(self, out: IO[str], separator: str, quote: str, line_end: str, mode: str) -> None:
        self.out = out
        self.separator = separator
        self.quote = quote
        self.line_end = line_end
        self.mode = mode
        self.specials = (separator, quote, "\r", "\n")

    def field(self, value: str | None, index: int) -> str:
        if value is None or value == "":
            return self.quote * 2 if self.mode == "ALWAYS" else ""
        needs = (
            self.mode == "ALWAYS"
            or (self.mode == "NON_NUMERIC" and not _numeric(value))
            or any(special in value for special in self.specials)
            or (index == 0 and value[0] == "#")
        )
        if not needs:
            return value
        return self.quote + value.replace(self.quote, self.quote * 2) + self.quote

    def record(self, values: list[str | None]) -> None:
        self.out.write(
            self.separator.join(self.field(value, i) for i, value in enumerate(values)) + self.line_end
        )


def _ion_to_csv(
    source: Path,
    target: Path,
    writer_options: tuple[str, str, str, str, str, bool],
    cells: _Cells,
    work: Work,
) -> int:
    separator, quote, line_end, mode, charset, header = writer_options
    count = 0
    first = True
    with source.open("rb") as handle, target.open("w", encoding=charset, errors="replace", newline="") as out:
        writer = _Writer(out, separator, quote, line_end, mode)
        for number, row in common.ion_records(handle, work):
            count += 1
            if isinstance(row, list):
                if header:
                    raise TaskFailure(
                        f"Invalid data of type List with header (`from` line {number}); set `header: false`"
                    )
                writer.record([cells.text(value) for value in row])
            elif isinstance(row, dict):
                if first and header:
                    writer.record([cells.text(key) for key in row])
                first = False
                writer.record([cells.text(value) for value in row.values()])
    return count


async def ion_to_csv(context: TaskContext) -> Mapping[str, Any]:
    """Convert an Ion item file to CSV: a struct's values in its own field order (the first struct's
    names are the header), a list's items as they come."""
    separator = common.character(context, "fieldSeparator", ",")
    quote = common.character(context, "textDelimiter", '"')
    given_end = str(context.prop("lineDelimiter", "\n"))
    if given_end not in _LINE_DELIMITERS:
        raise TaskFailure(f"`lineDelimiter` must be \\n, \\r\\n or \\r, got `{given_end[:20]!r}`")
    mode = common.choice(context, "quoteMode", QUOTE_MODES, None)
    if mode is None:
        mode = "ALWAYS" if context.flag("alwaysDelimitText", False) else "REQUIRED"
    options = (separator, quote, given_end, mode, common.charset(context), context.flag("header", True))
    cells = _Cells(context)
    return await common.convert(context, ".csv", lambda s, t, w: _ion_to_csv(s, t, options, cells, w))


READER_PROPERTIES: Final = frozenset(
    {
        "from", "header", "fieldSeparator", "textDelimiter", "skipEmptyRows", "errorOnDifferentFieldCount",
        "onBadLines", "onEmptyHeader", "skipRows", "charset", "maxBufferSize",
        "allowExtraCharsAfterClosingQuote", "maxFieldSize",
    }
)  # fmt: skip
WRITER_PROPERTIES: Final = frozenset(
    {
        "from", "header", "fieldSeparator", "textDelimiter", "lineDelimiter", "alwaysDelimitText",
        "quoteMode", "charset", "dateFormat", "timeFormat", "dateTimeFormat", "timeZoneId",
    }
)  # fmt: skip
