"""Amazon Ion text as Kestra reads and writes it: its internal storage files, ``toIon`` and ``fromIon()``.

Kestra goes through one mapper for all three (``JacksonMapper.ofIon()``: Jackson's Ion module over
ion-java, with Kestra's ``IonModule``, ``IonParser`` and ``IonGenerator``), so one reader and one writer
serve them. :func:`dumps` writes a value compactly on one line; :func:`loads` reads the first value of a
text (a line of an item file, the text given to ``fromIon``), :func:`loads_all` every top-level value.
The reader takes the whole text grammar (comments, long strings, symbols, s-expressions, blobs, clobs,
typed nulls, annotations, ``$ion_1_0``); Kestra never writes the binary encoding.

Read, as Kestra's ``IonParser`` gives them: struct -> dict (a repeated field keeps its last value), list
and s-expression -> list, string and symbol -> str, int, decimal -> Decimal, float, bool, null and typed
nulls -> None, blob and clob -> bytes; a timestamp at midnight UTC (or of day precision) -> date, another
UTC or unknown-offset one -> datetime in UTC (an Instant), one at another offset -> datetime at that
offset (a ZonedDateTime); a string annotated ``Instant``, ``LocalDateTime``, ``LocalDate``, ``LocalTime``,
``OffsetDateTime``, ``ZonedDateTime`` or ``OffsetTime`` (first annotation) -> that datetime, date or time.
Other annotations are dropped (Kestra hands such a value on as an ion-java ``IonValue``).

Written, as Kestra's mapper writes them: floats as ion-java prints them (``1.5e0``, ``1.0E10``), Decimal
as an Ion decimal (``2.``, ``1d3``, ``1d-9``), mapping keys as symbols quoted only when they must be,
tuples and sets as lists, bytes as a blob; a datetime in UTC as a millisecond timestamp (an Instant),
another aware one as ``ZonedDateTime::"..."``, a naive one as ``LocalDateTime::"..."``, a date as a day
timestamp (``2008-12-25``), a time as ``LocalTime::"..."`` or ``OffsetTime::"..."``.
"""

from __future__ import annotations

from .reading import IonError, iter_lines, loads, loads_all
from .writing import dumps, java_iso, record_writer

__all__ = ["IonError", "dumps", "iter_lines", "java_iso", "loads", "loads_all", "record_writer"]
