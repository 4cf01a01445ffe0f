"""A JSON Schema (draft-07, as Kestra's) of flow files, made from what the parser accepts.

The flow's keys, the task types of the registry (installed plugins included) with the properties
each accepts and those holding child tasks, the trigger types, the input types and the enumerations
(log levels, concurrency behaviours, retry types, input types). Editors (the YAML language server of
VS Code, JetBrains' IDEs) complete and check flows with it. It is as strict as `tiercel validate`
about names (an unknown property or type is an error in both) and looser about values: any value
may be an expression, and properties plugin defaults may supply are not required.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..model import LogLevel
from ..tasks.registry import Registry
from ..tasks.types import COMMON_PROPERTIES, FLOWABLE_PROPERTIES, ChildShape, Kind, TaskType
from ..triggers.types import TRIGGER_ALIASES
from .context import ID_PATTERN
from .flow import CONCURRENCY_BEHAVIORS, FLOW_ID_PATTERN, FLOW_KEYS, NAMESPACE_PATTERN
from .inputs import INPUT_KEYS, INPUT_TYPES, OUTPUT_KEYS
from .spellings import SUBFLOW
from .tasks import RETRY_KEYS, RETRY_NEEDS
from .triggers import trigger_keys

DRAFT = "http://json-schema.org/draft-07/schema#"
_EXPRESSION = {"type": "string", "pattern": r"\{\{"}
_FLAG = {"anyOf": [{"type": "boolean"}, _EXPRESSION]}
_TEXT = {"type": "string"}
_TASKS = {"type": "array", "items": {"$ref": "#/definitions/task"}}
# An optional list may also be written empty (`errors:` alone), which YAML reads as null.
_SOME_TASKS = {"type": ["array", "null"], "items": {"$ref": "#/definitions/task"}}

# What the flow's own keys hold, beyond their names.
_FLOW_DESCRIPTIONS = {
    "id": "The flow's id, unique in its namespace.",
    "namespace": "The namespace the flow belongs to (dotted, lower case: company.team).",
    "description": "What the flow does (Markdown).",
    "labels": "Labels given to every execution: a map, or a list of {key, value}.",
    "inputs": "The values an execution is started with.",
    "outputs": "The values the flow returns, rendered when the execution ends.",
    "variables": "Values the flow's expressions read as {{ vars.name }}.",
    "tasks": "The tasks the flow runs, in order.",
    "errors": "Tasks run when a task of the flow fails.",
    "finally": "Tasks run at the end of the execution, whatever its state.",
    "afterExecution": "Tasks run once the execution has ended, its final state known.",
    "triggers": "What starts executions of the flow: schedules, other flows, webhooks, HTTP polls.",
    "pluginDefaults": "Default property values for the flow's tasks and triggers, by type.",
    "taskDefaults": "The former name of pluginDefaults.",
    "concurrency": "How many executions of the flow may run at once, and what happens over the limit.",
    "retry": "How a failed execution is tried again.",
    "disabled": "A disabled flow starts no execution.",
    "sla": "Service level assertions on the flow's executions.",
}


def flow_schema(registry: Registry) -> dict[str, Any]:
    """The schema of a flow file, with a definition per task type of `registry`."""
    task_types = sorted(
        (found for name in registry.names() if (found := registry.lookup(name)) is not None),
        key=lambda task_type: task_type.name,
    )
    definitions: dict[str, Any] = {
        "task": _task(task_types),
        "trigger": _trigger(),
        "input": _input(),
        "output": _keys_object(OUTPUT_KEYS, {"id": _TEXT}, required=["id"]),
        "retry": _retry(),
        "pluginDefault": _keys_object(
            {"type", "values", "forced"},
            {"type": _TEXT, "values": {"type": "object"}, "forced": _FLAG},
            ["type"],
        ),
    }
    for task_type in task_types:
        definitions[f"task:{task_type.name}"] = _task_type(task_type)
    properties: dict[str, Any] = {key: {} for key in FLOW_KEYS}
    properties |= {
        "id": {**_TEXT, "pattern": f"^{FLOW_ID_PATTERN.pattern}$", "maxLength": 100},
        "namespace": {**_TEXT, "pattern": f"^{NAMESPACE_PATTERN.pattern}$", "maxLength": 150},
        "description": _TEXT,
        "labels": {"anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
        "inputs": {"type": "array", "items": {"$ref": "#/definitions/input"}},
        "outputs": {"type": "array", "items": {"$ref": "#/definitions/output"}},
        "variables": {"type": "object"},
        "tasks": {**_TASKS, "minItems": 1},
        "errors": _SOME_TASKS,
        "finally": _SOME_TASKS,
        "afterExecution": _SOME_TASKS,
        "triggers": {"type": "array", "items": {"$ref": "#/definitions/trigger"}},
        "pluginDefaults": {"type": "array", "items": {"$ref": "#/definitions/pluginDefault"}},
        "taskDefaults": {"type": "array", "items": {"$ref": "#/definitions/pluginDefault"}},
        "concurrency": {
            "type": "object",
            "properties": {
                "limit": {"anyOf": [{"type": "integer", "minimum": 1}, _EXPRESSION]},
                "behavior": {"enum": list(CONCURRENCY_BEHAVIORS)},
            },
            "additionalProperties": False,
        },
        "retry": {"$ref": "#/definitions/retry"},
        "disabled": _FLAG,
    }
    for key, text in _FLOW_DESCRIPTIONS.items():
        properties[key] = {**properties[key], "description": text}
    return {
        "$schema": DRAFT,
        "title": "Kestra flow",
        "description": "A Kestra flow, as Tiercel and Kestra run it.",
        "type": "object",
        "required": ["id", "namespace", "tasks"],
        "properties": properties,
        "additionalProperties": False,
        "definitions": definitions,
    }


def _keys_object(
    keys: frozenset[str] | set[str], known: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: known.get(key, {}) for key in sorted(keys)},
        "required": required,
        "additionalProperties": False,
    }


def _task(task_types: list[TaskType]) -> dict[str, Any]:
    """A task: its id and type, then the properties of that type (one `if`/`then` per type)."""
    names = sorted({name for task_type in task_types for name in (task_type.name, *task_type.aliases)})
    branches = [
        {
            "if": {
                "properties": {"type": {"enum": [task_type.name, *task_type.aliases]}},
                "required": ["type"],
            },
            "then": {"$ref": f"#/definitions/task:{task_type.name}"},
        }
        for task_type in task_types
    ]
    return {
        "type": "object",
        "required": ["id", "type"],
        "properties": {
            "id": {
                **_TEXT,
                "pattern": f"^{ID_PATTERN.pattern}$",
                "description": "The task's id, unique in the flow.",
            },
            "type": {**_TEXT, "enum": names, "description": "The task type."},
        },
        "allOf": branches,
    }


def _task_type(task_type: TaskType) -> dict[str, Any]:
    accepted = set(COMMON_PROPERTIES | task_type.properties | task_type.deprecated | task_type.input_props)
    if task_type.kind is Kind.FLOWABLE:
        accepted |= FLOWABLE_PROPERTIES
    properties: dict[str, Any] = {key: {} for key in sorted(accepted)}
    properties |= {
        "id": _TEXT,
        "type": {"enum": [task_type.name, *task_type.aliases]},
        "description": _TEXT,
        "retry": {"$ref": "#/definitions/retry"},
        "timeout": {**_TEXT, "description": "An ISO 8601 duration (PT10M), or an expression."},
        "disabled": _FLAG,
        "allowFailure": _FLAG,
        "allowWarning": _FLAG,
        "runIf": {**_TEXT, "description": "The task runs only when this expression is true."},
        "logLevel": {"enum": [level.value for level in LogLevel]},
        "dependsOn": {
            "type": "array",
            "items": _TEXT,
            "description": "Tiercel: the sibling tasks this one waits for (Kestra: only in a Dag).",
        },
        "conditions": {
            "type": "array",
            "items": {"type": "object", "required": ["type"]},
            "description": "Tiercel: conditions that must all hold for the task to run, else SKIPPED.",
        },
    }
    if task_type.kind is not Kind.FLOWABLE:
        properties["fatalError"] = {
            "anyOf": [_TEXT, {"type": "array", "items": _TEXT}],
            "description": "Tiercel: error codes or message text that fail the flow under allowFailure.",
        }
    if "labels" not in task_type.properties:
        properties["labels"] = {
            "anyOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
            "description": "Tiercel: the task's labels, added to the tags of its metrics.",
        }
    if task_type.name == SUBFLOW:
        named = {"type": "object", "required": ["name"], "properties": {"name": _TEXT, "value": {}}}
        properties["transmit"] = {
            "type": "array",
            "items": named,
            "description": "Tiercel: `inputs` as a list.",
        }
        properties["receive"] = {
            "type": "array",
            "items": {"type": "object", "required": ["name"], "properties": {"name": _TEXT}},
            "description": "Tiercel: the outputs expected.",
        }
    if accepted & {"concurrent", "concurrencyLimit"}:
        properties["maxParallel"] = {
            "type": "integer",
            "description": "Tiercel: this flowable's `concurrent` (`concurrencyLimit`) under another name.",
        }
    for name, shape in task_type.child_shapes().items():
        properties[name] = _children(shape)
    for name in task_type.input_props:
        properties[name] = {"type": "array", "items": {"$ref": "#/definitions/input"}}
    for name in task_type.deprecated:
        properties[name] = {**properties[name], "deprecated": True}
    found: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    description = _description(task_type)
    if description:
        found["description"] = description
    return found


def _children(shape: ChildShape) -> dict[str, Any]:
    if shape is ChildShape.CASES:
        return {"type": "object", "additionalProperties": _SOME_TASKS}
    if shape is ChildShape.DAG:
        node = {
            "type": "object",
            "required": ["task"],
            "properties": {
                "task": {"$ref": "#/definitions/task"},
                "dependsOn": {"type": "array", "items": _TEXT},
            },
            "additionalProperties": False,
        }
        return {"type": "array", "items": node}
    return _SOME_TASKS


def _description(task_type: TaskType) -> str | None:
    """The first paragraph of the handler's docstring, when it has one."""
    handler = task_type.handler
    if handler is None:
        return None
    text = inspect.getdoc(handler) or ""
    return " ".join(text.split("\n\n", 1)[0].split()) or None


