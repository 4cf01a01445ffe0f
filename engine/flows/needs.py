"""Which other flows a flow names in its tasks, so that `tiercel run FILE` reads only those from the folder.

A task names a flow by its `flowId` (and `namespace`, its own flow's by default): a Subflow, a
ForEachItem, a trigger Toggle. When such a name is an expression, or a task may build another task at
run time (a templated task) or comes from a plugin, what the flow needs is known only while it runs.
"""

from __future__ import annotations

from ..model import Flow
from ..parser import walk_tasks
from ..parser.context import is_expression
from ..tasks.builtin_types import BUILT_IN_TASK_TYPES
from ..tasks.templating import TEMPLATED
from .table import FlowUid

_BUILT_IN = frozenset(task_type.name for task_type in BUILT_IN_TASK_TYPES) - {TEMPLATED}


def flows_named(flow: Flow) -> set[FlowUid] | None:
    """The flows the tasks of `flow` name, or None when some are known only at run time."""
    named: set[FlowUid] = set()
    for _, task in walk_tasks(flow):
        if task.type not in _BUILT_IN:
            return None
        flow_id = task.props.get("flowId")
        if flow_id is None:
            continue
        namespace = task.props.get("namespace", flow.namespace)
        if not isinstance(flow_id, str) or not isinstance(namespace, str):
            return None
        if is_expression(flow_id) or is_expression(namespace):
            return None
        named.add((namespace, flow_id))
    return named
