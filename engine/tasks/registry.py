"""The task registry: task type names (and their legacy aliases) -> what the engine knows of them.

The parser asks it which properties a type accepts and which of them hold child tasks; the executor
and the runner ask it for the handler. Third-party packages add task types through the
`tiercel.tasks` entry point group: each entry point loads a callable that receives the registry.
Each type remembers the package it came from; a plugin that fails to load is recorded with its
error (`failures`) instead of stopping the others, and a flow using a type nobody added is told
which plugins failed. Plugins load when first needed (a name the engine does not know, or the whole
list): a flow of built-in tasks and triggers never pays for importing them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import Distribution, EntryPoint, entry_points

from .builtin_types import BUILT_IN_TASK_TYPES
from .types import TaskType, TriggerType

BUILT_IN = "tiercel"


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A `tiercel.tasks` entry point that could not add its task types."""

    entry_point: str
    package: str
    error: str

    def __str__(self) -> str:
        return f"the task plugin `{self.entry_point}` (package {self.package}) failed to load: {self.error}"


class Registry:
    """Task types by canonical name and by alias, each with the package it came from.

    `plugins` lists the entry points to load when a name is missed or every name is asked for."""

    def __init__(self, plugins: Callable[[], Iterable[EntryPoint]] = lambda: ()) -> None:
        self._types: dict[str, TaskType] = {}
        self._names: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        self._triggers: dict[str, TriggerType] = {}
        self._trigger_names: dict[str, str] = {}
        self._adding = BUILT_IN  # the package whose types are being added
        self._failures: list[PluginFailure] = []
        self._plugins: Callable[[], Iterable[EntryPoint]] | None = plugins
        self._loaded = False
        # Flows are parsed on worker threads too; a plugin may look a name up while it registers.
        self._loading = threading.RLock()

    def _load_plugins(self) -> None:
        if self._loaded:
            return
        with self._loading:  # another thread waits here until every plugin is in
            plugins, self._plugins = self._plugins, None  # a loading plugin's own lookups return
            if plugins is not None:
                try:
                    for entry in plugins():
                        self.add_plugin(entry)
                finally:
                    self._loaded = True

    @property
    def failures(self) -> list[PluginFailure]:
        self._load_plugins()
        return self._failures

    def add(self, task_type: TaskType) -> None:
        self._types[task_type.name] = task_type
        self._sources[task_type.name] = self._adding
        self._names[task_type.name] = task_type.name
        for alias in task_type.aliases:
            self._names[alias] = task_type.name

    def add_trigger(self, trigger_type: TriggerType) -> None:
        self._triggers[trigger_type.name] = trigger_type
        self._sources[trigger_type.name] = self._adding
        for name in (trigger_type.name, *trigger_type.aliases):
            self._trigger_names[name] = trigger_type.name

    def lookup_trigger(self, name: str) -> TriggerType | None:
        """A plugin's trigger type by its name or an alias (None for unknown ones; the engine's own
        are not asked for, so that they load no plugin)."""
        if name not in self._trigger_names:
            self._load_plugins()
        canonical = self._trigger_names.get(name)
        return self._triggers[canonical] if canonical else None

    def trigger_names(self) -> Iterable[str]:
        self._load_plugins()
        return self._triggers.keys()

    def lookup(self, name: str, *, plugins: bool = True) -> TaskType | None:
        """A task type by its name or an alias; with `plugins` False, only among those loaded now."""
        if plugins and name not in self._names:
            self._load_plugins()
        canonical = self._names.get(name)
        return self._types[canonical] if canonical else None

    def names(self) -> Iterable[str]:
        self._load_plugins()
        return self._types.keys()

    def source(self, name: str) -> str:
        """The package a type came from (`tiercel` for the built-in ones), with its version."""
        self._load_plugins()
        canonical = self._names.get(name, name)
        return self._sources.get(canonical, BUILT_IN)

    def add_plugin(self, entry: EntryPoint) -> None:
        """Let one entry point add its types; a failure is recorded, the others load all the same."""
        package = f"{entry.dist.name} {entry.dist.version}" if entry.dist is not None else "unknown"
        self._adding = package
        try:
            entry.load()(self)
        except Exception as error:  # a broken plugin must not make every flow invalid
            self._failures.append(PluginFailure(entry.name, package, f"{type(error).__name__}: {error}"))
        finally:
            self._adding = BUILT_IN

    def close_matches(self, name: str) -> list[str]:
        """Known names that look like `name`, for 'did you mean' hints."""
        import difflib  # only a flow with an unknown type needs it

        self._load_plugins()
        short = name.rsplit(".", 1)[-1].lower()
        by_short = [n for n in self._types if n.rsplit(".", 1)[-1].lower() == short]
        return by_short or difflib.get_close_matches(name, list(self._names), n=3, cutoff=0.8)


def _load() -> Registry:
    # The handler modules import what their tasks need (processes, HTTP, storage): loaded on first use.
    from . import (
        core,
        files,
        fixture_task,
        flow,
        for_each_item,
        http,
        items,
        namespace,
        namespace_declarations,
        scripts,
        state,
        system,
        templating,
    )

    registry = Registry(plugins=installed_plugins)
    handlers = {**core.HANDLERS, **flow.HANDLERS, **scripts.HANDLERS, **http.HANDLERS, **files.HANDLERS}
    handlers |= {**system.HANDLERS, **namespace.HANDLERS, **namespace_declarations.HANDLERS}
    handlers |= {**items.HANDLERS, **state.HANDLERS, **for_each_item.HANDLERS, **fixture_task.HANDLERS}
    # The templated task looks its inner task up in this registry, complete by the time it runs.
    handlers[templating.TEMPLATED] = templating.handler(registry.lookup)
    for task_type in BUILT_IN_TASK_TYPES:
        registry.add(dataclasses.replace(task_type, handler=handlers.get(task_type.name)))
    return registry


def installed_plugins() -> Iterable[EntryPoint]:
    return entry_points(group="tiercel.tasks")


def plugins_fingerprint() -> str:
    """The installed plugins (entry point and package version), read without loading them: what a
    check of flows depends on besides the engine's own version."""
    versions: dict[int, str] = {}  # by distribution: its entry points share one

    def version(dist: Distribution | None) -> str:
        if dist is None:
            return ""
        if id(dist) not in versions:
            versions[id(dist)] = _version(dist)
        return versions[id(dist)]

    return "\n".join(
        sorted(f"{entry.name}={entry.value} {version(entry.dist)}" for entry in installed_plugins())
    )


def _version(dist: Distribution) -> str:
    """A distribution's version from its metadata's headers alone: `dist.version` parses the whole
    file as an e-mail, long description included (milliseconds for a README, at every start)."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.split("\n\n", 1)[0].splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == "version":
            return value.strip()
    return ""


_REGISTRY: Registry | None = None


@functools.cache
def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails, or an import blocked in sys.modules
        return False


def missing_requirement(modules: Iterable[str], extra: str) -> str | None:
    """What a type needs that this interpreter lacks (its modules are looked up, not imported), as the
    end of a sentence naming the extra that installs them; None when nothing is missing."""
    missing = [module for module in modules if not _installed(module)]
    if not missing:
        return None
    install = f"pip install 'tiercel[{extra}]'" if extra else "install them"
    plural = "s" if len(missing) > 1 else ""
    return f"needs the Python module{plural} {', '.join(missing)}, not installed here: {install}"


def registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _load()
    return _REGISTRY
