"""The graphs of a flow's Dag tasks and of its task lists with `dependsOn`, coloured by an
execution's task run states when given one.

The dashboard opens it with `DagScreen(flow)` or `DagScreen(flow, execution)`, and may call
`update_execution(execution)` as the execution changes; `flow_has_dag(flow)` tells whether there
is anything to show. Each graph (at any depth, inside other flowables too) gets a heading and its
graph; layers too wide for the screen are spread over more layers, and what is still too wide
scrolls sideways.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from tiercel.engine import Execution, Flow, visible

from ..widgets.dag_graph import DagTask, dag_tasks, dag_text, task_states

#: Columns the view's border and padding take from the screen's width.
FRAME = 6


def flow_dags(flow: Flow) -> list[DagTask]:
    """Every Dag task and task list with `dependsOn` of a flow: in its tasks, errors, finally and
    afterExecution, at any depth."""
    lists = {
        "tasks": flow.tasks,
        "errors": flow.errors,
        "finally": flow.finally_,
        "afterExecution": flow.after_execution,
    }
    return dag_tasks(lists)


def flow_has_dag(flow: Flow) -> bool:
    """Whether a flow has a graph to draw (for greying out the key that opens this screen)."""
    return bool(flow_dags(flow))


def dag_heading(dag: DagTask) -> str:
    """A graph's Dag id or list name, and the flowable tasks it sits in, outermost first."""
    where = f" (in {' › '.join(dag.parents)})" if dag.parents else ""
    count = len(dag.depends)
    what = f"Task list {dag.id}" if dag.is_list else f"Dag {dag.id}"
    return visible(f"{what}{where}: {count} task{'s' * (count != 1)}")


class DagScreen(ModalScreen[None]):
    """A flow's Dag tasks as graphs; escape or q closes it."""

    DEFAULT_CSS = """
    DagScreen { align: center top; }
    #dag-view {
        width: 100%; height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    #dag-title { height: 1; width: 100%; }
    #dag-graphs { height: 1fr; overflow: auto auto; }
    .dag-heading { margin-top: 1; text-style: bold; }
    .dag-graph { width: auto; height: auto; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close", id="tiercel.dag.close")]

    def __init__(self, flow: Flow, execution: Execution | None = None) -> None:
        super().__init__()
        self.flow = flow
        self.execution = execution
        self.dags = flow_dags(flow)
        self._width: int | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dag-view"):
            yield Label(self._title(), id="dag-title", markup=False)
            with ScrollableContainer(id="dag-graphs"):
                if not self.dags:
                    yield Static(
                        "This flow has no Dag task nor `dependsOn`.", classes="dag-heading", markup=False
                    )
                for number, dag in enumerate(self.dags):
                    yield Label(dag_heading(dag), classes="dag-heading", markup=False)
                    yield Static(id=f"dag-{number}", classes="dag-graph")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#dag-view").border_title = "Task graph"
        self.query_one("#dag-graphs").focus()
        self._draw(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._draw(event.size.width)

    def update_execution(self, execution: Execution | None) -> None:
        """Colour the tasks by this execution's task runs (None: no states)."""
        self.execution = execution
        self.query_one("#dag-title", Label).update(self._title())
        self._draw(self._width or self.size.width, force=True)

    def action_close(self) -> None:
        self.dismiss(None)

    def _title(self) -> str:
        title = f"Task graphs of {self.flow.namespace}.{self.flow.id}"
        execution = self.execution
        if execution is not None:
            title += f" in execution {execution.id[:8]} ({execution.state.current.value})"
        return visible(title)

    def _draw(self, width: int, *, force: bool = False) -> None:
        if width <= 0 or (width == self._width and not force):
            return
        self._width = width
        states = task_states(self.execution) if self.execution is not None else None
        for number, dag in enumerate(self.dags):
            graph = dag_text(dag.depends, states, max_width=max(width - FRAME, 20))
            self.query_one(f"#dag-{number}", Static).update(graph)
