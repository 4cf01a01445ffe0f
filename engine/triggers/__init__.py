"""Trigger helpers shared by the scheduler and the flow trigger: Kestra's conditions."""

from .conditions import (
    CONDITION_TYPES,
    ConditionContext,
    ConditionError,
    condition_problem,
    condition_type,
    conditions_hold,
)

__all__ = [
    "CONDITION_TYPES",
    "ConditionContext",
    "ConditionError",
    "condition_problem",
    "condition_type",
    "conditions_hold",
]
