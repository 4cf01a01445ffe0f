"""`xml.IonToXml`: an Ion item file as one XML document, as Kestra's Jackson XmlMapper writes the list
of its records: an XML declaration, the `rootName` element (`items`), each record an `<item>`, a
mapping's fields as child elements, a list under a field as that field repeated inside a wrapper of
the same name, null as an empty element, dates and times in Java's ISO form, indented by two spaces.

Records are written as they are read (Kestra reads them all first), so a big file takes no more
memory than one record. A field name that cannot be an XML name has its other characters replaced
by `_` (Jackson would write a document no parser reads); characters XML 1.0 cannot hold become U+FFFD.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final

from tiercel.engine.plugin import TaskContext, TaskFailure, java_iso

from . import common
from .common import Work

_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NAME_START: Final = re.compile(r"[A-Za-z_]")
_NAME_OTHERS: Final = re.compile(r"[^A-Za-z0-9_.\-]")


def _escape(text: str) -> str:
    """Text fit for an element (xml.sax.saxutils' escape would load urllib at start-up)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _name(key: Any) -> str:
    text = _NAME_OTHERS.sub("_", str(key))
    return text if text and _NAME_START.match(text) else f"_{text}"


def _text(value: Any, zone: tzinfo) -> str:
    """A scalar as Jackson writes it inside an element."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return common.java_double(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        moment = value.astimezone(zone) if value.tzinfo is not None and zone is not None else value
        return java_iso(moment)
    if isinstance(value, date | time):
        return value.isoformat() if isinstance(value, date) else java_iso(value)
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    return str(value)


class _Writer:
    def __init__(self, out: IO[str], zone: tzinfo) -> None:
        self.out = out
        self.zone = zone

    def element(self, name: str, value: Any, depth: int) -> None:
        pad = "  " * depth
        if value is None:
            self.out.write(f"{pad}<{name}/>\n")
        elif isinstance(value, Mapping):
            if not value:
                self.out.write(f"{pad}<{name}/>\n")
                return
            self.out.write(f"{pad}<{name}>\n")
            for key, item in value.items():
                self.field(_name(key), item, depth + 1)
            self.out.write(f"{pad}</{name}>\n")
        elif isinstance(value, list):
            # a list where an element is due (a list in a list) is wrapped in that element
            self.out.write(f"{pad}<{name}>\n")
            for item in value:
                self.element("item", item, depth + 1)
            self.out.write(f"{pad}</{name}>\n")
        else:
            text = _escape(_NOT_XML.sub("\ufffd", _text(value, self.zone)))
            self.out.write(f"{pad}<{name}>{text}</{name}>\n")

    def field(self, name: str, value: Any, depth: int) -> None:
        """A mapping's field; a list in it is the field repeated, wrapped in an element of its name."""
        if not isinstance(value, list):
            self.element(name, value, depth)
            return
        pad = "  " * depth
        if not value:
            self.out.write(f"{pad}<{name}/>\n")
            return
        self.out.write(f"{pad}<{name}>\n")
        for item in value:
            self.element(name, item, depth + 1)
        self.out.write(f"{pad}</{name}>\n")


def _ion_to_xml(source: Path, target: Path, encoding: str, root: str, zone: tzinfo, work: Work) -> int:
    count = 0
    with source.open("rb") as handle, target.open("w", encoding=encoding, errors="replace") as out:
        out.write(f"<?xml version='1.0' encoding='{encoding.upper()}'?>\n")
        writer = _Writer(out, zone)
        for _, record in common.ion_records(handle, work):
            if count == 0:
                out.write(f"<{root}>\n")
            writer.element("item", record, 1)
            count += 1
        out.write(f"</{root}>\n" if count else f"<{root}/>\n")
    return count


async def ion_to_xml(context: TaskContext) -> Mapping[str, Any]:
    """Convert an Ion item file to one XML document of its records."""
    encoding = common.charset(context)
    root = str(context.prop("rootName", "items") or "items")
    if _name(root) != root:
        raise TaskFailure(f"`rootName` {root}: not an XML element name")
    zone = common.zone(context)
    return await common.convert(
        context, ".xml", lambda source, target, work: _ion_to_xml(source, target, encoding, root, zone, work)
    )


ION_TO_XML_PROPERTIES: Final = frozenset({"from", "charset", "rootName", "timeZoneId"})
