"""`tiercel eval`: render an expression against an execution, as a task of it would see it.

The engine that owns the database renders it (through `connect`: its functions and masking apply);
without one, an engine is started here for the render. The result is printed as it rendered, with
control characters made visible; an expression that fails prints its error, a caret under the place
when it can be told, and exits 1.
"""

from __future__ import annotations

import argparse
import json

from tiercel.engine import visible

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_db_option,
    add_execution_argument,
    add_json_option,
    command,
    existing_db,
    full_execution_id,
    say,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = command(
        sub,
        "eval",
        "render an expression against an execution (its outputs, inputs, trigger, labels)",
        [
            "tiercel eval 4wjtkzwV '{{ outputs.extract.uri }}'",
            "tiercel eval 4wjtkzwV --task load '{{ taskrun.attemptsCount }}'",
            "tiercel eval --json 4wjtkzwV '{{ inputs | toJson }}'",
        ],
    )
    add_db_option(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--task", metavar="TASK_ID", help="as the latest task run of this task sees it")
    which.add_argument("--task-run", metavar="TASKRUN_ID", help="as this task run sees it")
    add_json_option(parser, "Kestra's eval answer (result, error) with the error's position")
    add_execution_argument(parser)
    parser.add_argument("expression", help="the text to render, e.g. '{{ outputs.t.value }}'")


async def cmd_eval(args: argparse.Namespace) -> int:
    from tiercel.engine import ConnectError, EngineCommandError, connect

    db = existing_db(args.db)
    execution_id = await full_execution_id(db, args.execution_id)
    try:
        async with connect(db, recover=set()) as commands:
            task_run_id = args.task_run
            if args.task:
                execution = await commands.execution(execution_id)
                runs = [run for run in execution.task_runs if run.task_id == args.task] if execution else []
                if execution is not None and not runs:
                    say(f"tiercel: execution {execution_id} has no task run of task `{args.task}`", err=True)
                    return EXIT_FAILED
                task_run_id = runs[-1].id if runs else None
            found = await commands.evaluate(execution_id, task_run_id, args.expression)
    except ConnectError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    except EngineCommandError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    if args.json:
        say(json.dumps(found.to_json(), indent=2))
    elif found.error is None:
        say(visible(found.result or ""))
    else:
        say(f"tiercel: {visible(found.error)}", err=True)
        if found.line is not None and found.column is not None:
            line = args.expression.split("\n")[found.line - 1]
            say(f"  {visible(line)}\n  {' ' * (found.column - 1)}^", err=True)
    return EXIT_OK if found.error is None else EXIT_FAILED
