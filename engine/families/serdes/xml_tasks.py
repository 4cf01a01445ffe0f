"""XmlToIon (`io.kestra.plugin.serdes.xml`), with the stdlib's expat parser fed chunk by chunk.

Elements map to values as org.json's XML.toJSONObject maps them, as Kestra does: attributes and child
elements are fields, text is trimmed and typed (`true`, `12`, `4.5` as boolean, int, decimal), text
beside fields goes in `content`, a repeated element is a list, an empty one "". Fields come in the
order of Java's HashMap, which Kestra's records keep. Without `query` the document is one record (the
items of a root holding a single list, as Kestra unwraps them); with `query` (`/catalog/book`) each
matching element is a record, streamed. A document type declaration is refused: no entity is ever
declared, expanded or read from a file."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NoReturn
from xml.parsers import expat

from tiercel.engine.plugin import TaskContext, TaskFailure, ion_dumps

from . import common
from .common import Work

_CHUNK: Final = 1 << 16
_INTEGER: Final = re.compile(r"-?\d+")
_DECIMAL: Final = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_JAVA_DOUBLE: Final = re.compile(r"[+-]?(NaN|Infinity|(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[fFdD]?)")
_NAME: Final = re.compile(r"[^\s/\[\]@*()=]+")


class _Refused(Exception):
    pass


def _java_hash(text: str) -> int:
    value = 0
    for unit in text.encode("utf-16-be").hex(" ", 2).split():
        value = (31 * value + int(unit, 16)) & 0xFFFFFFFF
    return value


def hashmap_order(keys: list[str]) -> list[str]:
    """The keys in the order a java.util.HashMap filled in this order iterates them."""
    capacity = 16
    while len(keys) > capacity * 3 // 4:
        capacity *= 2

    def bucket(key: str) -> int:
        code = _java_hash(key)
        return (code ^ (code >> 16)) & (capacity - 1)

    return sorted(keys, key=bucket)  # stable: a bucket keeps its insertion order


def _typed(text: str) -> Any:
    """org.json's XML.stringToValue."""
    low = text.lower()
    if text == "":
        return text
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    if not (text[0].isdigit() or text[0] == "-"):
        return text
    if "." in text or "e" in text or "E" in text or text == "-0":
        if _DECIMAL.fullmatch(text):
            number = Decimal(text)
            return -0.0 if text[0] == "-" and number == 0 else number
        if _JAVA_DOUBLE.fullmatch(text.strip()):
            with_no_suffix = text.strip().rstrip("fFdD")
            double = float(with_no_suffix)
            return double if double == double and abs(double) != float("inf") else text
        return text
    if _INTEGER.fullmatch(text) and not re.match(r"-?0\d", text):
        return int(text)
    return text


class _Object(dict[str, Any]):
    """org.json's JSONObject, insertion ordered until written."""

    def accumulate(self, key: str, value: Any) -> None:
        if key not in self:
            self[key] = _Array([value]) if isinstance(value, _Array) else value
        elif isinstance(self[key], _Array):
            self[key].append(value)
        else:
            self[key] = _Array([self[key], value])

    def append(self, key: str, value: Any) -> None:
        if key not in self:
            self[key] = _Array([value])
        elif isinstance(self[key], _Array):
            self[key].append(value)
        else:
            raise TaskFailure(f"`parserConfiguration.forceList`: `{key}` is both a value and a list")


class _Array(list[Any]):
    """org.json's JSONArray."""


def _plain(value: Any) -> Any:
    """JSONObject.toMap: maps in HashMap order, arrays as lists."""
    if isinstance(value, _Object):
        return {key: _plain(value[key]) for key in hashmap_order(list(value))}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class _Builder:
    """Expat's events made org.json values, for the whole document or each element `query` matches."""

    def __init__(self, force_list: set[str], path: list[str] | None, write: Any) -> None:
        self.force_list = force_list
        self.path = path  # the query's parents then the element, None for the whole document
        self.write = write
        self.stack: list[tuple[str, _Object]] = []
        self.root = _Object()
        self.depth = 0  # elements open in the document
        self.matched = 0  # how many of the query's parents are open (-1 once the parent is done)
        self.text: list[str] = []
        self.cdata: list[str] | None = None
        self.seen_root = False

    def _flush(self) -> None:
        if self.stack and self.text:
            text = "".join(self.text).strip()
            if text:
                self.stack[-1][1].accumulate("content", _typed(text))
        self.text = []

    def _name(self, name: str) -> str:
        return name.rsplit(":", 1)[-1] if self.path is not None else name

    def start(self, name: str, attributes: list[str]) -> None:
        self.seen_root = True
        self.depth += 1
        self._flush()
        if self.path is not None and not self.stack:
            parents = len(self.path) - 1
            local = self._name(name)
            if self.matched == self.depth - 1 and self.matched < parents and local == self.path[self.matched]:
                self.matched += 1
                return
            if not (self.matched == parents == self.depth - 1 and local == self.path[-1]):
                return
        fields = _Object()
        for index in range(0, len(attributes), 2):
            key = attributes[index]
            if self.path is not None and (key == "xmlns" or key.startswith("xmlns:")):
                continue
            fields.accumulate(self._name(key), _typed(attributes[index + 1]))
        self.stack.append((self._name(name), fields))

    def end(self, name: str) -> None:
        self._flush()
        self.depth -= 1
        if not self.stack:
            if self.path is not None and self.matched > self.depth:
                self.matched = -1  # the parent ended: Kestra reads no further
            return
        tag, fields = self.stack.pop()
        if not fields:
            value: Any = _Array() if tag in self.force_list else ""
        elif len(fields) == 1 and "content" in fields:
            value = fields["content"]
        else:
            value = fields
        if self.stack or self.path is None:
            context = self.stack[-1][1] if self.stack else self.root
            if tag in self.force_list:
                if isinstance(value, _Array) and not value:
                    context[tag] = value
                else:
                    context.append(tag, value)
            else:
                context.accumulate(tag, value)
        elif tag in self.force_list:
            for item in value if isinstance(value, _Array) else [value]:
                self.write(_plain(item))
        else:
            self.write(_plain(value))

    def characters(self, data: str) -> None:
        if self.cdata is not None:
            self.cdata.append(data)
        elif self.stack:
            self.text.append(data)

    def start_cdata(self) -> None:
        self._flush()
        self.cdata = []

    def end_cdata(self) -> None:
        text = "".join(self.cdata or [])
        self.cdata = None
        if text and self.stack:
            self.stack[-1][1].accumulate("content", text)

    def split(self, *_: Any) -> None:
        """A comment or processing instruction ends a text (in a whole document, as org.json reads)."""
        if self.path is None:
            self._flush()


