"""Namespace permissions in the dashboard: for a user of a users file (`tiercel ui --users --user`) and
for a read-only dashboard (`--read-only`), what they may not read is not shown, and what they may not
do is refused with the permission and the namespace named, whichever way it is asked (its key, the
command palette, the engine the panes hold).

The matrix: every command of the dashboard's engine, asked by someone holding the permission it needs
(let through the guard) and by someone holding the one below (refused); every query, asked by a
reader (answered) and by a stranger (nothing there)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.app.test_api_permissions import OTHER
from tests.engine.helpers import running_engine
from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.guarded import GuardedEngine
from tiercel.app.palette import commands_of
from tiercel.app.screens.triggers import TriggersScreen
from tiercel.app.widgets.namespaces import EDITOR_REFUSED, NodeRef
from tiercel.engine import (
    OWNER,
    Access,
    AccessDenied,
    Engine,
    EngineError,
    Permission,
    Principal,
    StateType,
    utcnow,
)

NS = "acme.finance"
PAY = f"""
id: pay
namespace: {NS}
tasks:
  - id: note
    type: io.kestra.plugin.core.log.Log
    message: paid
triggers:
  - id: nightly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 1 1 *"
"""
DECLARATIONS = {
    "acme/_namespace.yaml": "permissions:\n  - group: analysts\n    permission: READ\n",
    "acme/finance/_namespace.yaml": (
        "permissions:\n  - username: runner\n    permission: EXECUTE\n"
        "  - username: keeper\n    permission: OWNER\n"
    ),
}
READER = Principal("reader", frozenset({"analysts"}))
RUNNER = Principal("runner", frozenset({"analysts"}))
KEEPER = Principal("keeper")
STRANGER = Principal("stranger")
READ_ONLY = replace(OWNER, most=Permission.READ)
# Who holds a permission on acme.finance, and who holds the one below it.
HOLDING = {Permission.READ: READER, Permission.EXECUTE: RUNNER, Permission.OWNER: KEEPER}
BELOW = {Permission.READ: STRANGER, Permission.EXECUTE: READER}


def flows_folder(root: Path) -> Path:
    flows = root / "flows"
    for name, text in {**DECLARATIONS, "acme/finance/pay.yml": PAY, "other.yml": OTHER}.items():
        (flows / name).parent.mkdir(parents=True, exist_ok=True)
        (flows / name).write_text(text)
    return flows


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    flows_folder(tmp_path)
    async with running_engine(tmp_path) as started:
        yield started


def guarded(engine: Engine, principal: Principal) -> GuardedEngine:
    return GuardedEngine(engine, Access(engine.catalog.namespaces.chain, principal))


async def ended_execution(engine: Engine, namespace: str, flow_id: str) -> str:
    execution_id = await engine.trigger(namespace, flow_id)
    await engine.wait(execution_id)
    return execution_id


Command = Callable[[GuardedEngine, str], Awaitable[object]]
# Every command of the dashboard's engine, and the permission it needs on the flow's namespace.
COMMANDS: list[tuple[str, Command]] = [
    ("trigger", lambda e, _: e.trigger(NS, "pay")),
    ("kill", lambda e, i: e.kill(i)),
    ("restart", lambda e, i: e.restart(i)),
    ("resume", lambda e, i: e.resume(i)),
    ("replay", lambda e, i: e.replay(i)),
    ("change_status", lambda e, i: e.change_status(i, StateType.FAILED)),
    ("evaluate", lambda e, i: e.evaluate(i, None, "{{ 1 + 1 }}")),
    ("clear_task_cache", lambda e, _: e.clear_task_cache(NS, "pay")),
    ("set_trigger_enabled", lambda e, _: e.set_trigger_enabled(NS, "pay", "nightly", True)),
    ("start_backfill", lambda e, _: e.start_backfill(NS, "pay", "nightly", utcnow() - timedelta(days=1))),
    ("change_backfill", lambda e, _: e.change_backfill(NS, "pay", "nightly", "pause")),
]


@pytest.mark.parametrize("name", [name for name, _ in COMMANDS])
async def test_each_command_needs_execute_on_its_namespace(engine: Engine, name: str) -> None:
    command = dict(COMMANDS)[name]
    execution_id = await ended_execution(engine, NS, "pay")
    for below in (guarded(engine, BELOW[Permission.EXECUTE]), guarded(engine, READ_ONLY)):
        with pytest.raises(AccessDenied) as refused:
            await command(below, execution_id)
        assert f"lacks EXECUTE on namespace `{NS}`" in str(refused.value)
    for holder in (
        guarded(engine, HOLDING[Permission.EXECUTE]),
        guarded(engine, KEEPER),
        guarded(engine, OWNER),
    ):
        try:
            await command(holder, execution_id)
        except AccessDenied:
            raise
        except Exception as error:  # the command's own refusal (a state it does not apply to...)
            assert "lacks" not in str(error)


async def test_a_read_only_refusal_says_so(engine: Engine) -> None:
    execution_id = await ended_execution(engine, NS, "pay")
    with pytest.raises(AccessDenied, match="read-only here, READ at most"):
        await guarded(engine, replace(KEEPER, most=Permission.READ)).restart(execution_id)
    with pytest.raises(AccessDenied, match=r"\(holds READ there\)"):
        await guarded(engine, READER).restart(execution_id)
    with pytest.raises(AccessDenied, match=r"\(holds no permission there\)"):
        await guarded(engine, READER).trigger("elsewhere", "other")


async def test_each_query_shows_only_what_may_be_read(engine: Engine) -> None:
    pay = await ended_execution(engine, NS, "pay")
    other = await ended_execution(engine, "elsewhere", "other")
    reader, stranger = guarded(engine, READER), guarded(engine, STRANGER)
    assert {row.id for row in await reader.list_executions()} == {pay}
    assert {row.id for row in await guarded(engine, READ_ONLY).list_executions()} == {pay, other}
    assert await stranger.list_executions() == []
    assert await stranger.list_executions(namespace=NS) == []
    assert [row.id for row in await reader.list_executions(namespace="acme")] == [pay]
    assert (await reader.execution(pay)) is not None and await reader.execution(other) is None
    assert await stranger.execution(pay) is None
    assert await reader.logs(pay) and await stranger.logs(pay) == [] and await reader.logs(other) == []
    assert await reader.metrics(other) == []
    assert await reader.execution_ids(pay[:6], limit=5) == [pay]
    assert await stranger.execution_ids(pay[:6], limit=5) == []
    assert await reader.flow_revisions(NS, "pay") and await stranger.flow_revisions(NS, "pay") == []
    assert await reader.flow_revision(NS, "pay", 1) is not None
    assert await stranger.flow_revision(NS, "pay", 1) is None
    assert [s.flow_id for s in await reader.trigger_states()] == ["pay"]
    assert await stranger.trigger_states() == []
    assert set(await reader.last_states()) == {(NS, "pay")}
    assert list(reader.flows) == [(NS, "pay")] and len(stranger.flows) == 0
    assert reader.flows.get(("elsewhere", "other")) is None and ("elsewhere", "other") not in reader.flows
    with pytest.raises(KeyError):
        reader.flows[("elsewhere", "other")]
    assert reader.flow_errors == {}


def note_flow(flow_id: str, namespace: str) -> str:
    return OTHER.replace("id: other", f"id: {flow_id}").replace(
        "namespace: elsewhere", f"namespace: {namespace}"
    )


async def test_pages_merge_the_namespaces_a_reader_is_granted_newest_first(tmp_path: Path) -> None:
    """Outside what they may read whole, a reader's pages merge those of each namespace granted:
    paging on from a page's last row goes on where it stopped, with nothing twice or left out."""
    grant = "permissions:\n  - username: reader\n    permission: READ\n"
    flows = tmp_path / "flows"
    for folder in ("alpha", "beta/team"):
        (flows / folder).mkdir(parents=True)
        (flows / folder / "_namespace.yaml").write_text(grant)
    spots = {"alpha": "a", "beta.team": "t", "beta": "b", "gamma": "g"}
    sources = [note_flow(flow_id, namespace) for namespace, flow_id in spots.items()]
    async with running_engine(tmp_path, *sources) as engine:
        made = [
            (namespace, await ended_execution(engine, namespace, flow_id))
            for _ in range(3)
            for namespace, flow_id in spots.items()
        ]
        reader = guarded(engine, READER)
        for within, expected in (("", ("alpha", "beta.team")), ("beta", ("beta.team",)), ("gamma", ())):
            pages: list[list[str]] = []
            before = None
            while not pages or len(pages[-1]) == 2:
                page = await reader.list_executions(namespace=within or None, limit=2, before=before)
                pages.append([row.id for row in page])
                before = page[-1].cursor if page else None
            newest_first = [
                execution_id for namespace, execution_id in reversed(made) if namespace in expected
            ]
            assert [execution_id for page in pages for execution_id in page] == newest_first, within


