"""Namespaces declared by `_namespace.yaml` files, and what a namespace inherits from its parents.

`acme.finance.reports` sees the variables and plugin defaults of `acme` and `acme.finance`; a child's
value wins over its parent's. A declaration's id is its `id` key, or else the folder it sits in
(flows/acme/finance/_namespace.yaml declares acme.finance).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..mappings import deep_merge
from ..model import NamespaceSpec, PluginDefault
from ..parser.errors import FlowError, FlowParseError
from ..parser.namespace import parse_namespace

NAMESPACE_FILES = frozenset({"_namespace.yml", "_namespace.yaml"})
_MAX_BYTES = 1024 * 1024


def ancestry(namespace: str) -> list[str]:
    """`a.b.c` -> [`a`, `a.b`, `a.b.c`]: a namespace and its parents, outermost first."""
    parts = namespace.split(".")
    return [".".join(parts[: index + 1]) for index in range(len(parts))]


def _error(path: Path, message: str) -> FlowError:
    return FlowError(str(path), None, None, "", message)


class Namespaces:
    """The declarations found in a flows folder, with inheritance along the dotted names."""

    def __init__(self) -> None:
        self.declared: dict[str, NamespaceSpec] = {}
        self.errors: dict[str, list[FlowError]] = {}
        # `namespace` for expressions, built once per namespace: every task render asks for it.
        self._contexts: dict[str, dict[str, Any]] = {}

    def load(self, folder: Path) -> bool:
        """Read every declaration under `folder`; True when something differs from before."""
        declared: dict[str, NamespaceSpec] = {}
        errors: dict[str, list[FlowError]] = {}
        for path in sorted(p for name in NAMESPACE_FILES for p in folder.rglob(name)):
            relative = path.parent.relative_to(folder).parts
            if relative[:1] == ("_files",):
                continue
            default_id = ".".join(relative) or None
            try:
                spec = self._read(path, default_id)
            except FlowParseError as error:
                errors[str(path)] = error.errors
                continue
            if spec.id in declared:
                message = f"Namespace {spec.id} is also declared in {declared[spec.id].path}"
                errors[str(path)] = [FlowError(str(path), 1, 1, "", message)]
                continue
            declared[spec.id] = spec
        changed = declared != self.declared or errors != self.errors
        self.declared, self.errors = declared, errors
        if changed:
            self._contexts.clear()
        return changed

    @staticmethod
    def _read(path: Path, default_id: str | None) -> NamespaceSpec:
        try:
            raw = path.read_bytes()[: _MAX_BYTES + 1]
            if len(raw) > _MAX_BYTES:
                raise FlowParseError(
                    [FlowError(str(path), None, None, "", "The namespace file is over 1 MiB")]
                )
            text = raw.decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise FlowParseError(
                [FlowError(str(path), None, None, "", f"Cannot read the file: {exc}")]
            ) from exc
        return parse_namespace(text, str(path), default_id)

    def chain(self, namespace: str) -> list[NamespaceSpec]:
        """The declarations that apply to `namespace`, outermost first."""
        return [self.declared[name] for name in ancestry(namespace) if name in self.declared]

    def variables(self, namespace: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for spec in self.chain(namespace):
            merged = deep_merge(merged, spec.variables)
        return merged

    def plugin_defaults(self, namespace: str) -> Sequence[PluginDefault]:
        """Outermost first, so that (as with a flow's own list) the nearest declaration wins."""
        return [default for spec in self.chain(namespace) for default in spec.plugin_defaults]

    def description(self, namespace: str) -> str | None:
        declared = self.declared.get(namespace)
        return declared.description if declared else None

    def context(self, namespace: str) -> dict[str, Any]:
        """`namespace` in expressions (shared: read-only): the inherited variables by name, as Kestra
        has them (`{{ namespace.region }}`), beside `id`, `description` and `variables` (the same
        variables, an older spelling); a variable of one of those names wins over it, as in Kestra."""
        found = self._contexts.get(namespace)
        if found is None:
            variables = self.variables(namespace)
            found = {
                "id": namespace,
                "description": self.description(namespace),
                "variables": variables,
                **variables,
            }
            self._contexts[namespace] = found
        return found
