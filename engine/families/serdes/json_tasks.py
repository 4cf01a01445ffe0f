"""JsonToIon, IonToJson and JsonToJsonl (`io.kestra.plugin.serdes.json`).

JSON is read as Jackson reads it into plain values (no NaN, the first value of a line or a file, what
follows it ignored) and written as Jackson writes it: compact, numbers in Java's forms (`1.0E10`),
control characters escaped. A JSON array is streamed element by element, never held whole, which
Kestra itself only does for JsonToJsonl. IonToJson drops the null fields of a struct, as Kestra's JSON
mapper does (it writes non-null values only), and writes a lone record without an array around it.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final

from tiercel.engine.plugin import TaskContext, TaskFailure, ion_dumps, java_iso

from . import common
from .common import Work

_CHUNK: Final = 1 << 16
_ESCAPED: Final = re.compile(r'[\x00-\x1f"\\]')
_SHORT: Final = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_BLANKS: Final = " \t\n\r"


def _refuse(constant: str) -> Any:
    raise ValueError(f"`{constant}` is not JSON")


class JsonStream:
    """JSON values read one at a time from a text, holding only the value being read."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self._decoder = json.JSONDecoder(parse_constant=_refuse)
        self._buffer = ""
        self._pos = 0
        self._line = 1  # the line of the buffer's first character
        self._eof = False

    def _fill(self) -> bool:
        """Read more (at least as much as is buffered, so a long value costs linear time)."""
        if self._eof:
            return False
        self._line += self._buffer.count("\n", 0, self._pos)
        self._buffer = self._buffer[self._pos :]
        self._pos = 0
        chunk = self._text.read(max(_CHUNK, len(self._buffer)))
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def line(self, index: int | None = None) -> int:
        return self._line + self._buffer.count("\n", 0, self._pos if index is None else index)

    def peek(self) -> str:
        """The next character that is not a blank ("" at the end)."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in _BLANKS:
                self._pos += 1
            if self._pos < len(self._buffer) or not self._fill():
                return self._buffer[self._pos : self._pos + 1]

    def take(self) -> None:
        self._pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                if self._fill():
                    continue
                raise TaskFailure(
                    f"`from` is not valid JSON at line {self.line(error.pos)}: {error.msg}"
                ) from None
            except (ValueError, RecursionError) as error:
                raise TaskFailure(f"`from` is not valid JSON at line {self.line()}: {error}") from None
            if end == len(self._buffer) and self._fill():
                continue  # a number may go on in the next chunk
            self._pos = end
            return value

    def array_items(self) -> Iterator[Any]:
        """The items of the array that opens here (its `[` already taken)."""
        if self.peek() == "]":
            self.take()
            return
        while True:
            yield self.value()
            char = self.peek()
            self.take()
            if char == "]":
                return
            if char != ",":
                found = f"`{char}`" if char else "the end of the file"
                raise TaskFailure(
                    f"`from` is not valid JSON at line {self.line()}: expected , or ] but found {found}"
                )


def _decode_lines(text: IO[str], work: Work) -> Iterator[Any]:
    decoder = json.JSONDecoder(parse_constant=_refuse)
    for number, line in enumerate(text, start=1):
        work.tick()
        start = len(line) - len(line.lstrip(_BLANKS))
        try:
            if start == len(line):
                raise ValueError("No content to map due to end-of-input")
            value, _ = decoder.raw_decode(line, start)
        except json.JSONDecodeError as error:
            raise TaskFailure(
                f"`from` line {number} is not valid JSON: {error.msg} (column {error.colno})"
            ) from None
        except (ValueError, RecursionError) as error:
            raise TaskFailure(f"`from` line {number} is not valid JSON: {error}") from None
        yield value


# -- writing JSON as Jackson does --------------------------------------------------------------------------


def _string(text: str) -> str:
    return '"' + _ESCAPED.sub(lambda m: _SHORT.get(m.group()) or f"\\u{ord(m.group()):04X}", text) + '"'


class JsonWriter:
    """Values as compact JSON; `drop_nulls` leaves out a struct's null fields (Kestra's JSON mapper)."""

    def __init__(self, zone: tzinfo | None = None, drop_nulls: bool = False) -> None:
        self.zone = zone
        self.drop_nulls = drop_nulls

    def dumps(self, value: Any) -> str:
        out: list[str] = []
        self._write(value, out)
        return "".join(out)

    def _write(self, value: Any, out: list[str]) -> None:
        if value is None:
            out.append("null")
        elif isinstance(value, bool):
            out.append("true" if value else "false")
        elif isinstance(value, int):
            out.append(str(value))
        elif isinstance(value, float):
            text = common.java_double(value)
            out.append(text if value == value and abs(value) != float("inf") else f'"{text}"')
        elif isinstance(value, Decimal):
            out.append(str(value))
        elif isinstance(value, str):
            out.append(_string(value))
        elif isinstance(value, Mapping):
            out.append("{")
            first = True
            for key, item in value.items():
                if item is None and self.drop_nulls:
                    continue
                out.append(("" if first else ",") + _string(str(key)) + ":")
                first = False
                self._write(item, out)
            out.append("}")
        elif isinstance(value, list | tuple):
            out.append("[")
            for index, item in enumerate(value):
                if index:
                    out.append(",")
                self._write(item, out)
            out.append("]")
        else:
            out.append(_string(self._text(value)))

    def _text(self, value: Any) -> str:
        if isinstance(value, datetime):
            if value.tzinfo is UTC and self.zone is not None:  # an Ion timestamp: shown in the task's zone
                return java_iso(value.astimezone(self.zone))
            key = getattr(value.tzinfo, "key", None)  # a ZonedDateTime keeps its zone's name
            return f"{java_iso(value)}[{key}]" if key else java_iso(value)
        if isinstance(value, time):
            return java_iso(value)
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(bytes(value)).decode("ascii")
        return common.java_string(value)


# -- the tasks ----------------------------------------------------------------------------------------------


def _text_reader(raw: IO[bytes], charset: str) -> IO[str]:
    return io.TextIOWrapper(raw, encoding=charset, errors="replace")


def _json_to_ion(source: Path, target: Path, charset: str, new_line: bool, work: Work) -> int:
    count = 0
    with source.open("rb") as raw, target.open("w", encoding="utf-8", newline="\n") as out:
        text = _text_reader(raw, charset)
        if new_line:
            values: Iterator[Any] = _decode_lines(text, work)
        else:
            stream = JsonStream(text)
            first = stream.peek()
            if not first:
                raise TaskFailure("`from` holds no JSON value (No content to map due to end-of-input)")
            if first == "[":
                stream.take()
                values = stream.array_items()
            else:
                values = iter([stream.value()])
        for value in values:
            work.tick()
            out.write(ion_dumps(value) + "\n")
            count += 1
    return count


async def json_to_ion(context: TaskContext) -> Mapping[str, Any]:
    """Convert JSON lines (`newLine: true`) or one JSON array or value to an Ion item file."""
    charset = common.charset(context)
    new_line = context.flag("newLine", True)
    return await common.convert(context, ".ion", lambda s, t, w: _json_to_ion(s, t, charset, new_line, w))


def _ion_to_json(
    source: Path, target: Path, charset: str, new_line: bool, writer: JsonWriter, work: Work
) -> int:
    count = 0
    held: str | None = None
    with source.open("rb") as handle, target.open("w", encoding=charset, errors="replace", newline="") as out:
        for _, value in common.ion_records(handle, work):
            text = writer.dumps(value)
            count += 1
            if new_line:
                out.write(text + "\n")
            elif count == 1:
                held = text  # a lone record is written bare, several as an array
            else:
                if held is not None:
                    out.write("[" + held)
                    held = None
                out.write("," + text)
        if held is not None:
            out.write(held)
        elif count > 1 and not new_line:
            out.write("]")
    return count


async def ion_to_json(context: TaskContext) -> Mapping[str, Any]:
    """Convert an Ion item file to JSON lines, or (`newLine: false`) to one JSON array."""
    if context.flag("shouldKeepAnnotations", False):
        raise TaskFailure(
            "`shouldKeepAnnotations: true` is not supported by this engine: Ion annotations are not kept "
            "when Ion files are read; remove the property to convert without them"
        )
    charset = common.charset(context)
    new_line = context.flag("newLine", True)
    writer = JsonWriter(common.zone(context), drop_nulls=True)
    suffix = ".jsonl" if new_line else ".json"
    return await common.convert(
        context, suffix, lambda s, t, w: _ion_to_json(s, t, charset, new_line, writer, w)
    )


_TOKENS: Final = {
    str: "VALUE_STRING",
    int: "VALUE_NUMBER_INT",
    float: "VALUE_NUMBER_FLOAT",
    type(None): "VALUE_NULL",
}


def _objects_in(value: Any) -> Iterator[dict[str, Any]]:
    """The objects Jackson's token walk meets at the top level of what follows a first object."""
    if isinstance(value, dict):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _objects_in(item)


