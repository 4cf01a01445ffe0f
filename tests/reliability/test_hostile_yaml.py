"""Hostile flow files in the watched folder of a running engine: refused fast, cheaply, with their line."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.waiting import until
from tiercel.engine.engine import Engine
from tiercel.engine.model import StateType
from tiercel.engine.parser import MAX_FLOW_BYTES, FlowError
from tiercel.engine.store import Store

pytestmark = pytest.mark.reliability

VALID = """\
id: steady
namespace: rel.hostile
tasks:
  - id: hello
    type: io.kestra.plugin.core.debug.Return
    format: still here
"""


def alias_bomb() -> str:
    """Eight levels of nine aliases: 9**8 (~43 million) values from under 300 bytes of text."""
    lines = ["id: b", "namespace: x", "a: &a [x,x,x,x,x,x,x,x,x]"]
    for previous, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join([*lines, "tasks: *h"]) + "\n"


PYTHON_TAG = """\
id: tagged
namespace: rel.hostile
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: !!python/object/apply:os.system ["touch MARKER"]
"""

DUPLICATE_KEYS = """\
id: twice
namespace: rel.hostile
tasks:
  - id: t
    type: io.kestra.plugin.core.debug.Return
    format: one
    format: two
"""


def huge_flow() -> str:
    """A syntactically valid flow of 10 MB (one long log message)."""
    head = "id: huge\nnamespace: rel.hostile\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Log\n"
    return head + "    message: " + "x" * (10 * 1024 * 1024) + "\n"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "steady.yml").write_text(VALID)
    store = await Store.open(tmp_path / "db" / "tiercel.db")
    engine = Engine(store, flows_dir=flows)
    await engine.start(control=False, watch=True, triggers=False)
    assert engine.watcher is not None
    await asyncio.wait_for(engine.watcher.ready.wait(), 10)
    try:
        yield engine
    finally:
        await engine.stop()


async def measured_sync(engine: Engine, path: Path) -> tuple[float, float, list[FlowError]]:
    """Hand one file to the catalog as the watcher does: seconds, MB of peak memory growth, errors."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        await engine.sync_flows({path})
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return elapsed, peak / 1e6, engine.flow_errors.get(str(path), [])


async def still_runs(engine: Engine) -> None:
    execution_id = await engine.trigger("rel.hostile", "steady")
    execution = await asyncio.wait_for(engine.wait(execution_id), 20)
    assert execution.state.current is StateType.SUCCESS


async def test_alias_bomb_is_refused_in_under_100_ms_and_10_mb(engine: Engine, tmp_path: Path) -> None:
    text = alias_bomb()
    assert len(text.encode()) <= 300
    figures = []
    for attempt in range(3):
        path = engine.flows_dir / f"bomb_{attempt}.yml"  # type: ignore[operator]
        path.write_text(text)
        figures.append(await measured_sync(engine, path))
    best = min(figures)
    print(
        f"\nalias bomb ({len(text.encode())} bytes): refused in {best[0] * 1000:.1f} ms, "
        f"peak memory growth {max(f[1] for f in figures):.2f} MB"
    )
    for _, megabytes, errors in figures:
        assert megabytes < 10
        assert len(errors) == 1 and "alias bomb" in errors[0].message
        assert errors[0].line is not None
    assert best[0] < 0.100
    assert ("b", "x") not in engine.flows
    await still_runs(engine)


async def test_python_tags_are_refused_and_nothing_runs(engine: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "python-tag-ran"
    path = engine.flows_dir / "tagged.yml"  # type: ignore[operator]
    path.write_text(PYTHON_TAG.replace("MARKER", str(marker)))
    elapsed, megabytes, errors = await measured_sync(engine, path)
    print(f"\n!!python/object tag: refused in {elapsed * 1000:.1f} ms ({megabytes:.2f} MB)")
    assert len(errors) == 1
    assert "Python tags" in errors[0].message and "!!python/object/apply:os.system" in errors[0].message
    assert (errors[0].path, errors[0].line) == (str(path), 6)
    assert ("rel.hostile", "tagged") not in engine.flows
    assert not marker.exists()


async def test_duplicate_keys_are_reported_with_their_line(engine: Engine) -> None:
    path = engine.flows_dir / "twice.yml"  # type: ignore[operator]
    path.write_text(DUPLICATE_KEYS)
    elapsed, _, errors = await measured_sync(engine, path)
    print(f"\nduplicate key: reported in {elapsed * 1000:.1f} ms: {errors[0] if errors else None}")
    assert len(errors) == 1
    assert (errors[0].line, errors[0].column) == (7, 5)
    assert "Duplicate key `format`" in errors[0].message and "line 6" in errors[0].message
    assert ("rel.hostile", "twice") not in engine.flows


async def test_ten_megabyte_file_is_refused(engine: Engine) -> None:
    path = engine.flows_dir / "huge.yml"  # type: ignore[operator]
    path.write_text(huge_flow())
    elapsed, megabytes, errors = await measured_sync(engine, path)
    print(f"\n10 MB flow: refused in {elapsed * 1000:.1f} ms, peak memory growth {megabytes:.2f} MB")
    assert len(errors) == 1
    assert f"{MAX_FLOW_BYTES:,}-byte limit" in errors[0].message and errors[0].path == str(path)
    assert megabytes < 10  # refused from its size: the file is never read whole
    assert ("rel.hostile", "huge") not in engine.flows


async def test_the_watcher_reports_every_hostile_file_and_the_valid_flow_runs(
    engine: Engine, tmp_path: Path
) -> None:
    folder = engine.flows_dir
    assert folder is not None
    files = {
        folder / "bomb.yml": alias_bomb(),
        folder / "tagged.yml": PYTHON_TAG.replace("MARKER", str(tmp_path / "ran")),
        folder / "twice.yml": DUPLICATE_KEYS,
        folder / "huge.yml": huge_flow(),
    }
    started = time.perf_counter()
    for path, text in files.items():
        path.write_text(text)
    wanted = {str(path) for path in files}
    await until(lambda: wanted <= set(engine.flow_errors), what="the report of every hostile file")
    print(f"\nwatcher: 4 hostile files reported {time.perf_counter() - started:.2f} s after being saved")
    for key in wanted:
        assert len(engine.flow_errors[key]) == 1, engine.flow_errors[key]
    assert list(engine.flows) == [("rel.hostile", "steady")]
    await still_runs(engine)
