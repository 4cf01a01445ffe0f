"""Listing executions by namespace and the last state of each flow, against plain reference answers.

The store merges one index-ordered read per namespace (or per state); these tests check that every
filter, page size and cursor gives the rows a plain filter over the whole table gives, in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import engine_store
from tiercel.engine.model import ExecutionSummary, StateType
from tiercel.engine.store import Store

from .test_store import at, make_execution

NAMESPACES = (
    "acme",
    "acme.finance",
    "acme.finance.daily",
    "acme.finance.daily.eu",
    "acme.ops",
    "acme-x",  # '-' sorts before '.': inside the range "acme" .. "acme/" but not below "acme"
    "acme/odd",
    "acmeco",
    "acme0",
    "other",
    "other.acme",
)
FLOWS = ("a", "b", "report")
STATES = (StateType.SUCCESS, StateType.FAILED, StateType.RUNNING, StateType.WARNING)


def reference(
    rows: Sequence[tuple[Any, ...]],
    namespace: str | None,
    flow_id: str | None,
    states: Sequence[str] | None,
    limit: int,
    before: int | None,
) -> list[str]:
    """The ids a listing must return, from every row: (seq, id, namespace, flow_id, state)."""
    kept = [
        row
        for row in rows
        if (not namespace or row[2] == namespace or row[2].startswith(namespace + "."))
        and (flow_id is None or row[3] == flow_id)
        and (states is None or row[4] in states)
        and (before is None or row[0] < before)
    ]
    return [row[1] for row in sorted(kept, key=lambda row: -row[0])[:limit]]


async def all_rows(store: Store) -> list[tuple[Any, ...]]:
    """Every execution's row, read past the listing under test."""
    rows = await store._db.fetchall("SELECT seq, id, namespace, flow_id, state FROM executions")
    return [tuple(row) for row in rows]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(engine_store(tmp_path))
    try:
        yield opened
    finally:
        await opened.close()