# -- the dashboard ---------------------------------------------------------------------------------


def notes(app: TiercelApp) -> list[str]:
    return [str(note.message) for note in app._notifications]


async def opened(app: TiercelApp, pilot: Pilot[None], flows: int) -> None:
    await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == flows)


async def test_a_reader_sees_their_namespaces_and_every_command_says_what_lacks(tmp_path: Path) -> None:
    flows = flows_folder(tmp_path)
    app = TiercelApp(flows, tmp_path / "t.db", control=False, principal=READER)
    async with app.run_test(size=(120, 40)) as pilot:
        await opened(app, pilot, flows=1)  # `elsewhere` is not in the tree
        assert app.query_one("#left").border_subtitle == "as reader"
        assert app.session is not None
        raw = app.session.hosted.engine
        # The engine's own errors are the machine owner's (they name flows and executions anywhere).
        raw.events.publish(EngineError("Flow trigger `t` of elsewhere.other: broken"))
        pay = await ended_execution(raw, NS, "pay")
        other = await ended_execution(raw, "elsewhere", "other")
        assert app.ns_tree.select_ref(NodeRef("namespace", ""))
        await until_drawn(pilot, lambda: pay in app.table.rows_by_id, what="the readable execution")
        assert other not in app.table.rows_by_id  # neither its page nor its events
        assert not any("elsewhere" in note for note in notes(app))  # the error came before them
        assert app.ns_tree.select_ref(NodeRef("flow", NS, "pay"))
        await until_drawn(pilot, lambda: app.table.selected_id == pay and app.detail.execution_id == pay)
        assert app.ns_tree.check_action("run_flow", ()) is None  # greyed in the footer
        for key, needed in (("r", "EXECUTE"), ("R", "EXECUTE"), ("P", "EXECUTE")):
            await pilot.press(key)
            expected = f"User `reader` lacks {needed} on namespace `{NS}` (holds READ there)"
            await until_drawn(pilot, lambda e=expected: any(e in note for note in notes(app)), what=key)
            app.clear_notifications()
        await pilot.press("3", "x")  # the detail pane's expression console
        await until_drawn(pilot, lambda: any("lacks EXECUTE" in note for note in notes(app)), what="x")
        app.clear_notifications()
        # The palette offers what they may do: to see, not to run.
        names = [name for name, _, _ in await commands_of(app)]
        assert f"Go to flow {NS}.pay" in names and f"Go to execution {pay[:8]}" in names
        commands = ("Run flow", "Clear task cache", "Replay", "Toggle trigger", "Backfill")
        assert not [name for name in names if name.startswith(commands)]
        assert [row.id for row in await raw.list_executions(namespace=NS)] == [pay]  # nothing ran


