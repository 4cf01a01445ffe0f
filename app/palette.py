"""The command palette (ctrl+p or `:`): every flow, namespace, recent execution and trigger by name.

It offers only what the person at the dashboard may do: a command needing EXECUTE on a namespace
they may not run there is left out (the keys say why; the engine refuses it either way).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tiercel.engine import EngineCommandError, Flow, FlowUid, Permission, StateType

from .host import Dashboard
from .screens.triggers import (
    change_backfill,
    confirm_cancel_backfill,
    open_backfill_form,
    set_trigger_enabled,
)
from .widgets.executions import ExecutionsTable, Summary
from .widgets.namespaces import NamespaceTree, NodeRef
from .widgets.trigger_rows import is_schedule, under_way

Command = tuple[str, Callable[[], Any], str]


class PaletteApp(Dashboard, Protocol):
    """What the palette asks of the dashboard beyond what the panes do."""

    @property
    def ns_tree(self) -> NamespaceTree: ...

    @property
    def table(self) -> ExecutionsTable: ...

    def recent_executions(self) -> list[Summary]:
        """The executions shown plus the ones seen live, newest first."""
        ...

    def trigger_states(self) -> dict[tuple[str, str, str], bool]: ...

    def action_focus_pane(self, pane: str) -> None: ...

    def action_help(self) -> None: ...

    def go_to_execution(self, execution_id: str) -> object:
        """Show an execution wherever it is: its flow in the tree, its row, its detail."""
        ...


PANE_NAMES = {"namespaces": "Namespaces", "executions": "Executions", "detail": "Detail"}
RECENT = 50
#: A query of at least this many id characters is also looked up among every stored execution id.
ID_QUERY_LENGTH = 4
ID_HITS = 10


def namespaces_of(names: list[str]) -> list[str]:
    """Every namespace and every dotted parent of one, sorted."""
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(found)


async def commands_of(app: PaletteApp) -> list[Command]:
    """What the palette offers right now: (name, callback, help)."""
    engine = app.engine
    if engine is None:
        return []
    tree, executions = app.ns_tree, app.table

    def runs(namespace: str) -> bool:
        return engine.refusal(namespace, Permission.EXECUTE) is None

    found: list[Command] = []
    # The palette names every flow without parsing it: a flow is parsed when its command is chosen.
    table = engine.flows
    uids = sorted(table)
    triggered = set(table.with_triggers())
    for uid in uids:
        name = ".".join(uid)

        def on(action: Callable[[Flow], Any], uid: FlowUid = uid) -> Callable[[], Any]:
            return lambda: action(table[uid]) if uid in table else None

        # A flow's name matches all its commands alike, and equal matches keep this order: going to
        # the flow comes first, so that typing a name and Enter moves there and never starts a run.
        found.append((f"Go to flow {name}", partial(tree.go_to, NodeRef("flow", *uid)), ""))
        if runs(uid[0]):
            found.append((f"Run flow {name}", on(tree.run_flow), "a form first when it has inputs"))
        found.append((f"Show flow source {name}", on(tree.show_flow_source), "its YAML"))
        found.append((f"Revisions of flow {name}", on(tree.show_revisions), "diff two revisions"))
        if runs(uid[0]):
            clear = partial(clear_task_cache, app, *uid)
            found.append((f"Clear task cache of flow {name}", clear, "its cached tasks run again"))
        if uid in triggered:
            found.append((f"Triggers of {name}", on(tree.show_triggers), "on/off, backfills"))
        path = table.path(uid)
        if path and app.can_edit and not engine.restricted:
            found.append((f"Edit flow {name}", on(tree.edit_flow), path))
    for namespace in namespaces_of([namespace for namespace, _ in uids]):
        go = partial(tree.go_to, NodeRef("namespace", namespace))
        found.append((f"Go to namespace {namespace}", go, ""))
    for summary in app.recent_executions()[:RECENT]:
        short, about = summary.id[:8], f"{summary.flow_id} {summary.state}"
        found.append((f"Go to execution {short}", partial(app.go_to_execution, summary.id), about))
        if not runs(summary.namespace):
            continue
        state = StateType(summary.state)
        if not state.is_terminated:
            kill = partial(executions.confirm_kill, summary.id, summary.flow_id)
            found.append((f"Kill execution {short}", kill, about))
        if summary.state in ("FAILED", "KILLED"):
            found.append((f"Restart execution {short}", partial(executions.restart, summary.id), about))
        if summary.state == "PAUSED":
            found.append((f"Resume execution {short}", partial(executions.resume, summary.id), about))
        if state.is_terminated:
            replay = partial(executions.confirm_replay, summary.id, None)
            found.append((f"Replay execution {short}", replay, about))
    for (namespace, flow_id, trigger_id), enabled in sorted(app.trigger_states().items()):
        if not runs(namespace):
            continue
        toggle = partial(set_trigger_enabled, tree, namespace, flow_id, trigger_id, not enabled)
        now = "enabled" if enabled else "disabled"
        found.append((f"Toggle trigger {namespace}.{flow_id}.{trigger_id}", toggle, f"now {now}"))
    found.extend(backfill_commands(app, runs))
    for pane, title in PANE_NAMES.items():
        found.append((f"Focus pane {title}", partial(app.action_focus_pane, pane), ""))
    found.append(("Help", app.action_help, "the keys of the focused pane and the global keys"))
    return found


async def clear_task_cache(app: PaletteApp, namespace: str, flow_id: str) -> None:
    """Forget what the flow's task caches keep (`cache`, `taskCache`), and say how much went."""
    if app.engine is None:
        return
    notify = app.ns_tree.app.notify
    try:
        cleared = await app.engine.clear_task_cache(namespace, flow_id)
    except (EngineCommandError, OSError) as error:
        notify(str(error), title="Cannot clear the task cache", severity="error")
        return
    entries = "entry" if cleared == 1 else "entries"
    notify(f"{cleared} cached {entries} of {namespace}.{flow_id} cleared")


