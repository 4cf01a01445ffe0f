"""Flow inputs and outputs: ids, data types, and the settings each input type needs."""

from __future__ import annotations

import re
from typing import Any

from ..model import InputSpec, OutputSpec
from .context import DOTTED_ID_PATTERN, Context, java_text, suggestion, type_name
from .loader import YamlPath
from .templates import check_templates

INPUT_TYPES = (
    "STRING",
    "INT",
    "FLOAT",
    "BOOLEAN",
    "BOOL",
    "SELECT",
    "ENUM",
    "MULTISELECT",
    "ARRAY",
    "JSON",
    "YAML",
    "DATE",
    "DATETIME",
    "TIME",
    "DURATION",
    "URI",
    "EMAIL",
    "FILE",
    "SECRET",
)
INPUT_FIELDS = frozenset({"id", "name", "type", "description", "displayName", "required", "defaults"})
INPUT_KEYS = INPUT_FIELDS | {
    "validator",
    "min",
    "max",
    "minLength",
    "maxLength",
    "values",
    "options",
    "allowCustomValue",
    "allowInput",
    "itemType",
    "after",
    "before",
    "dependsOn",
    "expression",
    "autoSelectFirst",
    "prefill",
    "isRadio",
    "extension",
    "allowedFileExtensions",
}
_CHOICE_INPUTS = ("SELECT", "ENUM", "MULTISELECT")
OUTPUT_KEYS = frozenset({"id", "type", "value", "description", "required", "displayName"})


def parse_inputs(
    ctx: Context, raw: Any, where: YamlPath = ("inputs",), *, rendered: bool = False
) -> tuple[InputSpec, ...]:
    """Inputs (the flow's, or a Pause's onResume): ids, types, settings, `dependsOn` references.

    With `rendered` (the flow's inputs), a default written as text and the `expression` listing a
    choice's values are rendered when an execution starts: their templates are checked.
    """
    items = ctx.sequence(raw, where, f"`{where[-1]}`")
    inputs: list[InputSpec] = []
    seen: dict[str, YamlPath] = {}
    references: list[tuple[str, str, YamlPath]] = []
    for index, item in enumerate(items or ()):
        path: YamlPath = (*where, index)
        entry = ctx.mapping(item, path, "An input")
        if entry is None:
            continue
        id_key = "name" if entry.get("id") is None and entry.get("name") is not None else "id"
        input_id = (
            ctx.required_text(entry, id_key, path, "An input has no `id`: add one, e.g. `id: customer`") or ""
        )
        ctx.unknown_keys(entry, INPUT_KEYS, path, f"input `{input_id}`")
        if input_id:
            ctx.check_id(input_id, (*path, id_key), "Input id", DOTTED_ID_PATTERN)
            _check_duplicate(ctx, "input", input_id, (*path, id_key), seen)
        kind = _data_type(ctx, entry, path, f"input `{input_id}`")
        references.extend(_input_specifics(ctx, entry, kind, path, input_id))
        if rendered:
            _check_rendered(ctx, entry, kind, path)
        inputs.append(
            InputSpec(
                id=input_id,
                type=kind or "STRING",
                required=ctx.boolean(entry, "required", path, "`required`", True),
                defaults=entry.get("defaults"),
                description=ctx.text(entry, "description", path, "`description`"),
                display_name=ctx.text(entry, "displayName", path, "`displayName`"),
                props={key: value for key, value in entry.items() if key not in INPUT_FIELDS},
                position=ctx.position(path),
            )
        )
    for input_id, reference, path in references:
        if reference not in seen:
            ctx.error(
                path,
                f"Input `{input_id}` depends on `{reference}`, which is not an input of this flow"
                f"{suggestion(reference, seen)}",
            )
    return tuple(inputs)


def _data_type(ctx: Context, entry: dict[str, Any], path: YamlPath, owner: str) -> str | None:
    kind = ctx.required_text(
        entry, "type", path, f"The {owner} has no `type`: use one of {', '.join(INPUT_TYPES)}"
    )
    if kind is not None and kind not in INPUT_TYPES:
        close = f". Did you mean `{kind.upper()}`?" if kind.upper() in INPUT_TYPES else ""
        ctx.error(
            (*path, "type"), f"Unknown type `{kind}` on {owner}: use one of {', '.join(INPUT_TYPES)}{close}"
        )
        return None
    return kind


