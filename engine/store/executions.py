"""Executions and their task runs: saved together with their log lines, read back whole or listed
a page at a time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from ..model import Execution, ExecutionSummary, LogEntry, TaskRun, iso, parse_iso
from .codec import dumps, loads
from .errors import StoreError
from .logs import log_params
from .queries import Queries
from .table import Table
from .triggers import TriggerFire, fire_record_write

_SQL = Queries("executions")
_LOGS_SQL = Queries("logs")


def _execution_params(execution: Execution) -> tuple[Any, ...]:
    data = execution.to_json(task_runs=False)
    state = execution.state
    trigger_type = execution.trigger.get("type") if execution.trigger else None
    return (
        execution.id,
        execution.namespace,
        execution.flow_id,
        execution.flow_revision,
        state.current.value,
        iso(state.histories[0].date) if state.histories else None,
        iso(state.end_date) if state.histories else None,
        execution.parent_id,
        str(trigger_type) if trigger_type is not None else None,
        dumps(execution.labels_map()),
        dumps(data),
    )


def task_run_params(execution_id: str, run: TaskRun) -> tuple[Any, ...]:
    return (
        run.id,
        execution_id,
        run.task_id,
        run.parent_task_run_id,
        run.value,
        run.state.current.value,
        dumps(run.to_json()),
    )


def _execution_summary(row: Sequence[Any]) -> ExecutionSummary:
    return ExecutionSummary(
        id=row[1],
        namespace=row[2],
        flow_id=row[3],
        flow_revision=int(row[4]),
        state=row[5],
        start_date=parse_iso(row[6]) if row[6] else None,
        end_date=parse_iso(row[7]) if row[7] else None,
        labels=loads(row[8]) if row[8] else {},
        parent_id=row[9],
        trigger_type=row[10],
        cursor=str(row[0]),
    )


def _states(state: str | Sequence[str] | None) -> list[str] | None:
    """The states a listing asks for, each once (None: any state)."""
    if state is None:
        return None
    return list(dict.fromkeys([state] if isinstance(state, str) else [str(item) for item in state]))


def _execution_filters(
    namespace: str | None, flow_id: str | None, state: str | Sequence[str] | None
) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of a listing, and their parameters.

    SQL written in Python (with `_page_parts`): a listing names only the filters it uses, so that
    SQLite picks the index that fits them (one static statement with optional filters would defeat
    that).
    """
    where: list[str] = []
    params: list[Any] = []
    if namespace:
        # The namespace itself, or any namespace below it: "acme" matches "acme.finance", not "acmeco".
        where.append("(namespace = ? OR (namespace >= ? AND namespace < ?))")
        params += [namespace, namespace + ".", namespace + "/"]
    if flow_id is not None:
        where.append("flow_id = ?")
        params.append(flow_id)
    states = _states(state)
    if states is not None:
        # An empty list matches nothing (SQLite reads `IN ()` so; PostgreSQL refuses it).
        where.append(f"state IN ({', '.join('?' * len(states))})" if states else "1 = 0")
        params += states
    return where, params


# A page merged from more sub-selects than this runs as several statements (SQLite's compound SELECT
# takes at most 500), their pages merged here.
_PARTS_PER_STATEMENT = 100

_Part = tuple[list[str], list[Any]]


def _page_parts(
    namespace: str | None,
    below: Sequence[str],
    flow_id: str | None,
    states: Sequence[str] | None,
    before: int | None,
) -> list[_Part]:
    """The sub-selects a page is merged from: each one reads an index in `seq` order.

    With states, one per state (the index on (state, seq), the namespace checked on each row), so
    that a rare state is found without reading the namespace's other executions. Else with a
    namespace, one for it and one for each namespace `below` it (the index on (namespace, seq), or
    on (namespace, flow_id, seq) with a flow id). Else one.
    """
    common: list[str] = []
    common_params: list[Any] = []
    if flow_id is not None:
        common.append("flow_id = ?")
        common_params.append(flow_id)
    if before is not None:
        common.append("seq < ?")
        common_params.append(before)
    if states is not None:
        where, params = _execution_filters(namespace, None, None)
        return [(["state = ?", *where, *common], [one, *params, *common_params]) for one in states]
    if namespace:
        return [(["namespace = ?", *common], [name, *common_params]) for name in (namespace, *below)]
    return [(common, common_params)]