def _refuse(*_: Any) -> NoReturn:
    raise _Refused


def _query(context: TaskContext) -> list[str] | None:
    given = context.prop("query")
    if given is None:
        return None
    segments = str(given).strip().removeprefix("/").split("/")
    if not all(_NAME.fullmatch(segment) for segment in segments):
        raise TaskFailure(f"`query` must be a path of element names such as /catalog/book, not `{given}`")
    return segments


def _force_list(context: TaskContext) -> set[str]:
    config = context.prop("parserConfiguration") or {}
    if not isinstance(config, Mapping):
        raise TaskFailure("`parserConfiguration` must be a map (forceList: [tags])")
    tags = context.render(config.get("forceList") or [])
    if not isinstance(tags, list):
        raise TaskFailure("`parserConfiguration.forceList` must be a list of tag names")
    return {str(tag) for tag in tags}


def _unwrap(document: _Object) -> Any:
    """Kestra's unwrapRootArray: {root: [...]} or {root: {child: [...]}} gives the list's items."""
    if len(document) != 1:
        return document
    inner = next(iter(document.values()))
    if isinstance(inner, _Array):
        return inner
    if isinstance(inner, _Object) and len(inner) == 1 and isinstance(next(iter(inner.values())), _Array):
        return next(iter(inner.values()))
    return document


def _xml_to_ion(
    source: Path, target: Path, encoding: str, path: list[str] | None, force: set[str], work: Work
) -> int:
    count = 0
    with target.open("w", encoding="utf-8", newline="\n") as out:

        def write(value: Any) -> None:
            nonlocal count
            work.tick()
            out.write(ion_dumps(value) + "\n")
            count += 1

        builder = _Builder(force, path, write)
        parser = expat.ParserCreate(encoding="utf-8")
        parser.StartDoctypeDeclHandler = _refuse
        parser.EntityDeclHandler = _refuse
        parser.ExternalEntityRefHandler = _refuse
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.ordered_attributes = True
        parser.StartElementHandler = builder.start
        parser.EndElementHandler = builder.end
        parser.CharacterDataHandler = builder.characters
        parser.StartCdataSectionHandler = builder.start_cdata
        parser.EndCdataSectionHandler = builder.end_cdata
        parser.CommentHandler = builder.split
        parser.ProcessingInstructionHandler = builder.split
        decoder = codecs.getincrementaldecoder(encoding)()
        blank = True
        try:
            with source.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    text = decoder.decode(chunk)
                    blank = blank and not text.strip()
                    parser.Parse(text.encode("utf-8"), False)
                    if path is not None and builder.matched == -1:
                        break
                else:
                    tail = decoder.decode(b"", True)
                    blank = blank and not tail.strip()
                    if not blank:
                        parser.Parse(tail.encode("utf-8"), True)
        except _Refused:
            raise TaskFailure(
                f"`from` declares a document type or entities (line {parser.CurrentLineNumber}): refused, "
                "as entity expansion could exhaust memory or read local files"
            ) from None
        except expat.ExpatError as error:
            raise TaskFailure(
                f"`from` is not well-formed XML at line {error.lineno}, column {error.offset + 1}: "
                f"{expat.errors.messages[error.code]}"
            ) from None
        if path is None:
            result = _unwrap(builder.root)
            for item in result if isinstance(result, _Array) else [result]:
                write(_plain(item))
    return count


async def xml_to_ion(context: TaskContext) -> Mapping[str, Any]:
    """Convert an XML file to an Ion item file: the document, or each element `query` selects."""
    encoding = common.charset(context)
    path = _query(context)
    force = _force_list(context)
    return await common.convert(
        context, ".ion", lambda source, target, work: _xml_to_ion(source, target, encoding, path, force, work)
    )


XML_TO_ION_PROPERTIES: Final = frozenset({"from", "charset", "query", "parserConfiguration"})