def _input_specifics(
    ctx: Context, entry: dict[str, Any], kind: str | None, path: YamlPath, input_id: str
) -> list[tuple[str, str, YamlPath]]:
    """Type-specific checks; returns the inputs this one depends on, to check once all are known."""
    if kind in _CHOICE_INPUTS:
        values_key = "values" if "values" in entry else "options"
        values = entry.get(values_key)
        if values is None and entry.get("expression") is None:
            ctx.error(
                path,
                f"Input `{input_id}` of type {kind} needs `values` (the list of choices) or an `expression` "
                "that computes them",
            )
        elif values is not None and not isinstance(values, list):
            ctx.error(
                (*path, values_key), f"`{values_key}` must be a list of choices, not {type_name(values)}"
            )
    if kind == "ARRAY":
        item_type = entry.get("itemType")
        if item_type is None:
            ctx.error(path, f"Input `{input_id}` of type ARRAY needs `itemType` (e.g. `itemType: STRING`)")
        elif item_type not in INPUT_TYPES or item_type == "ARRAY":
            ctx.error(
                (*path, "itemType"), f"Unknown `itemType` `{item_type}`: use one of {', '.join(INPUT_TYPES)}"
            )
    validator = entry.get("validator")
    if validator is not None:
        _check_regex(ctx, validator, (*path, "validator"), input_id)
    references: list[tuple[str, str, YamlPath]] = []
    depends = entry.get("dependsOn")
    if depends is not None:
        data = ctx.mapping(depends, (*path, "dependsOn"), "`dependsOn`")
        if data is not None:
            ctx.unknown_keys(data, ("inputs", "condition"), (*path, "dependsOn"), "`dependsOn`")
            names = ctx.sequence(data.get("inputs"), (*path, "dependsOn", "inputs"), "`dependsOn.inputs`")
            for index, name in enumerate(names or ()):
                references.append((input_id, java_text(name), (*path, "dependsOn", "inputs", index)))
    return references


def _check_rendered(ctx: Context, entry: dict[str, Any], kind: str | None, path: YamlPath) -> None:
    if isinstance(entry.get("defaults"), str):
        check_templates(ctx, entry["defaults"], (*path, "defaults"))
    if kind in _CHOICE_INPUTS and entry.get("values") is None and entry.get("options") is None:
        check_templates(ctx, entry.get("expression"), (*path, "expression"))


def _check_regex(ctx: Context, validator: Any, path: YamlPath, input_id: str) -> None:
    if not isinstance(validator, str):
        ctx.error(path, f"`validator` must be a regular expression (text), not {type_name(validator)}")
        return
    try:
        # Java spells named groups (?<name>...); Python needs (?P<name>...).
        re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", validator))
    except re.error as exc:
        ctx.error(path, f"The `validator` of input `{input_id}` is not a valid regular expression: {exc}")


def parse_outputs(ctx: Context, raw: Any) -> tuple[OutputSpec, ...]:
    """The flow's outputs: each needs an `id`, a `type` and a `value`."""
    items = ctx.sequence(raw, ("outputs",), "`outputs`")
    outputs: list[OutputSpec] = []
    seen: dict[str, YamlPath] = {}
    for index, item in enumerate(items or ()):
        path: YamlPath = ("outputs", index)
        entry = ctx.mapping(item, path, "An output")
        if entry is None:
            continue
        output_id = (
            ctx.required_text(entry, "id", path, "An output has no `id`: add one, e.g. `id: result`") or ""
        )
        ctx.unknown_keys(entry, OUTPUT_KEYS, path, f"output `{output_id}`")
        if output_id:
            ctx.check_id(output_id, (*path, "id"), "Output id", DOTTED_ID_PATTERN)
            _check_duplicate(ctx, "output", output_id, (*path, "id"), seen)
        kind = _data_type(ctx, entry, path, f"output `{output_id}`")
        check_templates(ctx, entry.get("value"), (*path, "value"))
        if entry.get("value") is None:
            ctx.error(
                path,
                f"Output `{output_id}` has no `value`: set it, usually to an expression such as "
                "`{{ outputs.my_task.value }}`",
            )
        outputs.append(
            OutputSpec(
                id=output_id,
                type=kind or "STRING",
                value=entry.get("value"),
                description=ctx.text(entry, "description", path, "`description`"),
                required=ctx.boolean(entry, "required", path, "`required`", True),
            )
        )
    return tuple(outputs)


def _check_duplicate(ctx: Context, what: str, name: str, path: YamlPath, seen: dict[str, YamlPath]) -> None:
    if name in seen:
        line = ctx.line_of(seen[name])
        ctx.error(
            path, f"Duplicate {what} id `{name}`: {what} ids must be unique (first used on line {line})"
        )
    else:
        seen[name] = path