def page_statements(
    namespace: str | None,
    below: Sequence[str],
    flow_id: str | None,
    states: Sequence[str] | None,
    before: int | None,
    limit: int,
) -> list[tuple[str, list[Any]]]:
    """The statements (with their parameters) that read a page of a listing, each merging up to
    _PARTS_PER_STATEMENT index-ordered sub-selects (see `_page_parts`): their pages merged by
    descending `seq` and cut at `limit` are the listing's page.

    Args:
        below: The namespaces below `namespace` that have executions (`select_namespaces_below`).
        states: The states asked for, each once (None: any).
    """
    parts = _page_parts(namespace, below, flow_id, states, before)
    # A flow's executions are read from its own index: the namespace's index holds the listed columns,
    # which would otherwise make it the planner's pick, and a rare flow would then cost a scan of its
    # namespace's every execution.
    hint = "INDEXED BY executions_flow " if namespace and flow_id is not None and states is None else ""
    statements = []
    for first in range(0, len(parts), _PARTS_PER_STATEMENT):
        selects, params = [], []
        for where, part_params in parts[first : first + _PARTS_PER_STATEMENT]:
            clause = hint + (f"WHERE {' AND '.join(where)}" if where else "")
            selects.append(_SQL["select_executions_part"].replace("{where}", clause))
            params += part_params
        sql = _SQL["select_executions_page"].replace("{parts}", "\nUNION ALL\n".join(selects))
        statements.append((sql, [*params, limit]))
    return statements


def _with_where(query: str, where: Sequence[str]) -> str:
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return _SQL[query].replace("{where}", clause)


def _prefix_bound(prefix: str) -> str:
    """The least text above every text that starts with `prefix`: its last character raised by one.

    SQLite compares text as UTF-8 bytes, which sort as code points do (surrogates are skipped).
    """
    head, last = prefix[:-1], ord(prefix[-1])
    if last == 0x10FFFF:  # no character above it: bound the shorter prefix
        # (a prefix of U+10FFFF alone gets an approximate bound: no id Tiercel makes holds one)
        return _prefix_bound(head) if head else prefix + prefix
    following = last + 1 if last + 1 != 0xD800 else 0xE000
    return head + chr(following)


_T = TypeVar("_T")
# Reads left to finish after their caller was cancelled (a task needs a reference until it ends).
_UNAWAITED: set[asyncio.Task[Any]] = set()


async def _to_the_end(work: Coroutine[Any, Any, _T]) -> _T:
    """The result of `work`, run in a task of its own that a cancelled caller leaves to finish.

    A cancelled await on a connection does not cancel its statement, which still runs, in order, on
    the connection's thread: a read transaction must run to its COMMIT before its connection goes
    back to the pool, or the next read there would start inside it.
    """
    task = asyncio.ensure_future(work)
    _UNAWAITED.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


def _finished(task: asyncio.Task[Any]) -> None:
    _UNAWAITED.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a read nobody awaits any more fails silently