def backfill_commands(app: PaletteApp, runs: Callable[[str], bool]) -> list[Command]:
    """Start a backfill on a Schedule trigger, or pause, resume or cancel the one under way (where
    `runs` says the person may run the trigger's namespace)."""
    node = app.ns_tree
    found: list[Command] = []
    for state in app.trigger_list():
        if not runs(state.namespace):
            continue
        key = (state.namespace, state.flow_id, state.trigger_id)
        name = ".".join(key)
        progress = state.backfill
        status = progress.status if progress is not None else None
        about = f"{status.lower()}, {progress.fired} fired" if progress is not None and status else ""
        if is_schedule(state) and not under_way(state):
            found.append((f"Backfill {name}", partial(open_backfill_form, node, *key), "fire past slots"))
        if status == "RUNNING":
            pause = partial(change_backfill, node, "pause", *key)
            found.append((f"Pause backfill of {name}", pause, about))
        if status == "PAUSED":
            resume = partial(change_backfill, node, "resume", *key)
            found.append((f"Resume backfill of {name}", resume, about))
        if status in ("RUNNING", "PAUSED"):
            cancel = partial(confirm_cancel_backfill, node, *key)
            found.append((f"Cancel backfill of {name}", cancel, about))
    return found


class TiercelCommands(Provider):
    """Flows, namespaces, executions and triggers of the dashboard as palette commands."""

    @property
    def tiercel(self) -> PaletteApp:
        return cast(PaletteApp, self.app)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        commands = await commands_of(self.tiercel)
        for name, callback, help_text in commands:
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, text=name, help=help_text or None)
        listed = {name for name, _, _ in commands}
        for execution_id in await self.ids_starting(query):
            if f"Go to execution {execution_id[:8]}" in listed:
                continue  # a recent one, already offered
            name = f"Go to execution {execution_id}"
            go = partial(self.tiercel.go_to_execution, execution_id)
            yield Hit(1.0, name, go, text=name, help="by its id, from the store")

    async def ids_starting(self, query: str) -> list[str]:
        """The stored execution ids a typed id (or its start) names, beyond the recent ones listed."""
        engine, text = self.tiercel.engine, query.strip()
        if engine is None or len(text) < ID_QUERY_LENGTH or not text.replace("-", "").isalnum():
            return []
        return await engine.execution_ids(text, limit=ID_HITS)

    async def discover(self) -> Hits:
        for name, callback, help_text in await commands_of(self.tiercel):
            if name.startswith(("Run flow", "Go to namespace", "Focus pane", "Help")):
                yield DiscoveryHit(name, callback, text=name, help=help_text or None)
