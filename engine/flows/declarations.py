"""Namespace declarations written by tasks (CreateNamespace, UpdateNamespace): the same
`_namespace.yaml` files people write, so that a setting has one home whoever set it.

A declaration is changed by merging settings into what its file holds: `description` is replaced,
`variables` and `flowDefaults` merge key by key (a nested mapping too), a plugin default replaces
the one of the same `type`, a permission the one of the same user or group. The result is checked
as the file parser checks a declaration by hand (a refused change writes nothing), written in one
step, and read by the engine at once. A new declaration goes to `<namespace as folders>/_namespace.yaml`
under the flows folder. The file is rewritten from its values, so comments in it are not kept; its
first line says which execution wrote it last.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from ..mappings import deep_merge
from ..parser import FlowParseError
from ..parser.namespace import parse_namespace
from ..tasks.services import FlowWriteError
from .files import replace_file
from .namespaces import Namespaces

DECLARATION = "_namespace.yaml"
_BY_TYPE = ("pluginDefaults", "taskDefaults")


@dataclass(frozen=True, slots=True)
class Declared:
    """What a declaring task did: the file, and whether it created the declaration."""

    path: Path
    created: bool
    changed: bool


class DeclarationFolder(Protocol):
    @property
    def namespaces(self) -> Namespaces: ...

    async def sync(self, paths: Iterable[Path] | None = None) -> None: ...


async def declare(
    folder: DeclarationFolder,
    flows_dir: Path | None,
    namespace: str,
    settings: Mapping[str, Any],
    *,
    only_new: bool,
    written_by: str,
) -> Declared:
    """Merge `settings` into the namespace's declaration (create it when missing; with `only_new`,
    leave an existing one as it is).

    Raises:
        FlowWriteError: No flows folder, or the declaration the settings make is invalid.
    """
    if not namespace or not all(namespace.split(".")):
        raise FlowWriteError([("namespace", f"`{namespace}` is not a namespace name (e.g. `company.team`)")])
    _check_shapes(settings)
    known = folder.namespaces.declared.get(namespace)
    path = Path(known.path) if known is not None and known.path else _new_path(flows_dir, namespace)
    if known is None and (path.exists() or path.is_symlink()):
        problems = folder.namespaces.errors.get(str(path))
        why = f"it has errors: {problems[0].message}" if problems else "it declares another namespace"
        raise FlowWriteError([("namespace", f"{path} is there already and {why}; fix or move it first")])
    if known is not None and only_new:
        return Declared(path, created=False, changed=False)
    current = _read(path) if known is not None else {}
    merged = merge_settings(current, settings)
    if _implied_id(flows_dir, path) != namespace:
        merged = {"id": namespace, **{k: v for k, v in merged.items() if k not in ("id", "namespace")}}
    if known is not None and merged == current:
        return Declared(path, created=False, changed=False)
    text = f"# Written by {written_by}\n" + yaml.safe_dump(merged, sort_keys=False, allow_unicode=True)
    try:
        parse_namespace(text, str(path), _implied_id(flows_dir, path))
    except FlowParseError as error:
        raise FlowWriteError([(e.yaml_path or "namespace", e.message) for e in error.errors]) from None
    replace_file(path, text.encode())
    await folder.sync([path])
    return Declared(path, created=known is None, changed=True)


_SHAPES: dict[str, tuple[type, str]] = {
    "description": (str, "text"),
    "variables": (Mapping, "a mapping"),
    "flowDefaults": (Mapping, "a mapping"),
    "pluginDefaults": (list, "a list"),
    "taskDefaults": (list, "a list"),
    "permissions": (list, "a list"),
}


def _check_shapes(settings: Mapping[str, Any]) -> None:
    """Each setting of the shape a declaration holds (the file parser checks the rest)."""
    wrong = [
        (key, f"`{key}` must be {what}, not {type(settings[key]).__name__}")
        for key, (kind, what) in _SHAPES.items()
        if settings.get(key) is not None and not isinstance(settings[key], kind)
    ]
    if wrong:
        raise FlowWriteError(wrong)


def merge_settings(current: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` merged into a declaration's values (see the module's doc)."""
    merged = dict(current)
    for key, value in settings.items():
        if value is None:
            continue
        if key in ("variables", "flowDefaults") and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        elif key in _BY_TYPE:
            older = [*(merged.pop("taskDefaults", None) or ()), *(merged.get("pluginDefaults") or ())]
            merged["pluginDefaults"] = _replace_by(older, value, _type)
        elif key == "permissions":
            merged[key] = _replace_by(merged.get(key) or [], value, _principal)
        else:
            merged[key] = value
    return merged


def _replace_by(entries: list[Any], new: Iterable[Any], key: Any) -> list[Any]:
    news = list(new)
    replaced = {key(entry) for entry in news}
    return [entry for entry in entries if key(entry) not in replaced] + news


def _type(entry: Any) -> Any:
    return entry.get("type") if isinstance(entry, Mapping) else id(entry)


def _principal(entry: Any) -> Any:
    if not isinstance(entry, Mapping):
        return id(entry)
    if entry.get("group") is not None:
        return ("group", entry["group"])
    return ("user", entry.get("username") or entry.get("user"))


def _new_path(flows_dir: Path | None, namespace: str) -> Path:
    if flows_dir is None:
        problem = ("namespace", "this engine has no flows folder to declare namespaces in")
        raise FlowWriteError([problem], invalid=False)
    return flows_dir.joinpath(*namespace.split("."), DECLARATION)


def _implied_id(flows_dir: Path | None, path: Path) -> str | None:
    """The namespace a declaration's folder names (what it declares without an `id`)."""
    if flows_dir is None:
        return None
    try:
        parts = path.parent.resolve().relative_to(flows_dir.resolve()).parts
    except ValueError:
        return None
    return ".".join(parts) or None


def _read(path: Path) -> dict[str, Any]:
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return dict(value) if isinstance(value, Mapping) else {}
