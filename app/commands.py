"""The command palette (ctrl+p or `:`): every flow, namespace, recent execution and trigger by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tiercel.engine.flows.table import FlowUid
from tiercel.engine.model import Flow, StateType

from .widgets.executions import Summary
from .widgets.namespaces import NodeRef
from .widgets.trigger_rows import is_schedule, under_way

if TYPE_CHECKING:
    from .app import TiercelApp

Command = tuple[str, Callable[[], Any], str]
PANE_NAMES = {"namespaces": "Namespaces", "executions": "Executions", "detail": "Detail"}
RECENT = 50


def namespaces_of(names: list[str]) -> list[str]:
    """Every namespace and every dotted parent of one, sorted."""
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(found)


def recent_executions(app: TiercelApp) -> list[Summary]:
    """The executions shown plus the ones seen live, newest first, at most RECENT of them."""
    rows = {**app._seen, **app.table.rows_by_id}
    ordered = sorted(rows.values(), key=lambda s: s.start.timestamp() if s.start else 0.0, reverse=True)
    return ordered[:RECENT]


async def commands_of(app: TiercelApp) -> list[Command]:
    """What the palette offers right now: (name, callback, help)."""
    engine = app.engine
    if engine is None:
        return []
    found: list[Command] = []
    # The palette names every flow without parsing it: a flow is parsed when its command is chosen.
    table = engine.flows
    uids = sorted(table)
    triggered = set(table.with_triggers())
    for uid in uids:
        name = ".".join(uid)

        def on(action: Callable[[Flow], Any], uid: FlowUid = uid) -> Callable[[], Any]:
            return lambda: action(table[uid]) if uid in table else None

        found.append((f"Run flow {name}", on(app.run_flow), "a form first when it has inputs"))
        found.append((f"Show flow source {name}", on(app.show_flow_source), "its YAML"))
        found.append((f"Revisions of flow {name}", on(app.show_revisions), "diff two revisions"))
        if uid in triggered:
            found.append((f"Triggers of {name}", on(app.show_triggers), "on/off, backfills"))
        path = table.path(uid)
        if path and app.can_edit:
            found.append((f"Edit flow {name}", on(app.edit_flow), path))
    for namespace in namespaces_of([namespace for namespace, _ in uids]):
        go = partial(app.go_to, NodeRef("namespace", namespace))
        found.append((f"Go to namespace {namespace}", go, ""))
    for summary in recent_executions(app):
        short, about = summary.id[:8], f"{summary.flow_id} {summary.state}"
        state = StateType(summary.state)
        if not state.is_terminated:
            kill = partial(app.confirm_kill, summary.id, summary.flow_id)
            found.append((f"Kill execution {short}", kill, about))
        if summary.state in ("FAILED", "KILLED"):
            found.append((f"Restart execution {short}", partial(app.command, "restart", summary.id), about))
        if summary.state == "PAUSED":
            found.append((f"Resume execution {short}", partial(app.resume_execution, summary.id), about))
        if state.is_terminated:
            replay = partial(app.confirm_replay, summary.id, None)
            found.append((f"Replay execution {short}", replay, about))
    for (namespace, flow_id, trigger_id), enabled in sorted(app.trigger_states().items()):
        toggle = partial(app.set_trigger_enabled, namespace, flow_id, trigger_id, not enabled)
        now = "enabled" if enabled else "disabled"
        found.append((f"Toggle trigger {namespace}.{flow_id}.{trigger_id}", toggle, f"now {now}"))
    found.extend(backfill_commands(app))
    for pane, title in PANE_NAMES.items():
        found.append((f"Focus pane {title}", partial(app.action_focus_pane, pane), ""))
    found.append(("Help", app.action_help, "the keys of the focused pane and the global keys"))
    return found


def backfill_commands(app: TiercelApp) -> list[Command]:
    """Start a backfill on a Schedule trigger, or pause, resume or cancel the one under way."""
    found: list[Command] = []
    for state in app.trigger_list():
        key = (state.namespace, state.flow_id, state.trigger_id)
        name = ".".join(key)
        progress = state.backfill
        status = progress.status if progress is not None else None
        about = f"{status.lower()}, {progress.fired} fired" if progress is not None and status else ""
        if is_schedule(state) and not under_way(state):
            found.append((f"Backfill {name}", partial(app.open_backfill_form, *key), "fire past slots"))
        if status == "RUNNING":
            found.append((f"Pause backfill of {name}", partial(app.backfill_command, "pause", *key), about))
        if status == "PAUSED":
            found.append((f"Resume backfill of {name}", partial(app.backfill_command, "resume", *key), about))
        if status in ("RUNNING", "PAUSED"):
            cancel = partial(app.confirm_cancel_backfill, *key)
            found.append((f"Cancel backfill of {name}", cancel, about))
    return found


class TiercelCommands(Provider):
    """Flows, namespaces, executions and triggers of the dashboard as palette commands."""

    @property
    def tiercel(self) -> TiercelApp:
        return self.app  # type: ignore[return-value]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in await commands_of(self.tiercel):
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, text=name, help=help_text or None)

    async def discover(self) -> Hits:
        for name, callback, help_text in await commands_of(self.tiercel):
            if name.startswith(("Run flow", "Go to namespace", "Focus pane", "Help")):
                yield DiscoveryHit(name, callback, text=name, help=help_text or None)
