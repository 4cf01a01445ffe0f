"""A new execution is stored with its first step, in one write: its submitter hears back once that
write is durable, and when it fails, nothing of the execution runs and the submitter is told."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tiercel.engine.model import StateType
from tiercel.engine.store import StoreError

from .helpers import run, running_engine

# The input's default makes each execution's first write larger than the free room of the pages
# the database already has.
FLOW = """
id: f
namespace: ns
inputs:
  - {{id: padding, type: STRING, defaults: "{padding}"}}
tasks:
  - id: mark
    type: io.kestra.plugin.scripts.shell.Commands
    commands: ["touch {marks}/{{{{ execution.id }}}}"]
"""


@pytest.mark.sqlite_only
async def test_a_new_execution_whose_first_write_fails_is_not_run_and_its_submitter_is_told(
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    source = FLOW.format(padding="x" * 50_000, marks=marks)
    async with running_engine(tmp_path, source) as engine:
        await engine.store.flush()
        with sqlite3.connect(engine.store.path) as conn:
            pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
        await engine.store.set_max_pages(pages)  # the disk is full
        with pytest.raises(StoreError, match="full"):
            await asyncio.wait_for(engine.trigger("ns", "f"), 10)
        assert engine.live_execution_ids() == []
        assert await engine.store.list_executions() == []
        await engine.store.set_max_pages(None)  # space returns
        done = await run(engine, "ns", "f")
    assert done.state.current is StateType.SUCCESS
    assert [path.name for path in marks.iterdir()] == [done.id]  # the refused one never ran
