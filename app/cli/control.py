"""`tiercel kill`, `resume`, `restart`, `replay` and `change-status`: commands on one execution.

Each goes through `connect(db)`: to the engine that owns the database (the dashboard, `tiercel
server`) through its control channel, which carries it out while the command reports it sent; or,
when no engine owns it, to an engine started here that carries it out and waits for the execution
to end or pause, as `run` does.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tiercel.engine import describe_target

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_PAUSED,
    EXIT_USAGE,
    add_db_option,
    add_execution_argument,
    command,
    existing_db,
    full_execution_id,
    parse_pairs,
    say,
    warn_undeclared,
)

if TYPE_CHECKING:
    from tiercel.engine import Commands, ControlClient, DbTarget, Engine, StateType

EXECUTION_COMMANDS = ("kill", "resume", "restart", "replay", "change-status")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, text, examples in (
        ("kill", "kill an execution", ["tiercel kill 4wjtkzwV"]),
        (
            "resume",
            "resume a paused execution",
            [
                "tiercel resume 4wjtkzwV",
                "tiercel resume 4wjtkzwV --input approved=true --input report=./q3.pdf",
            ],
        ),
        ("restart", "run the failed tasks of an execution again", ["tiercel restart 4wjtkzwV"]),
    ):
        parser = command(sub, name, text, examples)
        add_db_option(parser)
        if name == "resume":
            parser.add_argument(
                "--input", action="append", metavar="KEY=VALUE",
                help="a value for the pause's onResume inputs, as often as needed",
            )  # fmt: skip
        add_execution_argument(parser)
    replay = command(
        sub,
        "replay",
        "run an ended execution again, from a chosen task run or the start",
        ["tiercel replay 4wjtkzwV", "tiercel replay 4wjtkzwV --from 2ZxkLm8q --revision 3"],
    )
    add_db_option(replay)
    replay.add_argument(
        "--from", dest="from_task_run", metavar="TASKRUN_ID",
        help="the task run to replay from (default: the start)",
    )  # fmt: skip
    replay.add_argument("--revision", type=int, help="the flow revision to replay with (default: the same)")
    add_execution_argument(replay)
    change = command(
        sub,
        "change-status",
        "set the state of an ended execution",
        ["tiercel change-status 4wjtkzwV SUCCESS"],
    )
    add_db_option(change)
    add_execution_argument(change)
    change.add_argument("state", help="SUCCESS, WARNING, FAILED, KILLED or CANCELLED")


async def cmd_control(args: argparse.Namespace) -> int:
    from tiercel.engine import ConnectError, ControlClient, Engine, EngineCommandError, connect, parse_state

    db = existing_db(args.db)
    args.execution_id = await full_execution_id(db, args.execution_id)
    inputs = parse_pairs(getattr(args, "input", None) or [], "--input")
    if inputs:
        await _warn_undeclared_on_resume(db, args.execution_id, inputs)
    try:
        state = parse_state(args.state) if args.command == "change-status" else None
    except EngineCommandError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    # Only the execution the command is about comes back to life in an engine started for it.
    live = {args.execution_id} if args.command in ("kill", "resume") else set()
    try:
        async with connect(db, recover=live) as commands:
            if isinstance(commands, ControlClient):
                return await _send(commands, args, inputs, state)
            assert isinstance(commands, Engine)
            return await _carry_out(commands, args, inputs, state)
    except ConnectError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE


async def _warn_undeclared_on_resume(db: DbTarget, execution_id: str, inputs: dict[str, str]) -> None:
    """Warn about the inputs no paused task of the execution declares in its onResume (ignored)."""
    from tiercel.engine import FlowParseError, StateType, Store, parse_flow

    async with await Store.open(db, readonly=True) as store:
        execution = await store.get_execution(execution_id)
        if execution is None:
            return  # the command itself says so
        found = await store.flow_source(execution.namespace, execution.flow_id, execution.flow_revision)
    if found is None:
        return
    try:
        flow = parse_flow(found[1])
    except FlowParseError:
        return
    for run in execution.task_runs:
        task = flow.tasks_by_id.get(run.task_id)
        if run.state.current is StateType.PAUSED and task is not None:
            declared = [spec.id for spec in task.props.get("onResume") or ()]
            warn_undeclared(inputs, declared, f"the paused task `{run.task_id}`", "onResume input")


async def _call(
    commands: Commands, args: argparse.Namespace, inputs: dict[str, str], state: StateType | None
) -> str:
    """The command on `commands`; the id of the execution it is about (replay makes a new one)."""
    execution_id: str = args.execution_id
    if args.command == "kill":
        await commands.kill(execution_id)
    elif args.command == "resume":
        await commands.resume(execution_id, inputs)
    elif args.command == "replay":
        return str(await commands.replay(execution_id, args.from_task_run, revision=args.revision))
    elif args.command == "change-status":
        assert state is not None  # parsed by cmd_control
        await commands.change_status(execution_id, state)
    else:
        await commands.restart(execution_id)
    return execution_id


async def _send(
    client: ControlClient, args: argparse.Namespace, inputs: dict[str, str], state: StateType | None
) -> int:
    """Hand the command to the engine that owns the database; it carries it out on its own."""
    from tiercel.engine import EngineCommandError, InputError

    db = client.db
    try:
        execution_id = await _call(client, args, inputs, state)
    except OSError as error:
        where = describe_target(db)
        say(
            f"tiercel: {where} is owned by another Tiercel process that does not answer ({error})",
            err=True,
        )
        return EXIT_FAILED
    except InputError as error:  # the caller's own values were wrong
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    except EngineCommandError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    new = execution_id if args.command == "replay" else None
    if new:
        say(new)
    where = describe_target(db)
    say(f"{args.command} sent to the engine running on {where}", err=bool(new))
    return EXIT_OK


async def _carry_out(
    engine: Engine, args: argparse.Namespace, inputs: dict[str, str], state: StateType | None
) -> int:
    """Carry the command out in the engine started for it, and wait for the execution to settle."""
    from tiercel.engine import EngineCommandError, InputError, StateType

    try:
        execution_id = await _call(engine, args, inputs, state)
        if args.command == "replay":
            say(f"Execution {execution_id} replays {args.execution_id}", err=True)
        execution = await engine.wait(execution_id, until_paused=True)
        if args.command == "kill":
            # The subflow executions killed with it end too before this engine stops; it runs
            # nothing else (it resumed only the killed execution and the ones below it).
            for other in engine.live_execution_ids():
                await engine.wait(other, until_paused=True)
    except EngineCommandError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    except InputError as error:  # resume: the onResume inputs given are missing or wrong
        say(f"tiercel: invalid inputs to resume {args.execution_id}:", err=True)
        for message in error.errors:
            say(f"  {message}", err=True)
        return EXIT_USAGE
    current = execution.state.current
    say(f"Execution {execution.id} is {current.value}")
    if args.command == "change-status" or (args.command == "kill" and current.is_terminated):
        return EXIT_OK
    if current in (StateType.SUCCESS, StateType.WARNING):
        return EXIT_OK
    return EXIT_PAUSED if current is StateType.PAUSED else EXIT_FAILED
