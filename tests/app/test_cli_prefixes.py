"""Execution ids on the command line: every command that takes one accepts any unique prefix of it,
with or without an engine owning the database; an ambiguous prefix is a usage error naming matches."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.app.test_cli import (
    FAILING,
    GATED,
    PAUSING,
    clean_env,
    executions,
    read_until,
    run_json,
    start,
    task_run,
    tiercel,
    write,
)
from tests.waiting import HANG, blocking_until
from tiercel.engine.model import Execution, State, StateType
from tiercel.engine.store import Store
from tiercel.engine.store.queries import Queries

# Seven ids that share a prefix no random id is likely to have (62**-6), in their sorted order.
TWINS = [f"zzTwin{index}x" for index in range(7)]


def stored(db: Path, *ids: str) -> None:
    """Ended executions with these ids in the database (of a flow that no engine knows)."""

    async def save() -> None:
        async with await Store.open(db) as store:
            for execution_id in ids:
                state = State.new().to(StateType.RUNNING).to(StateType.SUCCESS)
                await store.save_execution(Execution(execution_id, "acme", "ghost", 1, state))

    asyncio.run(save())


def near(execution_id: str) -> str:
    """An id sharing the first 4 characters of `execution_id` and no more."""
    fifth = "0" if execution_id[4] != "0" else "1"
    return execution_id[:4] + fifth + "z" * (len(execution_id) - 5)


def state_of(db: Path, execution_id: str) -> str:
    return str(next(e for e in executions(db) if e["id"] == execution_id)["state"]["current"])


def test_each_execution_command_takes_a_unique_prefix(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    _, paused = run_json(write(flows_dir, "pausing.yml", PAUSING), "--db", db)
    _, failed = run_json(write(flows_dir, "gated.yml", GATED), "--db", db)
    _, doomed = run_json(write(flows_dir, "pausing.yml", PAUSING), "--db", db)
    stored(db, near(paused["id"]), near(failed["id"]), near(doomed["id"]))

    logs = tiercel("logs", "--db", db, failed["id"][:5])
    assert logs.returncode == 0, logs.stderr
    assert "first" in logs.stdout

    resumed = tiercel("resume", "--db", db, paused["id"][:5])
    assert resumed.returncode == 0, resumed.stderr
    assert f"Execution {paused['id']} is SUCCESS" in resumed.stdout

    killed = tiercel("kill", "--db", db, doomed["id"][:5])
    assert killed.returncode == 0, killed.stderr
    assert state_of(db, doomed["id"]) == "KILLED"

    restarted = tiercel("restart", "--db", db, failed["id"][:5], env=clean_env(ENV_GO="yes"))
    assert restarted.returncode == 0, restarted.stderr
    assert state_of(db, failed["id"]) == "SUCCESS"

    replayed = tiercel("replay", "--db", db, failed["id"][:5])
    assert replayed.returncode == 1, replayed.stderr  # the gate is closed again without ENV_GO
    assert f"replays {failed['id']}" in replayed.stderr

    changed = tiercel("change-status", "--db", db, doomed["id"][:5], "success")
    assert changed.returncode == 0, changed.stderr
    assert state_of(db, doomed["id"]) == "SUCCESS"


@pytest.mark.parametrize(
    "command",
    [["logs"], ["kill"], ["resume"], ["restart"], ["replay"], ["change-status", "{id}", "SUCCESS"]],
    ids=lambda command: command[0],
)
def test_an_ambiguous_prefix_is_a_usage_error_naming_a_few_matches(
    tmp_path: Path, command: list[str]
) -> None:
    db = tmp_path / "t.db"
    stored(db, *TWINS)
    argv = [part.format(id="zzTwin") for part in command]
    if len(argv) == 1:
        argv.append("zzTwin")
    result = tiercel(*argv, "--db", db)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert all(twin in result.stderr for twin in TWINS[:5]), result.stderr
    assert TWINS[5] not in result.stderr and TWINS[6] not in result.stderr
    assert "..." in result.stderr and "Traceback" not in result.stderr
    assert {e["state"]["current"] for e in executions(db)} == {"SUCCESS"}  # nothing was done


def test_two_matches_are_both_named_without_dots(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    stored(db, "abc1", "abc2", "abd3")
    result = tiercel("logs", "--db", db, "ab")
    assert result.returncode == 2
    assert "abc1, abc2, abd3" in result.stderr and "..." not in result.stderr
    assert tiercel("logs", "--db", db, "abd").returncode == 0


def test_an_unknown_id_keeps_its_message(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    stored(db, *TWINS)
    logs = tiercel("logs", "--db", db, "zzNope")
    assert logs.returncode == 1 and "no execution zzNope" in logs.stderr
    kill = tiercel("kill", "--db", db, "zzNope")
    assert kill.returncode == 1 and "No execution zzNope" in kill.stderr


def test_a_whole_id_that_starts_other_ids_is_that_execution(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    stored(db, "short", "shorter", "shortest")
    result = tiercel("change-status", "--db", db, "short", "FAILED")
    assert result.returncode == 0, result.stderr
    assert {e["id"]: e["state"]["current"] for e in executions(db)} == {
        "short": "FAILED",
        "shorter": "SUCCESS",
        "shortest": "SUCCESS",
    }


@pytest.mark.parametrize("prefix", ["a%", "a_", "a*", "a[", "a?"])
def test_pattern_characters_in_a_prefix_match_only_themselves(tmp_path: Path, prefix: str) -> None:
    db = tmp_path / "t.db"
    stored(db, prefix + "1", "aX2", "ab3", "a%%4" if prefix != "a%" else "a_5")
    result = tiercel("change-status", "--db", db, prefix, "FAILED")
    assert result.returncode == 0, result.stderr
    assert [e["id"] for e in executions(db) if e["state"]["current"] == "FAILED"] == [prefix + "1"]


def test_the_prefix_query_reads_the_id_index(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    stored(db, *TWINS)
    query = Queries("executions")["select_execution_ids_from"]
    with sqlite3.connect(db) as conn:
        plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", ("a", "b", 6)))
    assert plan.startswith("SEARCH executions USING COVERING INDEX") and "(id>? AND id<?)" in plan, plan


def test_prefixes_reach_the_engine_that_owns_the_database(flows_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    _, paused = run_json(write(flows_dir, "pausing.yml", PAUSING), "--db", db)
    _, failed = run_json(write(flows_dir, "failing.yml", FAILING), "--db", db)
    stored(db, near(paused["id"]), *TWINS)
    server = start("server", "--flows", flows_dir, "--db", db, "--port", "0")
    try:
        read_until(server.stderr, b"webhooks on http://", timeout=HANG)
        ambiguous = tiercel("resume", "--db", db, paused["id"][:4])
        assert ambiguous.returncode == 2 and paused["id"] in ambiguous.stderr
        assert tiercel("kill", "--db", db, "zzTwin").returncode == 2
        resumed = tiercel("resume", "--db", db, paused["id"][:5])
        assert resumed.returncode == 0, resumed.stderr
        assert "resume sent" in resumed.stdout
        blocking_until(lambda: state_of(db, paused["id"]) == "SUCCESS", what="the resumed execution's end")
        logs = tiercel("logs", "--db", db, failed["id"][:6])
        assert logs.returncode == 0 and "it broke" in logs.stdout
        changed = tiercel("change-status", "--db", db, failed["id"][:6], "WARNING")
        assert changed.returncode == 0, changed.stderr
        blocking_until(lambda: state_of(db, failed["id"]) == "WARNING", what="the changed status")
        assert task_run(executions(db, "--flow", "pausing")[0], "after")["state"]["current"] == "SUCCESS"
    finally:
        server.send_signal(15)
        server.communicate(timeout=HANG)
    assert server.returncode == 0
