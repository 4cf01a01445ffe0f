"""Kestra's AvroConverter: an Ion record made an Avro datum of the task's schema, with the options
IonToAvro and IonToParquet share (text forms of booleans, nulls, dates and decimals, `strictSchema`,
`onBadLines`). A value is converted as the schema says, as Java's casts allow: a string parses into
any type, an int widens to a long or a double; what does not fit fails the field. With
`onBadLines` WARN or SKIP a field that fails is left null, and a record whose null the schema does
not allow is skipped, as Kestra's writer rejects it."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, Final

from tiercel.engine.plugin import TaskContext, TaskFailure

from . import common
from .avro_schema import Node
from .javatime import JavaParser, Parsed

BAD_LINES: Final = ("ERROR", "WARN", "SKIP")
TRUE_VALUES: Final = ("t", "true", "enabled", "1", "on", "yes")
FALSE_VALUES: Final = ("f", "false", "disabled", "0", "off", "no", "")
NULL_VALUES: Final = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "1.#IND", "1.#QNAN", "NA",
                      "n/a", "nan", "null")  # fmt: skip
_POSITIONAL: Final = re.compile(r"col\d+")
_RANGES: Final = {"int": 2**31, "long": 2**63}
_FLOAT_TEXT: Final = re.compile(r"\s*[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[fFdD]?\s*")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class CellError(ValueError):
    """A value that does not fit its type."""


class BadRecord(Exception):
    """A record Kestra's writer would reject: a field left null that the schema does not allow."""


def _words(context: TaskContext, name: str, default: tuple[str, ...]) -> frozenset[str]:
    value = context.prop(name)
    if value is None:
        return frozenset(word.lower() for word in default)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, list):
        raise TaskFailure(f"`{name}` must be a list of strings")
    return frozenset(str(word).lower() for word in value)


@dataclass(frozen=True)
class Options:
    true_values: frozenset[str]
    false_values: frozenset[str]
    null_values: frozenset[str]
    date: JavaParser
    time: JavaParser
    datetime: JavaParser
    decimal_separator: str
    strict: bool
    infer_all: bool
    zone: tzinfo
    on_bad_lines: str

    @classmethod
    def of(cls, context: TaskContext) -> Options:
        return cls(
            true_values=_words(context, "trueValues", TRUE_VALUES),
            false_values=_words(context, "falseValues", FALSE_VALUES),
            null_values=_words(context, "nullValues", NULL_VALUES),
            date=JavaParser(str(context.prop("dateFormat", "yyyy-MM-dd[XXX]")), "dateFormat"),
            time=JavaParser(str(context.prop("timeFormat", "HH:mm[:ss][.SSSSSS][XXX]")), "timeFormat"),
            datetime=JavaParser(
                str(context.prop("datetimeFormat", "yyyy-MM-dd'T'HH:mm[:ss][.SSSSSS][XXX]")), "datetimeFormat"
            ),
            decimal_separator=common.character(context, "decimalSeparator", "."),
            strict=context.flag("strictSchema", False),
            infer_all=context.flag("inferAllFields", False),
            zone=common.zone(context),
            on_bad_lines=common.choice(context, "onBadLines", BAD_LINES, "ERROR") or "ERROR",
        )


def rows_to_scan(context: TaskContext) -> int | None:
    """How many rows schema inference reads (None: all, with `inferAllFields`)."""
    rows = common.integer(context, "numberOfRowsToScan", 100, 1)
    return None if context.flag("inferAllFields", False) else rows


def _short(value: Any) -> str:
    text = common.java_string(value)
    return text if len(text) <= 250 else text[:250] + " ..."