def _json_to_jsonl(source: Path, target: Path, charset: str, work: Work) -> int:
    count = 0
    writer = JsonWriter()
    with source.open("rb") as raw, target.open("w", encoding=charset, errors="replace", newline="\n") as out:
        stream = JsonStream(_text_reader(raw, charset))
        first = stream.peek()
        if first == "[":
            stream.take()
            values: Iterator[Any] = stream.array_items()
        elif first == "{":

            def objects() -> Iterator[Any]:
                yield stream.value()
                while stream.peek():
                    yield from _objects_in(stream.value())

            values = objects()
        elif first:
            found = stream.value()
            token = (
                "VALUE_TRUE" if found is True else "VALUE_FALSE" if found is False else _TOKENS[type(found)]
            )
            raise TaskFailure(f"Invalid JSON format. Expected JSON array or object, but found: {token}")
        else:
            values = iter(())
        for value in values:
            work.tick()
            out.write(writer.dumps(value) + "\n")
            count += 1
    return count


async def json_to_jsonl(context: TaskContext) -> Mapping[str, Any]:
    """Split a JSON array (or a sequence of objects) into JSON lines, streaming."""
    charset = common.charset(context)
    return await common.convert(context, ".jsonl", lambda s, t, w: _json_to_jsonl(s, t, charset, w))


JSON_TO_ION_PROPERTIES: Final = frozenset({"from", "charset", "newLine"})
ION_TO_JSON_PROPERTIES: Final = frozenset(
    {"from", "charset", "newLine", "timeZoneId", "shouldKeepAnnotations"}
)
JSON_TO_JSONL_PROPERTIES: Final = frozenset({"from", "charset"})