async def fill(store: Store, count: int, seed: int = 7) -> None:
    """`count` executions spread unevenly over NAMESPACES, FLOWS and STATES, some updated later."""
    chooser = random.Random(seed)
    weights = [1 + index % 4 for index in range(len(NAMESPACES))]
    made = []
    for _ in range(count):
        namespace = chooser.choices(NAMESPACES, weights)[0]
        execution = make_execution(namespace, chooser.choice(FLOWS), state=chooser.choice(STATES))
        await store.save_execution(execution)
        made.append(execution)
    # An update keeps the execution's place (its seq) and changes its state.
    for execution in chooser.sample(made, count // 10):
        await store.save_execution(execution.to(StateType.KILLED, at(5)))


async def pages(store: Store, limit: int, **filters: Any) -> list[list[ExecutionSummary]]:
    """Every page of a listing, following the cursors."""
    found: list[list[ExecutionSummary]] = []
    before: str | None = None
    while True:
        page = await store.list_executions(limit=limit, before=before, **filters)
        found.append(page)
        if len(page) < limit or limit == 0:
            return found
        before = page[-1].cursor


@pytest.mark.parametrize("state", [None, "SUCCESS", ["FAILED", "RUNNING"], ["KILLED", "KILLED"]])
async def test_every_page_of_every_filter_is_the_reference_answer(
    store: Store, state: str | list[str] | None
) -> None:
    await fill(store, 400)
    rows = await all_rows(store)
    whole = {row.id: row for row in await store.list_executions(limit=1000)}
    assert len(whole) == 400
    states = None if state is None else ([state] if isinstance(state, str) else state)
    for namespace in (None, *NAMESPACES, "acme.fin", "acme.", "missing", "ACME"):
        for flow_id in (None, "a", "report", "none"):
            for limit in (1, 7, 100):
                filters = {"namespace": namespace, "flow_id": flow_id, "state": state}
                listed = await pages(store, limit, **filters)
                ids = [row.id for page in listed for row in page]
                assert ids == reference(rows, namespace, flow_id, states, len(rows), None), filters
                # Each page is what the plain filter gives from its cursor on.
                before = None
                for page in listed:
                    want = reference(rows, namespace, flow_id, states, limit, before)
                    assert [row.id for row in page] == want, (filters, limit, before)
                    before = int(page[-1].cursor) if page else before
                # The rows are the same summaries the unfiltered listing gives.
                assert all(row == whole[row.id] for page in listed for row in page)
            count = await store.count_executions(namespace=namespace, flow_id=flow_id, state=state)
            assert count == len(reference(rows, namespace, flow_id, states, len(rows), None))


async def test_a_namespace_with_hundreds_below_it_pages_like_the_plain_filter(store: Store) -> None:
    # More namespaces below the filter than one statement merges: the pages of several are merged.
    chooser = random.Random(3)
    names = [f"big.n{index:03d}" for index in range(230)] + ["big", "big.n007.deep", "bigger"]
    executions = [make_execution(chooser.choice(names), "f") for _ in range(700)]
    for first in range(0, len(executions), 100):
        await asyncio.gather(*(store.save_execution(e) for e in executions[first : first + 100]))
    rows = await all_rows(store)
    for namespace in ("big", "big.n007"):
        for limit in (1, 50, 333):
            listed = await pages(store, limit, namespace=namespace)
            ids = [row.id for page in listed for row in page]
            assert ids == reference(rows, namespace, None, None, len(rows), None)
            assert all(len(page) == limit for page in listed[:-1])


async def test_empty_and_long_state_lists(store: Store) -> None:
    await fill(store, 120)
    rows = await all_rows(store)
    assert await store.list_executions(state=[]) == []
    assert await store.list_executions(namespace="acme", state=[]) == []
    assert await store.count_executions(state=[]) == 0
    # More states than one statement merges: the pages of several statements are merged.
    many = [f"NOT_A_STATE_{index}" for index in range(150)] + ["FAILED", "KILLED"]
    for namespace in (None, "acme"):
        listed = await pages(store, 9, namespace=namespace, state=many)
        ids = [row.id for page in listed for row in page]
        assert ids == reference(rows, namespace, None, many, len(rows), None)
        assert len(ids) > 9


async def test_an_execution_of_a_new_namespace_appears_on_the_next_first_page(store: Store) -> None:
    await store.save_execution(make_execution("acme.one", "a"))
    assert [row.namespace for row in await store.list_executions(namespace="acme")] == ["acme.one"]
    await store.save_execution(make_execution("acme.two", "a"))
    await store.save_execution(make_execution("acme", "a"))
    rows = await store.list_executions(namespace="acme")
    assert [row.namespace for row in rows] == ["acme", "acme.two", "acme.one"]
    assert await store.list_executions(namespace="acme", limit=0) == []


async def test_last_states_are_the_newest_execution_of_each_flow(store: Store) -> None:
    assert await store.last_states() == {}
    await fill(store, 300)
    rows = await all_rows(store)
    newest: dict[tuple[str, str], tuple[int, str]] = {}
    for seq, _id, namespace, flow_id, state in rows:
        if (namespace, flow_id) not in newest or newest[(namespace, flow_id)][0] < seq:
            newest[(namespace, flow_id)] = (seq, state)
    expected = {key: state for key, (_seq, state) in newest.items()}
    assert len(expected) > 20
    assert await store.last_states() == expected


async def test_the_last_state_follows_creation_not_the_latest_update(store: Store) -> None:
    older = make_execution("acme", "a", state=StateType.RUNNING)
    newer = make_execution("acme", "a", state=StateType.RUNNING)
    below = make_execution("acme.finance", "a", state=StateType.FAILED)
    for execution in (older, newer, below):
        await store.save_execution(execution)
    await store.save_execution(newer.to(StateType.SUCCESS, at(3)))
    await store.save_execution(older.to(StateType.FAILED, at(4)))  # updated last, created first
    assert await store.last_states() == {("acme", "a"): "SUCCESS", ("acme.finance", "a"): "FAILED"}


async def test_a_cancelled_namespace_listing_leaves_the_readers_usable(store: Store) -> None:
    # A dashboard cancels a listing when the selection moves on: the statements it had queued still
    # run on their connection, which must still end its read transaction before it serves another.
    await fill(store, 60)
    expected = [row.id for row in await store.list_executions(namespace="acme")]
    for steps in range(12):
        listing = asyncio.ensure_future(store.list_executions(namespace="acme"))
        for _ in range(steps):
            await asyncio.sleep(0)
        listing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listing
        # Every connection of the pool serves the next listings.
        pages = await asyncio.gather(*(store.list_executions(namespace="acme") for _ in range(4)))
        assert all([row.id for row in page] == expected for page in pages)