class Converter:
    """Records of one schema made Avro datums (fastavro's Python forms of the logical types)."""

    def __init__(self, options: Options, warn: Callable[[str], None]) -> None:
        self.options = options
        self.warn = warn
        self._handlers: dict[str, Callable[[Node, Any], Any]] = {
            "null": self._null, "boolean": self._boolean, "int": self._integer, "long": self._integer,
            "float": self._float, "double": self._float, "string": self._string, "bytes": self._bytes,
            "enum": self._enum, "fixed": self._fixed, "array": self._array, "map": self._map,
            "union": self._union, "record": self._nested,
        }  # fmt: skip

    # -- records ----------------------------------------------------------------------------------------

    def row(self, root: Node, row: Any) -> dict[str, Any]:
        """The datum of one Ion record: a struct by field name (or alias), a list by position."""
        if isinstance(row, list):
            if len(root.fields) == 1 and root.fields[0][2].type == "array":
                return self.record(root, {root.fields[0][0]: row}, "")
            return self._positional(root, row)
        if isinstance(row, Mapping):
            if row and all(_POSITIONAL.fullmatch(str(key)) for key in row):
                if self.options.strict and len(row) > len(root.fields):
                    raise CellError(self._too_many(root, len(row), list(row)))
                return self._positional(root, [row.get(f"col{index}") for index in range(len(root.fields))])
            return self.record(root, row, "")
        raise CellError(f"Unable to convert row of type: {type(row).__name__}")

    def _positional(self, root: Node, values: list[Any]) -> dict[str, Any]:
        if self.options.strict and len(values) > len(root.fields):
            self._strict(root, len(values), values)
        padded = values + [None] * (len(root.fields) - len(values))
        return self.record(
            root, {name: value for (name, _, _), value in zip(root.fields, padded, strict=False)}, ""
        )

    def _too_many(self, root: Node, count: int, values: list[Any]) -> str:
        return (
            f"Data contains more fields than schema: expected {len(root.fields)}, got {count} "
            f"(values [{_short(values)}])"
        )

    def _strict(self, node: Node, count: int, values: list[Any]) -> None:
        message = self._too_many(node, count, values)
        if self.options.on_bad_lines == "ERROR":
            raise CellError(message)
        if self.options.on_bad_lines == "WARN":
            self.warn(message)

    def record(self, node: Node, data: Mapping[str, Any], parent: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, aliases, schema in node.fields:
            path = f"{parent}.{name}" if parent else name
            value = data.get(name)
            if value is None:
                value = next((data[alias] for alias in aliases if data.get(alias) is not None), None)
            try:
                out[name] = self.convert(schema, value, path)
            except CellError as error:
                message = f"field `{path}`: {error}"
                if self.options.on_bad_lines == "ERROR":
                    raise CellError(message) from None
                if self.options.on_bad_lines == "WARN":
                    self.warn(f"{message}; the field is left null")
                if not schema.nullable:
                    raise BadRecord(f"{message}, and the field cannot be null") from None
                out[name] = None
        if self.options.strict and len(data) > len(node.fields):
            self._strict(node, len(data), list(data.values()))
        return out

    # -- values -------------------------------------------------------------------------------------------

    def convert(self, node: Node, value: Any, path: str) -> Any:
        options = self.options
        if options.infer_all and isinstance(value, str):
            lowered = value.lower()
            if lowered in options.null_values:
                return None
            if _accepts_boolean(node) and lowered in options.true_values | options.false_values:
                return lowered in options.true_values
        try:
            if node.logical in _LOGICAL:
                return _LOGICAL[node.logical](self, node, value)
            return self._handlers[node.type](node, value)
        except CellError:
            raise
        except (ValueError, TypeError, ArithmeticError, OverflowError, KeyError) as error:
            raise CellError(f"cannot convert `{_short(value)}` to {node.describe()}: {error}") from None

    def _fail(self, node: Node, value: Any) -> CellError:
        return CellError(f"cannot convert {type(value).__name__} `{_short(value)}` to {node.describe()}")

    def _null(self, node: Node, value: Any) -> None:
        if value is None or (isinstance(value, str) and value.lower() in self.options.null_values):
            return None
        raise self._fail(node, value)

    def _boolean(self, node: Node, value: Any) -> bool:
        if isinstance(value, str) and value.lower() in self.options.true_values:
            return True
        if isinstance(value, str) and value.lower() in self.options.false_values:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return value == 1
        raise self._fail(node, value)

    def _integer(self, node: Node, value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value):
            number = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            raise self._fail(node, value)
        limit = _RANGES[node.type]
        if not -limit <= number < limit:
            raise CellError(f"`{number}` is out of the range of an Avro {node.type}")
        return number

    def _float(self, node: Node, value: Any) -> float:
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(self._point(value)):
            return float(self._point(value).strip().rstrip("fFdD"))
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return float(value)
        raise self._fail(node, value)

    def _point(self, text: str) -> str:
        separator = self.options.decimal_separator
        return text if separator == "." else text.replace(separator, ".", 1)

    def _string(self, node: Node, value: Any) -> str:
        return common.java_string(value)

    def _bytes(self, node: Node, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        return common.java_string(value).encode("utf-8")

    def _enum(self, node: Node, value: Any) -> str:
        text = common.java_string(value)
        if text not in node.symbols:
            raise CellError(f"Invalid enum value, found {text}, expected [{', '.join(node.symbols)}]")
        return text

    def _fixed(self, node: Node, value: Any) -> bytes:
        data = self._bytes(node, value)
        if len(data) != node.size:
            raise CellError(f"Invalid length for fixed size, found {len(data)}, expected {node.size}")
        return data

    def _array(self, node: Node, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise self._fail(node, value)
        assert node.items is not None
        return [self.convert(node.items, item, "") for item in value]

    def _map(self, node: Node, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self._fail(node, value)
        assert node.items is not None
        return {common.java_string(key): self.convert(node.items, item, "") for key, item in value.items()}

    def _union(self, node: Node, value: Any) -> Any:
        for branch in node.branches:
            try:
                return self.convert(branch, value, "")
            except (CellError, BadRecord):
                continue
        raise CellError(f"`{_short(value)}` fits no type of {node.describe()}")

    def _nested(self, node: Node, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self._fail(node, value)
        return self.record(node, value, node.name.rsplit(".", 1)[-1])

    # -- logical types ------------------------------------------------------------------------------------

    def _decimal(self, node: Node, value: Any) -> Decimal:
        if isinstance(value, str):
            number = Decimal(self._point(value).strip())
        elif isinstance(value, float):
            number = Context(prec=node.precision).create_decimal_from_float(value)
        elif isinstance(value, int | Decimal) and not isinstance(value, bool):
            number = Decimal(value)
        else:
            raise self._fail(node, value)
        if not number.is_finite():
            raise CellError(f"`{value}` is not a finite decimal")
        scaled = number.quantize(Decimal(1).scaleb(-node.scale), rounding=ROUND_HALF_EVEN)
        if len(scaled.as_tuple().digits) > node.precision and scaled != 0:
            raise CellError(f"`{value}` has more than the {node.precision} digits of {node.describe()}")
        return scaled

    def _uuid(self, node: Node, value: Any) -> str:
        return str(uuid.UUID(str(value)))

    def _date(self, node: Node, value: Any) -> date:
        if isinstance(value, str):
            parsed = self.options.date.parse(value)
            if parsed.day is None:
                raise CellError(f"Text '{value}' has no date in the pattern `{self.options.date.pattern}`")
            return parsed.day
        if isinstance(value, datetime):
            return (value.astimezone(self.options.zone) if value.tzinfo is UTC else value).date()
        if isinstance(value, date):
            return value
        raise self._fail(node, value)

    def _time(self, node: Node, value: Any) -> time:
        if isinstance(value, str):
            parsed = self.options.time.parse(value)
            if parsed.clock is None:
                raise CellError(f"Text '{value}' has no time in the pattern `{self.options.time.pattern}`")
            return parsed.clock
        if isinstance(value, time):
            return value.replace(tzinfo=None)
        raise self._fail(node, value)

    def instant(self, node: Node, value: Any) -> datetime:
        """A timestamp's instant (aware, UTC): epoch numbers in the type's unit, texts, date-times."""
        micros = node.logical is not None and node.logical.endswith("micros")
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return _EPOCH + timedelta(microseconds=value if micros else value * 1000)
        if isinstance(value, str):
            return self._parse_instant(value)
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=self.options.zone)).astimezone(UTC)
        if isinstance(value, date):  # an Ion timestamp at midnight UTC reads as a date
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        raise self._fail(node, value)

    def _parse_instant(self, text: str) -> datetime:
        parsed: Parsed = self.options.datetime.parse(text)
        if parsed.day is None or parsed.clock is None:
            raise CellError(f"Text '{text}' has no date and time in `{self.options.datetime.pattern}`")
        local = datetime.combine(parsed.day, parsed.clock)
        zone = timezone(parsed.offset) if parsed.offset is not None else self.options.zone
        return local.replace(tzinfo=zone).astimezone(UTC)

    def _timestamp(self, node: Node, value: Any) -> datetime:
        return self.instant(node, value)

    def _local_timestamp(self, node: Node, value: Any) -> datetime:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value
        return self.instant(node, value).astimezone(self.options.zone).replace(tzinfo=None)


def _accepts_boolean(node: Node) -> bool:
    return node.type == "boolean" or any(branch.type == "boolean" for branch in node.branches)


_LOGICAL: Final[dict[str, Callable[[Converter, Node, Any], Any]]] = {
    "decimal": Converter._decimal,
    "uuid": Converter._uuid,
    "date": Converter._date,
    "time-millis": Converter._time,
    "time-micros": Converter._time,
    "timestamp-millis": Converter._timestamp,
    "timestamp-micros": Converter._timestamp,
    "local-timestamp-millis": Converter._local_timestamp,
    "local-timestamp-micros": Converter._local_timestamp,
}
