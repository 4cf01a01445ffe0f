"""The layout's rules, checked on the source: no import cycles, the engine below the app, the app on
the engine's public API alone, small modules and a small Engine facade.

The finer layers (the executor without I/O, the trigger sources below the engine) are checked in
tests/engine/test_executor_layers.py and test_trigger_layers.py.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tests.imports import (
    APP,
    ENGINE,
    REPOSITORY,
    cycles,
    import_graph,
    imported_modules,
    package_graph,
    source_modules,
)

MAX_MODULE_LINES = 600
# Modules that are tables by nature: one short entry per Pebble filter or function, or per Java date
# pattern letter. Splitting them would scatter a lookup that reads best in one place.
DECLARATIVE_TABLES = {"engine/expressions/library.py", "engine/expressions/javadate.py"}
MAX_FACADE_LINES = 300


def test_the_cycle_finder_finds_a_cycle_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": set(), "f": {"f", "outside"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = import_graph()
    # engine/__init__.py names its exports under TYPE_CHECKING only, and loads them on first use.
    assert "tiercel.engine.engine" in graph["tiercel.engine"]
    assert "tiercel.engine" in graph["tiercel.app.app"]


def test_there_is_no_import_cycle_in_the_engine_or_the_app() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(cycle) for cycle in found)


def test_the_package_graph_collapses_modules_to_the_engines_packages() -> None:
    graph = {
        "tiercel.engine": {"tiercel.engine.a.x"},
        "tiercel.engine.a.x": {"tiercel.engine.a.y", "tiercel.engine.top"},
        "tiercel.engine.a.y": {"tiercel.engine.b"},
        "tiercel.engine.b": {"tiercel.engine.top.z"},
        "tiercel.engine.top": set(),
        "tiercel.engine.top.z": set(),
        "tiercel.app.app": {"tiercel.engine"},
    }
    assert package_graph(graph, "tiercel.engine") == {
        "tiercel.engine": {"tiercel.engine.a"},
        "tiercel.engine.a": {"tiercel.engine.top", "tiercel.engine.b"},
        "tiercel.engine.b": {"tiercel.engine.top"},
        "tiercel.engine.top": set(),
    }


def test_there_is_no_import_cycle_between_the_engines_packages() -> None:
    # Modules of different packages importing each other in a ring tie the packages together: none
    # can be moved, replaced or run elsewhere (a remote worker) without the others.
    found = cycles(package_graph(import_graph(), "tiercel.engine"))
    assert not found, "package cycles:\n" + "\n".join(" <-> ".join(cycle) for cycle in found)


@pytest.mark.parametrize("path", sorted(ENGINE.rglob("*.py")), ids=lambda p: str(p.relative_to(ENGINE)))
def test_the_engine_imports_neither_the_app_nor_a_ui_library(path: Path) -> None:
    bad = {
        m
        for m in imported_modules(path)
        if m.split(".")[0] in {"textual", "rich"} or m.startswith("tiercel.app")
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


def past_the_public_api(imported: set[str], modules: set[str]) -> set[str]:
    """The names of `imported` that reach into the engine past tiercel.engine: a module of it (taken
    from the package or imported whole), or a name taken from one."""
    deep = set()
    for name in imported:
        if not name.startswith("tiercel.engine."):
            continue
        parent = name.rpartition(".")[0]
        if name in modules:
            deep.add(name)
        elif parent != "tiercel.engine":
            deep.add(parent)
    return deep


def test_the_public_api_rule_catches_modules_reached_through_the_package() -> None:
    modules = {"tiercel.engine", "tiercel.engine.store", "tiercel.engine.store.codec"}
    # `from tiercel.engine import Engine, store`
    assert past_the_public_api(
        {"tiercel.engine", "tiercel.engine.Engine", "tiercel.engine.store"}, modules
    ) == {"tiercel.engine.store"}
    # `import tiercel.engine.store.codec`
    assert past_the_public_api({"tiercel.engine.store.codec"}, modules) == {"tiercel.engine.store.codec"}
    # `from tiercel.engine.store import Store`
    assert past_the_public_api({"tiercel.engine.store", "tiercel.engine.store.Store"}, modules) == {
        "tiercel.engine.store"
    }
    assert past_the_public_api({"tiercel.engine", "tiercel.engine.Engine"}, modules) == set()


@pytest.mark.parametrize("path", sorted(APP.rglob("*.py")), ids=lambda p: str(p.relative_to(APP)))
def test_the_app_uses_the_engine_through_its_public_api(path: Path) -> None:
    deep = past_the_public_api(imported_modules(path), set(source_modules()))
    assert not deep, f"{path.name} imports {sorted(deep)}: import from tiercel.engine (engine/__init__.py)"


def test_every_public_name_of_the_engine_resolves() -> None:
    engine = importlib.import_module("tiercel.engine")
    assert engine.__all__, "tiercel.engine exports nothing"
    missing = [name for name in engine.__all__ if getattr(engine, name, None) is None]
    assert not missing
    with pytest.raises(AttributeError):
        _ = engine.NoSuchName


def test_modules_stay_small() -> None:
    large = {
        str(path.relative_to(REPOSITORY)): lines
        for path in source_modules().values()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert large.keys() <= DECLARATIVE_TABLES, f"over {MAX_MODULE_LINES} lines: {large}"


def test_the_engine_facade_stays_small() -> None:
    lines = len((ENGINE / "engine.py").read_text().splitlines())
    assert lines <= MAX_FACADE_LINES, f"engine/engine.py has {lines} lines: move logic into its component"


@pytest.mark.parametrize(
    "path", sorted((ENGINE / "families").rglob("*.py")), ids=lambda p: str(p.relative_to(ENGINE))
)
def test_the_plugin_families_use_the_plugin_api_alone(path: Path) -> None:
    """The families ship with Tiercel but are plugins like any other: tiercel.engine.plugin is all
    of the engine they see, so that the plugin API is enough to write them."""
    engine_modules = {m for m in imported_modules(path) if m.startswith("tiercel.")}
    allowed = ("tiercel.engine.plugin", "tiercel.engine.families")
    beyond = {m for m in engine_modules if not m.startswith(allowed)}
    assert not beyond, f"{path.name} imports {sorted(beyond)}: use tiercel.engine.plugin"
