"""Flows: each flow's latest revision with its file and outline, every revision's source, and the
parse errors of flow files."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..model import iso, parse_iso, utcnow
from .queries import Queries
from .table import Table
from .writer import statement, statements

_SQL = Queries("flows")

_FLOWS_PER_WRITE = 1_000


@dataclass(frozen=True, slots=True)
class FlowRow:
    """The latest revision of a flow."""

    namespace: str
    flow_id: str
    revision: int
    path: str | None
    updated: datetime
    deleted: bool
    source_hash: str | None = None
    # The revision's outline: its trigger types, and what it was checked with (None: not known).
    trigger_types: tuple[str, ...] | None = None
    checked_with: str | None = None


@dataclass(frozen=True, slots=True)
class FlowSave:
    """A flow source to store as its next revision, with its file and its outline (see `save_flow`)."""

    namespace: str
    flow_id: str
    source: str
    path: str | None = None
    trigger_types: Collection[str] | None = None
    checked_with: str | None = None


def source_hash(source: str) -> str:
    """The content hash kept with a flow's current revision (SHA-256 of its UTF-8 text)."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def _trigger_types_json(types: Collection[str] | None) -> str | None:
    return None if types is None else json.dumps(sorted(types))


def _save_flow(conn: sqlite3.Connection, save: FlowSave, now: str | None) -> tuple[int, bool]:
    """Store one flow's source as its next revision unless identical to the latest: (revision, created)."""
    namespace, flow_id, source, path = save.namespace, save.flow_id, save.source, save.path
    digest = source_hash(source)
    types, checked = _trigger_types_json(save.trigger_types), save.checked_with
    conn.execute(_SQL["lock_flow"], (namespace, flow_id))
    row = conn.execute(_SQL["select_latest_flow"], (namespace, flow_id)).fetchone()
    if row is None:
        conn.execute(_SQL["insert_flow"], (namespace, flow_id, 1, path, now, digest, types, checked))
        conn.execute(_SQL["insert_flow_revision"], (namespace, flow_id, 1, source, now))
        return (1, True)
    revision, deleted, old_path, old_source, old_digest, old_types, old_checked = row
    if not deleted and old_source == source:
        outline = types is not None and (types, checked) != (old_types, old_checked)
        if (path is not None and path != old_path) or old_digest != digest or outline:
            conn.execute(_SQL["update_flow_path"], (path, now, digest, types, checked, namespace, flow_id))
        return (int(revision), False)
    revision = int(revision) + 1
    conn.execute(_SQL["insert_flow_revision"], (namespace, flow_id, revision, source, now))
    conn.execute(
        _SQL["update_flow_revision"], (revision, path, now, digest, types, checked, namespace, flow_id)
    )
    return (revision, True)


class FlowTable(Table):
    """The `flows`, `flow_revisions` and `flow_errors` tables."""

    async def save_flow(
        self,
        namespace: str,
        flow_id: str,
        source: str,
        *,
        path: str | None = None,
        trigger_types: Collection[str] | None = None,
        checked_with: str | None = None,
    ) -> tuple[int, bool]:
        """Store the source as the next revision unless identical to the latest; return (revision, created).

        A flow marked deleted gets a new revision even when the source is unchanged. When only the
        path changed (a moved file), the path is updated without a new revision.

        Args:
            namespace: The flow's namespace.
            flow_id: The flow's id.
            source: The YAML text.
            path: The file it came from (None keeps the known path).
            trigger_types: The types of the flow's triggers, kept as the revision's outline.
            checked_with: A fingerprint of what the source was checked with, kept with the outline.
        """

        save = FlowSave(namespace, flow_id, source, path, trigger_types, checked_with)
        return await self._db.write(lambda conn: _save_flow(conn, save, iso(utcnow())))

    async def save_flows(self, saves: Sequence[FlowSave]) -> list[tuple[int, bool]]:
        """`save_flow` for many flows, a transaction per thousand: (revision, created) of each, in order.

        A folder of many new flows is stored at once instead of a transaction per flow.
        """
        results: list[tuple[int, bool]] = []
        for start in range(0, len(saves), _FLOWS_PER_WRITE):
            chunk = saves[start : start + _FLOWS_PER_WRITE]

            def write(conn: sqlite3.Connection, chunk: Sequence[FlowSave] = chunk) -> list[tuple[int, bool]]:
                now = iso(utcnow())
                return [_save_flow(conn, save, now) for save in chunk]

            results += await self._db.write(write)
        return results

    async def save_flow_outlines(
        self, outlines: Sequence[tuple[str, str, int, Collection[str], str]]
    ) -> None:
        """Keep the outline of current revisions, in one transaction.

        Args:
            outlines: (namespace, flow id, revision, trigger types, checked with) each; a revision
                that is no longer the current one is left alone.
        """
        rows = [
            (_trigger_types_json(types), checked, namespace, flow_id, revision)
            for namespace, flow_id, revision, types, checked in outlines
        ]
        if rows:
            await self._db.write(statements(_SQL["update_flow_outline"], rows))

    async def flow_source(
        self, namespace: str, flow_id: str, revision: int | None = None
    ) -> tuple[int, str] | None:
        """The (revision, source) of a flow: the latest one, or the given revision.

        Without a revision a deleted flow is not found; a given revision is found even when the flow
        was deleted since (executions of it still need its source).
        """
        if revision is None:
            rows = await self._db.fetchall(_SQL["select_flow_source_latest"], (namespace, flow_id))
        else:
            rows = await self._db.fetchall(_SQL["select_flow_source"], (namespace, flow_id, revision))
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[tuple[int, str, datetime]]:
        """Every revision of a flow, oldest first, as (revision, source, created)."""
        rows = await self._db.fetchall(_SQL["select_flow_revisions"], (namespace, flow_id))
        return [(int(row[0]), str(row[1]), parse_iso(row[2])) for row in rows]

    async def list_flows(self, *, include_deleted: bool = False) -> list[FlowRow]:
        """The latest revision of each flow not deleted (of every flow with `include_deleted`)."""
        rows = await self._db.fetchall(_SQL["select_flows"], (1 if include_deleted else 0,))
        return [
            FlowRow(
                namespace=row[0],
                flow_id=row[1],
                revision=int(row[2]),
                path=row[3],
                updated=parse_iso(row[4]),
                deleted=bool(row[5]),
                source_hash=row[6],
                trigger_types=None if row[7] is None else tuple(json.loads(row[7])),
                checked_with=row[8],
            )
            for row in rows
        ]

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        """Mark a flow deleted; its revisions are kept."""
        await self._db.write(statement(_SQL["delete_flow"], (iso(utcnow()), namespace, flow_id)))

    async def save_flow_error(self, path: str, message: str | None) -> None:
        """Remember the last parse error of a flow file; None clears it."""
        if message is None:
            await self._db.write(statement(_SQL["delete_flow_error"], (path,)))
        else:
            await self._db.write(statement(_SQL["upsert_flow_error"], (path, message, iso(utcnow()))))

    async def flow_errors(self) -> dict[str, str]:
        """The parse error of every broken flow file, by path."""
        return {str(row[0]): str(row[1]) for row in await self._db.fetchall(_SQL["select_flow_errors"])}
