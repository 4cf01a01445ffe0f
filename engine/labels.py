"""Execution labels as Kestra has them: the correlation id, and the nested map expressions read."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .model import Label

#: The label every execution carries: its own id, or the id its chain of executions started from
#: (a subflow's child and a Flow trigger's execution keep the upstream one), as in Kestra.
CORRELATION_ID = "system.correlationId"


def nested_labels(labels: Iterable[Label]) -> dict[str, Any]:
    """Kestra's Label.toNestedMap, the `labels` of expressions: `system.correlationId: x` becomes
    {system: {correlationId: x}}. A key that is both a value and a parent keeps the first one seen."""
    tree: dict[str, Any] = {}
    for label in labels:
        *parents, leaf = label.key.split(".")
        node: Any = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node.setdefault(leaf, label.value)
    return tree
