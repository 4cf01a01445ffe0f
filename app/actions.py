"""What more than one pane's actions share: the user's editor and the source an execution ran.

The actions themselves live on the widgets and screens they act on (the namespace tree runs and
edits flows, the executions table kills, restarts, resumes and replays, the triggers view turns
triggers on and off and drives backfills); the command palette calls the same methods with a
named target.
"""

from __future__ import annotations

import os
import shlex

from textual.dom import DOMNode

from .host import dashboard
from .screens.viewer import ViewerScreen

#: Why a flow or execution key did nothing, by the pane action it runs.
WHY_NOT = {
    "run_flow": "Select a flow first (1, then ↑↓ in the namespaces)",
    "edit_flow": "Select a flow first (1, then ↑↓ in the namespaces)",
    "kill": "Only an execution that has not ended can be killed",
    "restart": "Only a FAILED or KILLED execution restarts",
    "resume": "Only a PAUSED execution resumes",
    "replay": "Only an ended execution can be replayed",
    "history": "Select a flow or a namespace first",
    "dag": "The flow has no Dag task",
    "copy_id": "Select an execution first",
}


def editor_command() -> list[str]:
    """$EDITOR, else $VISUAL, else vi, split as a shell would."""
    return shlex.split(os.environ.get("EDITOR") or os.environ.get("VISUAL") or "vi")


async def show_execution_source(node: DOMNode, execution_id: str) -> None:
    """The source of the flow revision an execution ran, in a viewer."""
    engine = dashboard(node).engine
    if engine is None:
        return
    execution = await engine.execution(execution_id)
    if execution is None:
        return
    revision = execution.flow_revision
    flow = await engine.flow_revision(execution.namespace, execution.flow_id, revision)
    if flow is None:
        node.app.notify(
            f"Revision {execution.flow_revision} of {execution.flow_id} is not stored", severity="warning"
        )
        return
    title = f"{flow.namespace}.{flow.id} rev {flow.revision} (ran by {execution.id[:8]})"
    node.app.push_screen(ViewerScreen(title, flow.source, "yaml"))
