"""`_namespace.yaml`: a namespace's description, variables, plugin defaults and permissions.

The founding article's names are read too: `taskDefaults` (the older name of `pluginDefaults`) and
`flowDefaults`, defaults for the namespace's flows: `triggers` (each entry a trigger `type` and the
values its triggers of that type get) and `logging.level` (the least level the flows' tasks and
triggers log at: a `logLevel` default). `permissions` list users and groups with READ, EXECUTE or
OWNER, inherited by the namespaces below.
"""

from __future__ import annotations

from typing import Any

from ..model import NamespacePermission, NamespaceSpec, PluginDefault
from .context import Context, type_name
from .errors import FlowError, FlowParseError
from .flow import NAMESPACE_PATTERN, plugin_defaults
from .loader import format_path, load_yaml
from .tasks import LOG_LEVELS

_KEYS = frozenset(
    {
        "id",
        "namespace",
        "description",
        "variables",
        "pluginDefaults",
        "taskDefaults",
        "flowDefaults",
        "permissions",
    }
)
PERMISSIONS = ("READ", "EXECUTE", "OWNER")
_FLOW_DEFAULT_KEYS = ("triggers", "logging")
_PERMISSION_KEYS = ("username", "user", "group", "permission")


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
    defaults = plugin_defaults(ctx, root) + _flow_defaults(ctx, root.get("flowDefaults"))
    permissions = _permissions(ctx, root.get("permissions"))
    return NamespaceSpec(namespace, description, variables, tuple(defaults), path, permissions)


def _flow_defaults(ctx: Context, raw: Any) -> list[PluginDefault]:
    """`flowDefaults` as the plugin defaults they amount to."""
    if raw is None:
        return []
    data = ctx.mapping(raw, ("flowDefaults",), "`flowDefaults`")
    if data is None:
        return []
    ctx.unknown_keys(data, _FLOW_DEFAULT_KEYS, ("flowDefaults",), "`flowDefaults`")
    found: list[PluginDefault] = []
    for index, entry in enumerate(
        ctx.sequence(data.get("triggers"), ("flowDefaults", "triggers"), "`triggers`") or ()
    ):
        path = ("flowDefaults", "triggers", index)
        item = ctx.mapping(
            entry, path, "An entry of `flowDefaults.triggers` (a trigger `type` and its values)"
        )
        kind = (
            ctx.required_text(item, "type", path, "An entry of `flowDefaults.triggers` has no `type`")
            if item
            else None
        )
        if item is not None and kind:
            found.append(PluginDefault(kind, {key: value for key, value in item.items() if key != "type"}))
    logging = (
        ctx.mapping(data.get("logging") or {}, ("flowDefaults", "logging"), "`flowDefaults.logging`") or {}
    )
    ctx.unknown_keys(logging, ("level",), ("flowDefaults", "logging"), "`flowDefaults.logging`")
    level = ctx.text(logging, "level", ("flowDefaults", "logging"), "`level`")
    if level is not None:
        if level.upper() not in LOG_LEVELS:
            ctx.error(
                ("flowDefaults", "logging", "level"),
                f"Unknown log level `{level}`: use one of {', '.join(LOG_LEVELS)}",
            )
        else:
            found.append(PluginDefault("io.kestra", {"logLevel": level.upper()}))
    return found


def _permissions(ctx: Context, raw: Any) -> tuple[NamespacePermission, ...]:
    found: list[NamespacePermission] = []
    for index, entry in enumerate(ctx.sequence(raw, ("permissions",), "`permissions`") or ()):
        path = ("permissions", index)
        item = ctx.mapping(entry, path, "A permission (`username` or `group`, and `permission`)")
        if item is None:
            continue
        ctx.unknown_keys(item, _PERMISSION_KEYS, path, "a permission")
        user = ctx.text(item, "username", path, "`username`") or ctx.text(item, "user", path, "`user`")
        group = ctx.text(item, "group", path, "`group`")
        permission = (ctx.text(item, "permission", path, "`permission`") or "").upper()
        if bool(user) == bool(group):
            ctx.error(path, "A permission names one `username` or one `group`")
        elif permission not in PERMISSIONS:
            ctx.error(
                (*path, "permission"), f"Permission `{permission}`: use one of {', '.join(PERMISSIONS)}"
            )
        else:
            found.append(NamespacePermission("user" if user else "group", str(user or group), permission))
    return tuple(found)