async def test_a_user_with_execute_runs_but_does_not_edit(tmp_path: Path) -> None:
    """Not even an owner of the namespace: the editor runs as the machine's account (a shell away)."""
    flows = flows_folder(tmp_path)
    for runs, principal in enumerate((RUNNER, KEEPER), start=1):
        app = TiercelApp(flows, tmp_path / "t.db", control=False, principal=principal)
        async with app.run_test(size=(120, 40)) as pilot:
            await opened(app, pilot, flows=1)
            assert app.ns_tree.select_ref(NodeRef("flow", NS, "pay"))
            await pilot.press("r")  # one more run, theirs

            def ended(a: TiercelApp = app, runs: int = runs) -> bool:
                return sum(r.state == "SUCCESS" for r in a.table.rows_by_id.values()) == runs

            await until_drawn(pilot, ended)
            assert app.ns_tree.check_action("edit_flow", ()) is None
            names = [name for name, _, _ in await commands_of(app)]
            assert f"Run flow {NS}.pay" in names and f"Toggle trigger {NS}.pay.nightly" in names
            assert app.engine is not None
            await app.ns_tree.edit_flow(app.engine.flows[(NS, "pay")])  # as the palette asks
            await until_drawn(pilot, lambda a=app: any(EDITOR_REFUSED in note for note in notes(a)))


async def test_a_read_only_dashboard_sees_everything_and_changes_nothing(tmp_path: Path) -> None:
    flows = flows_folder(tmp_path)
    app = TiercelApp(flows, tmp_path / "t.db", control=False, principal=replace(READ_ONLY, name="ana"))
    async with app.run_test(size=(120, 40)) as pilot:
        await opened(app, pilot, flows=2)
        assert app.query_one("#left").border_subtitle == "read-only"
        assert app.session is not None
        app.session.hosted.engine.events.publish(EngineError("Flow trigger `t` of elsewhere.other: broken"))
        await until_drawn(pilot, lambda: any("elsewhere.other" in note for note in notes(app)))
        assert app.ns_tree.select_ref(NodeRef("flow", NS, "pay"))
        await pilot.press("r")
        expected = f"User `ana` lacks EXECUTE on namespace `{NS}`: read-only here, READ at most"
        await until_drawn(pilot, lambda: any(expected in note for note in notes(app)))
        app.clear_notifications()
        app.ns_tree.focus()
        await pilot.press("T")  # the flow's triggers
        await until_drawn(pilot, lambda: isinstance(app.screen, TriggersScreen))
        for key, title in (("space", "Cannot change the trigger"), ("b", "Cannot backfill")):
            await pilot.press(key)
            await until_drawn(pilot, lambda t=title: any(n.title == t for n in app._notifications), what=key)
        assert app.session is not None
        assert app.session.hosted.engine.scheduler.is_enabled(NS, "pay", "nightly")
        assert isinstance(app.screen, TriggersScreen)  # no backfill form opened
