"""`_namespace.yaml`: a namespace's description, variables and plugin defaults."""

from __future__ import annotations

from typing import Any

from ..model import NamespaceSpec
from .context import Context, type_name
from .errors import FlowError, FlowParseError
from .flow import NAMESPACE_PATTERN, plugin_defaults
from .loader import format_path, load_yaml

_KEYS = frozenset({"id", "namespace", "description", "variables", "pluginDefaults"})


def parse_namespace(text: str, path: str, default_id: str | None) -> NamespaceSpec:
    """Parse a namespace declaration; its id is `id`, else the folder it sits in (`default_id`).

    Raises:
        FlowParseError: With every problem found.
    """
    document = load_yaml(text)
    ctx = Context(document.source, path)
    for problem in document.problems:
        line, column = problem.position if problem.position else (None, None)
        ctx.errors.append(FlowError(path, line, column, format_path(problem.path), problem.message))
    spec = _build(ctx, document.value, path, default_id) if document.complete else None
    if ctx.errors or spec is None:
        raise FlowParseError(sorted(ctx.errors, key=FlowError.sort_key))
    return spec


def _build(ctx: Context, root: Any, path: str, default_id: str | None) -> NamespaceSpec | None:
    if root is None:
        root = {}
    if not isinstance(root, dict):
        ctx.error(
            (),
            f"A namespace file is a mapping (id, description, variables ...), not {type_name(root)}",
        )
        return None
    ctx.unknown_keys(root, _KEYS, (), "a namespace file")
    key = "id" if "id" in root else "namespace"
    namespace = ctx.text(root, key, (), f"`{key}`") or default_id
    if namespace is None:
        ctx.error(
            (), "The namespace file has no `id` and is not in a namespace's folder: add `id: company.team`"
        )
        return None
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        ctx.error(
            (key,), f"Namespace `{namespace}` is invalid: use lower-case letters, digits, `.`, `_` and `-`"
        )
    variables = root.get("variables") or {}
    if ctx.mapping(variables, ("variables",), "`variables`") is None:
        variables = {}
    description = ctx.text(root, "description", (), "`description`")
    defaults = plugin_defaults(ctx, root, keys=("pluginDefaults",))
    return NamespaceSpec(namespace, description, variables, tuple(defaults), path)