class ExecutionTable(Table):
    """The `executions` and `task_runs` tables."""

    async def save_execution(
        self,
        execution: Execution,
        changed: Sequence[TaskRun] = (),
        logs: Sequence[LogEntry] = (),
        *,
        removed: Sequence[str] = (),
        fire: TriggerFire | None = None,
        also: Sequence[Execution] = (),
    ) -> None:
        """Upsert the execution and its changed task runs, and append logs, in one transaction.

        The transaction is group-committed with the other queued writes; this returns when it is
        durable. Task runs are stored in the order given: new ones must come in creation order
        (their order of storage is the order a reader gets them back in).

        Args:
            execution: The execution as it is now (its task runs are not all written: see `changed`).
            changed: The task runs created or changed since the last save, new ones in creation
                order.
            logs: Log lines to append in the same transaction.
            removed: Ids of task runs the execution no longer holds (deleted).
            fire: A trigger's fire record, stored in the same transaction; when it
                raises, nothing of the execution is stored and the exception propagates.
            also: New executions without task runs to store in the same transaction (the next
                attempt of an execution that ended RETRIED).

        Raises:
            StoreError: The write failed (a full disk, an I/O error); nothing of it was stored.
        """
        row = _execution_params(execution)
        others = [_execution_params(other) for other in also]
        runs = [task_run_params(execution.id, run) for run in changed]
        lines = [log_params(entry) for entry in logs]
        gone = [(run_id, execution.id) for run_id in removed]
        fire_write = fire_record_write(fire) if fire is not None else None
        upsert_execution, delete_task_run = _SQL["upsert_execution"], _SQL["delete_task_run"]
        upsert_task_run, insert_log = _SQL["upsert_task_run"], _LOGS_SQL["insert_log"]

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(upsert_execution, row)
            if others:
                conn.executemany(upsert_execution, others)
            if gone:
                conn.executemany(delete_task_run, gone)
            if runs:
                conn.executemany(upsert_task_run, runs)
            if lines:
                conn.executemany(insert_log, lines)
            if fire_write is not None:
                fire_write(conn)

        await self._db.write(write)

    async def get_execution(self, execution_id: str) -> Execution | None:
        """The execution with all its task runs in creation order, or None."""
        rows = await self._db.fetchall(_SQL["select_execution"], (execution_id, execution_id))
        if not rows or rows[0][0] != 0:
            return None
        data = loads(rows[0][2])
        data["taskRunList"] = [loads(row[2]) for row in rows[1:]]
        return Execution.from_json(data)

    async def list_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[ExecutionSummary]:
        """A page of executions, newest first.

        Args:
            namespace: Only this namespace and the namespaces below it ("acme" matches
                "acme.finance", not "acmeco").
            flow_id: Only executions of flows with this id.
            state: Only executions in this state (or in one of these states).
            limit: The page size.
            before: The `cursor` of the last row of the previous page (keyset pagination).

        Raises:
            StoreError: `before` is not a cursor this store returned.
        """
        cursor: int | None = None
        if before is not None:
            try:
                cursor = int(before)
            except ValueError:
                raise StoreError(f"invalid executions cursor {before!r}") from None
        limit = max(0, int(limit))
        states = _states(state)
        if states == []:
            return []

        def plan(below: Sequence[str]) -> list[tuple[str, list[Any]]]:
            return page_statements(namespace, below, flow_id, states, cursor, limit)

        # A namespace without a state filter: its page merges one read per namespace below it.
        below_of = namespace if namespace and states is None else None
        if below_of is None:
            statements = plan(())
            if len(statements) == 1:
                sql, params = statements[0]
                return [_execution_summary(row) for row in await self._db.fetchall(sql, params)]
        pages = await _to_the_end(self._read_in_snapshot(plan, below_of))
        rows = pages[0] if len(pages) == 1 else heapq.merge(*pages, key=lambda row: -int(row[0]))
        return [_execution_summary(row) for row in itertools.islice(rows, limit)]

    async def _read_in_snapshot(
        self, plan: Callable[[Sequence[str]], list[tuple[str, list[Any]]]], below_of: str | None
    ) -> list[list[Sequence[Any]]]:
        """The rows of each statement of `plan`, all read in one snapshot (a read transaction).

        `plan` is given the namespaces below `below_of` that have executions in that snapshot
        (none when `below_of` is None).
        """
        async with self._db.reader() as conn:
            await conn.execute(_SQL["begin_read"])
            try:
                below: list[str] = []
                if below_of is not None:
                    found = await conn.execute_fetchall(
                        _SQL["select_namespaces_below"], (below_of + ".", below_of + "/")
                    )
                    below = [str(row[0]) for row in found]
                return [list(await conn.execute_fetchall(sql, params)) for sql, params in plan(below)]
            finally:
                await conn.execute(_SQL["end_read"])

    async def count_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        state: str | Sequence[str] | None = None,
    ) -> int:
        """How many executions `list_executions` would list with the same filters, over all pages."""
        where, params = _execution_filters(namespace, flow_id, state)
        rows = await self._db.fetchall(_with_where("count_executions", where), params)
        return int(rows[0][0])

    async def last_states(self) -> dict[tuple[str, str], str]:
        """The state of the newest execution of each flow that has executions, by (namespace, flow id).

        One query for every flow: an index seek per flow, whatever the number of executions.
        """
        rows = await self._db.fetchall(_SQL["select_last_states"])
        return {(str(namespace), str(flow_id)): str(state) for namespace, flow_id, state in rows}

    async def execution_ids(self, prefix: str, *, limit: int) -> list[str]:
        """Up to `limit` execution ids that start with `prefix`, in order (an index range, not a scan)."""
        if not prefix:
            return []
        rows = await self._db.fetchall(
            _SQL["select_execution_ids_from"], (prefix, _prefix_bound(prefix), max(0, int(limit)))
        )
        return [str(row[0]) for row in rows]

    async def unfinished_executions(self) -> list[Execution]:
        """Every execution whose state is not terminal, oldest first, with its task runs."""
        rows = await self._db.fetchall(_SQL["select_unfinished"])
        executions: dict[str, dict[str, Any]] = {}
        for kind, _seq, execution_id, text in rows:
            if kind == 0:
                data = loads(text)
                data["taskRunList"] = []
                executions[execution_id] = data
            elif execution_id in executions:
                executions[execution_id]["taskRunList"].append(loads(text))
        return [Execution.from_json(data) for data in executions.values()]
