"""SQL text as the jdbc tasks take it apart: statements split at their semicolons, and `:name`
parameters turned into the driver's placeholders.

Both scan the text once, stepping over what a semicolon or a colon may appear in without ending
anything: quoted strings and identifiers ('...', "...", `...`, and SQLite's [...]: elsewhere brackets
are arrays and lists), comments (-- and /* */), PostgreSQL's dollar quotes ($$...$$, $tag$...$tag$),
and for the splitter the bodies of BEGIN ... END and CASE ... END blocks (a SQLite trigger, a MySQL
procedure), whose inner statements belong to their block; END IF, END LOOP, END WHILE, END REPEAT
and END FOR close the statements of a procedure, not a block.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

_DOLLAR_TAG: Final = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_PARAMETER: Final = re.compile(r":([A-Za-z0-9_]+)")
_CLOSERS: Final = {"'": "'", '"': '"', "`": "`"}
_BRACKETS: Final = {**_CLOSERS, "[": "]"}
# BEGIN opens a block unless it starts a transaction (BEGIN; BEGIN TRANSACTION, BEGIN IMMEDIATE ...).
_TRANSACTION_WORDS: Final = frozenset(
    ["TRANSACTION", "WORK", "DEFERRED", "IMMEDIATE", "EXCLUSIVE", "ISOLATION", "READ"]
)
# END followed by one of these ends a procedure's statement, not a BEGIN or CASE block.
_STATEMENT_ENDS: Final = frozenset(["IF", "LOOP", "WHILE", "REPEAT", "FOR"])


def _skip(sql: str, at: int, closers: dict[str, str]) -> int | None:
    """Where a quoted part, a comment or a dollar quote starting at `at` ends (None: none starts)."""
    char = sql[at]
    if char in closers:
        closer = closers[char]
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


def _pieces(sql: str, brackets: bool = False) -> Iterator[tuple[str, bool]]:
    """The text in order as (piece, is_code): code, and the quoted or commented parts between it;
    `brackets`: [...] quotes an identifier (SQLite)."""
    closers = _BRACKETS if brackets else _CLOSERS
    start = index = 0
    while index < len(sql):
        end = _skip(sql, index, closers)
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


def code_only(statement: str) -> str:
    """The statement without its comments (quoted parts kept)."""
    return "".join(piece for piece, code in _pieces(statement) if code or not piece.startswith(("--", "/*")))


def _starts_transaction(rest: str) -> bool:
    """Whether what follows a BEGIN makes it a transaction's start rather than a block's."""
    rest = rest.lstrip()
    following = _WORD.match(rest)
    return rest.startswith(";") or (following is not None and following.group().upper() in _TRANSACTION_WORDS)


def _next_word(rest: str) -> str:
    following = _WORD.match(rest.lstrip())
    return following.group().upper() if following else ""


def split_statements(sql: str, brackets: bool = False) -> list[str]:
    """The statements of a SQL text, without their semicolons; blank and comment-only ones dropped."""
    statements: list[str] = []
    current: list[str] = []
    depth = 0
    closing_case = False  # the CASE of an END CASE: it closes, it does not open
    for piece, code in _pieces(sql, brackets):
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
            word, rest = token.upper(), piece[match.end() :]
            if word == "CASE" and closing_case:
                closing_case = False
            elif word == "CASE" or (word == "BEGIN" and not _starts_transaction(rest)):
                depth += 1
            elif word == "END" and depth > 0 and _next_word(rest) not in _STATEMENT_ENDS:
                depth -= 1
                closing_case = _next_word(rest) == "CASE"
        current.append(piece[start:])
    statements.append("".join(current))
    return [statement.strip() for statement in statements if not _is_blank(statement)]


def bind_parameters(
    sql: str, parameters: Mapping[str, Any], placeholder: str, brackets: bool = False
) -> tuple[str, list[Any]]:
    """`:name` parameters outside quotes and comments replaced by the driver's placeholder (`?` or
    `%s`), with the values in their order (a name not given binds null, as Kestra binds it). A `::`
    cast is left alone (`:a::int` binds `a`); with `%s` placeholders a literal `%` is doubled."""
    parts: list[str] = []
    values: list[Any] = []
    for piece, code in _pieces(sql, brackets):
        if not code:
            parts.append(piece.replace("%", "%%") if placeholder == "%s" else piece)
            continue
        if placeholder == "%s":
            piece = piece.replace("%", "%%")
        position = 0
        for match in _PARAMETER.finditer(piece):
            before, after = piece[match.start() - 1 : match.start()], piece[match.end() : match.end() + 2]
            if before == ":" or before.isalnum() or (after[:1] == ":" and after != "::"):
                continue  # the name of a `::` cast, or a time of day written out
            parts.append(piece[position : match.start()])
            parts.append(placeholder)
            values.append(parameters.get(match.group(1)))
            position = match.end()
        parts.append(piece[position:])
    return "".join(parts), values
