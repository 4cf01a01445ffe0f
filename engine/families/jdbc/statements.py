"""SQL text as the jdbc tasks take it apart: statements split at their semicolons, and `:name`
parameters turned into the driver's placeholders.

Both scan the text once, stepping over what a semicolon or a colon may appear in without ending
anything: quoted strings and identifiers ('...', "...", `...`, [...]), comments (-- and /* */),
PostgreSQL's dollar quotes ($$...$$, $tag$...$tag$), and for the splitter the bodies of BEGIN ... END
blocks (a SQLite trigger, a procedure), whose inner statements belong to their block.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

_DOLLAR_TAG: Final = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_PARAMETER: Final = re.compile(r":([A-Za-z0-9_]+)")
_CLOSERS: Final = {"'": "'", '"': '"', "`": "`", "[": "]"}
# BEGIN opens a block unless it starts a transaction (BEGIN; BEGIN TRANSACTION, BEGIN IMMEDIATE ...).
_TRANSACTION_WORDS: Final = frozenset(
    {"TRANSACTION", "WORK", "DEFERRED", "IMMEDIATE", "EXCLUSIVE", "ISOLATION"}
)


def _skip(sql: str, at: int) -> int | None:
    """Where a quoted part, a comment or a dollar quote starting at `at` ends (None: none starts)."""
    char = sql[at]
    if char in _CLOSERS:
        closer = _CLOSERS[char]
        index = at + 1
        while True:
            index = sql.find(closer, index)
            if index < 0:
                return len(sql)
            if index + 1 < len(sql) and sql[index + 1] == closer:  # a doubled quote stays inside
                index += 2
                continue
            return index + 1
    if sql.startswith("--", at):
        end = sql.find("\n", at)
        return len(sql) if end < 0 else end + 1
    if sql.startswith("/*", at):
        end = sql.find("*/", at + 2)
        return len(sql) if end < 0 else end + 2
    if char == "$":
        tag = _DOLLAR_TAG.match(sql, at)
        if tag is not None and (at == 0 or not (sql[at - 1].isalnum() or sql[at - 1] == "_")):
            end = sql.find(tag.group(), tag.end())
            return len(sql) if end < 0 else end + len(tag.group())
    return None


def _pieces(sql: str) -> Iterator[tuple[str, bool]]:
    """The text in order as (piece, is_code): code, and the quoted or commented parts between it."""
    start = index = 0
    while index < len(sql):
        end = _skip(sql, index)
        if end is None:
            index += 1
            continue
        if index > start:
            yield sql[start:index], True
        yield sql[index:end], False
        start = index = end
    if start < len(sql):
        yield sql[start:], True


def _is_blank(statement: str) -> bool:
    return all(not piece.strip() or (not code and piece.lstrip().startswith(("--", "/*")))
               for piece, code in _pieces(statement))  # fmt: skip


def _starts_transaction(rest: str) -> bool:
    """Whether what follows a BEGIN makes it a transaction's start rather than a block's."""
    rest = rest.lstrip()
    following = _WORD.match(rest)
    return rest.startswith(";") or (following is not None and following.group().upper() in _TRANSACTION_WORDS)


def split_statements(sql: str) -> list[str]:
    """The statements of a SQL text, without their semicolons; blank and comment-only ones dropped."""
    statements: list[str] = []
    current: list[str] = []
    depth = 0
    for piece, code in _pieces(sql):
        if not code:
            current.append(piece)
            continue
        start = 0
        for match in re.finditer(r";|[A-Za-z_][A-Za-z0-9_$]*", piece):
            token = match.group()
            if token == ";":
                if depth == 0:
                    current.append(piece[start : match.start()])
                    statements.append("".join(current))
                    current, start = [], match.end()
                continue
            word = token.upper()
            if word == "CASE" or (word == "BEGIN" and not _starts_transaction(piece[match.end() :])):
                depth += 1
            elif word == "END" and depth > 0:
                depth -= 1
        current.append(piece[start:])
    statements.append("".join(current))
    return [statement.strip() for statement in statements if not _is_blank(statement)]


def bind_parameters(sql: str, parameters: Mapping[str, Any], placeholder: str) -> tuple[str, list[Any]]:
    """`:name` parameters outside quotes and comments replaced by the driver's placeholder (`?` or
    `%s`), with the values in their order (a name not given binds null, as Kestra binds it). `::` (a
    PostgreSQL cast) is left alone; with `%s` placeholders a literal `%` in the code is doubled."""
    parts: list[str] = []
    values: list[Any] = []
    for piece, code in _pieces(sql):
        if not code:
            parts.append(piece.replace("%", "%%") if placeholder == "%s" else piece)
            continue
        if placeholder == "%s":
            piece = piece.replace("%", "%%")
        position = 0
        for match in _PARAMETER.finditer(piece):
            before = piece[match.start() - 1 : match.start()]
            if before == ":" or before.isalnum() or piece[match.end() : match.end() + 1] == ":":
                continue  # a `::` cast, or a time of day written out
            parts.append(piece[position : match.start()])
            parts.append(placeholder)
            values.append(parameters.get(match.group(1)))
            position = match.end()
        parts.append(piece[position:])
    return "".join(parts), values