def _trigger() -> dict[str, Any]:
    by_type = trigger_keys()
    names = sorted({*by_type, *TRIGGER_ALIASES})
    branches = []
    for name, keys in sorted(by_type.items()):
        spellings = [name, *(alias for alias, target in TRIGGER_ALIASES.items() if target == name)]
        properties: dict[str, Any] = {key: {} for key in sorted(keys)}
        properties |= {"id": _TEXT, "type": {"enum": spellings}, "description": _TEXT, "disabled": _FLAG}
        branches.append(
            {
                "if": {"properties": {"type": {"enum": spellings}}, "required": ["type"]},
                "then": {"type": "object", "properties": properties, "additionalProperties": False},
            }
        )
    return {
        "type": "object",
        "required": ["id", "type"],
        "properties": {"id": _TEXT, "type": {**_TEXT, "enum": names}},
        "allOf": branches,
    }


def _input() -> dict[str, Any]:
    found = _keys_object(
        INPUT_KEYS, {"id": _TEXT, "type": {"enum": list(INPUT_TYPES)}, "required": _FLAG}, []
    )
    found["anyOf"] = [{"required": ["id"]}, {"required": ["name"]}]  # `name`: Kestra's former key
    return found


def _retry() -> dict[str, Any]:
    found = _keys_object(RETRY_KEYS, {"type": {"enum": sorted(RETRY_NEEDS)}}, ["type"])
    found["description"] = "How the task (or the flow) is tried again when it fails."
    return found
