"""The `tiercel` command line: the parser, and one table from sub-command to handler.

Headless sub-commands import only the engine (never textual), so they start fast in scripts and CI.
Exit codes: 0 success, 1 failed execution or invalid flow, 2 usage error, 3 execution left PAUSED.
To add a sub-command: its parser and handler in the module of its group, and a line in `HANDLERS`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from .cache import add_parser as add_cache_parser, cmd_cache
from .common import (
    EXIT_FAILED,
    EXIT_USAGE,
    UsageError,
    report_engine_warnings,
    say,
    silence_stdout,
    verbosity_options,
)
from .completion import add_parser as add_completion_parser, cmd_completion, complete
from .control import EXECUTION_COMMANDS, add_parsers as add_execution_parsers, cmd_control
from .deploy import add_parsers as add_deploy_parsers, cmd_deploy, cmd_pull
from .evaluate import add_parser as add_eval_parser, cmd_eval
from .executions import add_parsers as add_query_parsers, cmd_executions, cmd_logs, cmd_metrics
from .flow_tests import add_parser as add_test_parser, cmd_test
from .flows import add_parsers as add_flow_parsers, cmd_flows, cmd_namespaces, cmd_revisions
from .migrate import add_parsers as add_migrate_parsers, cmd_migrate
from .plugins import add_parser as add_plugins_parser, cmd_plugins
from .run import add_parsers as add_run_parsers, cmd_run, cmd_validate
from .schema import add_parser as add_schema_parser, cmd_schema
from .server import add_server_parser, add_ui_parser, cmd_server, cmd_ui
from .triggers import add_parsers as add_trigger_parsers, cmd_backfill, cmd_triggers
from .users import add_parser as add_users_parser, cmd_users
from .worker import (
    add_list_parser as add_workers_parser,
    add_parsers as add_worker_parsers,
    cmd_worker,
    cmd_workers,
)

# A handler returns its exit code, or the coroutine that does (run here, in a fresh event loop).
Handler = Callable[[argparse.Namespace], int | Coroutine[Any, Any, int]]

HANDLERS: dict[str, Handler] = {
    "ui": cmd_ui,
    "run": cmd_run,
    "validate": cmd_validate,
    "test": cmd_test,
    "flows": cmd_flows,
    "namespaces": cmd_namespaces,
    "revisions": cmd_revisions,
    "triggers": cmd_triggers,
    "backfill": cmd_backfill,
    "server": cmd_server,
    "executions": cmd_executions,
    "logs": cmd_logs,
    "metrics": cmd_metrics,
    "eval": cmd_eval,
    "cache": cmd_cache,
    "users": cmd_users,
    "migrate": cmd_migrate,
    "deploy": cmd_deploy,
    "pull": cmd_pull,
    "worker": cmd_worker,
    "workers": cmd_workers,
    "completion": cmd_completion,
    "plugins": cmd_plugins,
    "schema": cmd_schema,
    **dict.fromkeys(EXECUTION_COMMANDS, cmd_control),
}


EXAMPLES = """examples:
  tiercel ui --flows sample_flows          open the dashboard on a folder of flows
  tiercel run flows/hello.yml              run a flow to its end, its logs as they come
  tiercel executions --state FAILED        what failed lately
  tiercel server --port 8080               the engine, its triggers and webhooks, headless
  tiercel completion bash >> ~/.bashrc     completion of commands, flows and execution ids

`tiercel COMMAND --help` tells more of each."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tiercel")
    except PackageNotFoundError:  # run from a checkout that was not installed
        return "unknown"


class _VersionAction(argparse.Action):
    """`--version`: the installed version is looked up only when asked (it costs every command 12 ms)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        say(f"tiercel {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiercel",
        description="Kestra-compatible flows, in the terminal.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    verbosity_options(parser, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In the order `tiercel --help` lists them.
    add_ui_parser(sub)
    add_run_parsers(sub)
    add_test_parser(sub)
    add_flow_parsers(sub)
    add_trigger_parsers(sub)
    add_server_parser(sub)
    add_worker_parsers(sub)
    add_workers_parser(sub)
    add_query_parsers(sub)
    add_eval_parser(sub)
    add_cache_parser(sub)
    add_users_parser(sub)
    add_execution_parsers(sub)
    add_migrate_parsers(sub)
    add_deploy_parsers(sub)
    add_plugins_parser(sub)
    add_schema_parser(sub)
    add_completion_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["__complete"]:  # asked by the shell's completion script (completion.py)
        return complete(build_parser(), words[1:])
    parser = build_parser()
    args = parser.parse_args(words)
    report_engine_warnings(getattr(args, "log_level", None), getattr(args, "verbose", 0))
    command = args.command or "ui"
    if args.command is None:
        args.flows, args.db, args.webhooks = None, None, False
    try:
        result = HANDLERS[command](args)
        return result if isinstance(result, int) else asyncio.run(result)
    except UsageError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130
    except BrokenPipeError:
        return _reader_left()
    except Exception as error:
        # The store's own errors (unreadable file, incomplete install ...) are messages, not tracebacks.
        from tiercel.engine import StoreError

        if not isinstance(error, StoreError):
            raise
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED


def _reader_left() -> int:
    """Standard output was closed early (`tiercel executions | head -2`): end quietly, as a program
    stopped by SIGPIPE does, without a traceback nor an error when Python flushes it at exit."""
    silence_stdout()
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
