"""A WorkingDirectory's `cache`: files matching its patterns come back in the next run's folder.

Kestra: WorkingDirectory.preExecuteTasks (the archive of the task, unless older than `ttl`, is
unpacked before the tasks run) and postExecuteTasks (the matching files are archived again when one
changed); its documented example caches `node_modules/**` for PT1H.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.engine.helpers import flow, logs_of, messages, run, running_engine
from tiercel.engine.model import StateType as S

CACHED = flow(
    """
    tasks:
      - id: wd
        type: io.kestra.plugin.core.flow.WorkingDirectory
        cache:
          patterns:
            - deps/**
          ttl: PT1H
        tasks:
          - id: install
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - |
                if [ -f deps/lib.txt ]; then
                  echo "cached $(cat deps/lib.txt)"
                else
                  mkdir -p deps && echo "{{ execution.id }}" > deps/lib.txt && echo installed
                fi
              - echo scratch > not-cached.txt
    """,
    flow_id="cached",
)


async def test_the_next_run_finds_the_cached_files(tmp_path: Path) -> None:
    async with running_engine(tmp_path, CACHED) as engine:
        first = await run(engine, "ns", "cached")
        second = await run(engine, "ns", "cached")
        first_logs = messages(await logs_of(engine, first.id))
        second_logs = messages(await logs_of(engine, second.id))
    assert first.state.current is S.SUCCESS and second.state.current is S.SUCCESS
    assert "installed" in first_logs
    assert f"cached {first.id}" in second_logs  # the first run's file, as it wrote it


async def test_an_expired_archive_is_not_restored(tmp_path: Path) -> None:
    async with running_engine(tmp_path, CACHED.replace("ttl: PT1H", "ttl: PT1S")) as engine:
        await run(engine, "ns", "cached")
        assert engine.storage.list("kestra:///ns/cached/cache/wd/cache.zip")
        time.sleep(1.1)  # past its ttl
        again = await run(engine, "ns", "cached")
        assert "installed" in messages(await logs_of(engine, again.id))


async def test_each_loop_value_has_its_own_cache(tmp_path: Path) -> None:
    source = flow(
        """
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b"]
            tasks:
              - id: wd
                type: io.kestra.plugin.core.flow.WorkingDirectory
                cache: {patterns: ["state.txt"]}
                tasks:
                  - id: count
                    type: io.kestra.plugin.scripts.shell.Commands
                    commands:
                      - echo "x{{ taskrun.value }}" >> state.txt
                      - echo "{{ taskrun.value }}=$(wc -l < state.txt | tr -d ' ')"
        """,
        flow_id="per_value",
    )
    async with running_engine(tmp_path, source) as engine:
        await run(engine, "ns", "per_value")
        second = await run(engine, "ns", "per_value")
        lines = messages(await logs_of(engine, second.id))
    assert "a=2" in lines and "b=2" in lines
