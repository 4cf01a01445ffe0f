"""The listing commands print aligned columns whatever the length of ids, flow ids and trigger ids."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from tests.app.test_cli import (
    read_until,
    start,
    tiercel,
    write,
)
from tests.waiting import HANG
from tiercel.engine.model import Execution, State, StateType
from tiercel.engine.store import Store

LONG_NAMESPACE = "acme.a_rather_deep.namespace_for_the_finance_department"
LONG_FLOW = "a_flow_whose_id_is_much_longer_than_twenty_eight_characters"


def flow(namespace: str, flow_id: str, triggers: tuple[str, ...] = ()) -> str:
    schedules = "".join(
        f"  - id: {trigger}\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: '0 3 * * *'\n"
        for trigger in triggers
    )
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - id: log\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hi\n"
        + (f"triggers:\n{schedules}" if schedules else "")
    )


def column_starts(line: str, count: int) -> list[int]:
    """Where the first `count` space-separated cells of a line start."""
    starts = [match.start() for match in re.finditer(r"\S+", line)][:count]
    assert len(starts) == count, line
    return starts


def assert_aligned(lines: list[str], count: int) -> None:
    assert len(lines) >= 2, lines
    starts = {tuple(column_starts(line, count)) for line in lines}
    assert len(starts) == 1, "\n".join(lines)
    assert all(not line.endswith(" ") for line in lines), lines


def test_executions_align_whatever_the_length_of_ids(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    rows = [
        ("x", "a", "f"),
        ("an-execution-id-imported-from-elsewhere-0123456789", LONG_NAMESPACE, LONG_FLOW),
        ("4kXb9QeLr2ZpYv7sT1uWc3", "acme", "hello"),
    ]

    async def save() -> None:
        async with await Store.open(db) as store:
            for execution_id, namespace, flow_id in rows:
                state = State.new().to(StateType.RUNNING).to(StateType.SUCCESS)
                await store.save_execution(Execution(execution_id, namespace, flow_id, 1, state))

    asyncio.run(save())
    result = tiercel("executions", "--db", db)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert_aligned(lines, 4)
    assert [line.split()[0] for line in lines] == [row[0] for row in reversed(rows)]
    assert f"{LONG_NAMESPACE}.{LONG_FLOW}" in result.stdout
    listed = json.loads(tiercel("executions", "--db", db, "--json").stdout)
    assert [e["id"] for e in listed] == [row[0] for row in reversed(rows)]


def test_flows_and_namespaces_align_whatever_the_length_of_ids(flows_dir: Path) -> None:
    write(flows_dir, "short.yml", flow("a", "b"))
    write(flows_dir, "long.yml", flow(LONG_NAMESPACE, LONG_FLOW))
    write(flows_dir, "mid.yml", flow("acme.ops", "nightly", ("every_night",)))
    flows = tiercel("flows", "--flows", flows_dir)
    assert flows.returncode == 0, flows.stderr
    assert_aligned(flows.stdout.splitlines(), 6)

    namespaces = tiercel("namespaces", "--flows", flows_dir)
    headings = [line for line in namespaces.stdout.splitlines() if "(" in line]
    assert len(headings) == 5, namespaces.stdout  # a; acme, its two levels down to the long one, ops
    assert len({line.index("(") for line in headings}) == 1, namespaces.stdout


def test_triggers_align_whatever_the_length_of_ids(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    write(flows_dir, "short.yml", flow("a", "b", ("t",)))
    write(flows_dir, "long.yml", flow(LONG_NAMESPACE, LONG_FLOW, ("a_trigger_with_a_long_name_indeed", "x")))
    server = start("server", "--flows", flows_dir, "--db", db, "--port", "0")
    try:
        read_until(server.stderr, b"webhooks on http://", timeout=HANG)
        through_engine = tiercel("triggers", "--db", db)
    finally:
        server.send_signal(15)
        server.communicate(timeout=HANG)
    stored = tiercel("triggers", "--db", db)  # read from the store once no engine runs
    for result in (through_engine, stored):
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 3, result.stdout
        assert_aligned(lines, 5 if result is through_engine else 3)
        # The ids apart, as --enable and --disable take them.
        assert lines[0].split()[:3] == ["a", "b", "t"], lines
