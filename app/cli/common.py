"""What every `tiercel` command shares: exit codes, usage errors, where the database and the flows
folder are, and printing.

Exit codes: 0 success, 1 failed execution or invalid flow, 2 usage error, 3 execution left PAUSED.
Nothing here imports more than the engine's text helpers at import time: `tiercel --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tiercel.engine import DbTarget, as_target, describe_target, target_exists, visible

if TYPE_CHECKING:
    from tiercel.engine import Engine, ExecutionIds, Flow, InputError, LogEntry

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED = 0, 1, 2, 3
# Task runs a worker of a cluster runs at once, unless told.
DEFAULT_CONCURRENCY = 16


def stop_requested() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT: a long-running command's cue to stop cleanly."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {value}")
    return value


# -- parsers ------------------------------------------------------------------------------------


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    examples: Sequence[str],
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A sub-command's parser: its one-line summary (or a longer description), and examples of it
    under its options."""
    parser = sub.add_parser(
        name,
        help=summary,
        description=description or summary[:1].upper() + summary[1:] + ".",
        epilog="examples:\n" + "\n".join(f"  {example}" for example in examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbosity_options(parser, argparse.SUPPRESS)  # also after the command: `tiercel run -v ...`
    return parser


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", metavar="FILE|URL",
        help="the store: an SQLite file or a postgresql:// URL "
        "(default: TIERCEL_DB, else .tiercel/tiercel.db in the current folder)",
    )  # fmt: skip


def add_flows_option(
    parser: argparse.ArgumentParser, default: str = "./flows if there is one, else ."
) -> None:
    parser.add_argument("--flows", metavar="DIR", help=f"the flows folder (default: {default})")


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_value_options(parser: argparse.ArgumentParser, *, labels: bool = True) -> None:
    """--input (and --label) KEY=VALUE, each as often as needed."""
    parser.add_argument(
        "--input", action="append", metavar="KEY=VALUE",
        help="an input of the flow, as often as needed (a FILE input takes a local file's path)",
    )  # fmt: skip
    if labels:
        parser.add_argument(
            "--label", action="append", metavar="KEY=VALUE",
            help="a label of the execution, as often as needed",
        )  # fmt: skip


def add_execution_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("execution_id", help="the execution's id, or the start of it when no other starts so")


class UsageError(Exception):
    """A wrong command, option or argument: exit code 2 with the message."""


# -- locations --------------------------------------------------------------------------------


# The default database, for every command: in the folder the command runs from, so that `run FILE`,
# `run --flows DIR`, the dashboard and `executions` started in one folder all see the same executions,
# and a database never lands outside the current folder (or the one --db names).
DEFAULT_DB = Path(".tiercel") / "tiercel.db"


def default_flows_dir() -> Path:
    return Path("flows") if Path("flows").is_dir() else Path(".")


def flows_folder(name: str | None) -> Path:
    """The flows folder --flows names (it must exist: a usage error otherwise), else the default one."""
    if not name:
        return default_flows_dir()
    folder = Path(name)
    if not folder.is_dir():
        raise UsageError(f"{name}: no such flows folder")
    return folder


def resolve_db(db: str | None) -> DbTarget:
    """--db, else TIERCEL_DB, else .tiercel/tiercel.db in the current folder: an SQLite file, or a
    PostgreSQL database by its postgresql:// URL."""
    if db:
        return as_target(db)
    if os.environ.get("TIERCEL_DB"):
        return as_target(os.environ["TIERCEL_DB"])
    return DEFAULT_DB


def add_storage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage", metavar="DIR",
        help="the folder of the files of executions (kestra:// URIs), a mount every machine of a "
        "cluster shares. Default: TIERCEL_STORAGE, else the database for a PostgreSQL store (each "
        "machine keeps copies beside it), a folder beside an SQLite file",
    )  # fmt: skip


def use_storage(args: argparse.Namespace) -> None:
    """--storage, for the engine this command opens (it reads TIERCEL_STORAGE)."""
    if getattr(args, "storage", None):
        os.environ["TIERCEL_STORAGE"] = str(Path(args.storage).expanduser().absolute())


def existing_db(db: str | None) -> DbTarget:
    """The database a command acts on, which must exist already (a usage error otherwise)."""
    target = resolve_db(db)
    if not target_exists(target):
        raise UsageError(f"no database at {describe_target(target)} (give --db or set TIERCEL_DB)")
    return target


async def full_execution_id(db: DbTarget, text: str) -> str:
    """The execution id a command names: a whole id, or any prefix of one id alone.

    Looked up in the database read-only, so it works the same whether an engine owns it or not. Text
    that starts no id comes back as it is: the command then says there is no such execution.

    Raises:
        UsageError: Several ids start with `text` (the message lists some).
    """
    from tiercel.engine import Store

    async with await Store.open(db, readonly=True) as store:
        return await execution_id_in(store, text)


async def execution_id_in(ids: ExecutionIds, text: str) -> str:
    """`full_execution_id` on an open store."""
    from tiercel.engine import AmbiguousExecutionIdError, resolve_execution_id

    try:
        return await resolve_execution_id(ids, text)
    except AmbiguousExecutionIdError as error:
        raise UsageError(str(error)) from None


def flow_files(paths: Sequence[str]) -> list[Path]:
    """The YAML files named, and those under the folders named, as the watcher sees them: without
    dot-folders or dot-files (.git, .venv, .tiercel) and without following links to folders."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found: list[Path] = []
            for root, dirs, names in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                yaml = (n for n in names if Path(n).suffix in (".yml", ".yaml"))
                found.extend(Path(root) / n for n in yaml if not n.startswith("."))
            files.extend(sorted(p for p in found if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return files


def parse_pairs(pairs: Sequence[str], what: str) -> dict[str, str]:
    """KEY=VALUE arguments into a dict."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} `{pair}` must look like KEY=VALUE")
        result[key] = value
    return result


# -- output -----------------------------------------------------------------------------------------


def silence_stdout() -> None:
    """Standard output was closed early (`| head`): what is still written, or flushed at exit, goes
    nowhere instead of raising BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def say(text: str = "", *, err: bool = False, shown: bool = False) -> None:
    """Print one message; every command prints through here.

    What is printed holds untrusted text (log lines, ids, error messages quoting flow files), so
    control characters are shown as ``\\xNN`` rather than obeyed by the terminal, unless `shown`
    says the text was made visible already (it may hold our own colours). JSON output is left as it
    is: ``json.dumps`` already escapes them (keep its default ``ensure_ascii``).
    """
    print(text if shown else visible(text), file=sys.stderr if err else sys.stdout, flush=True)


class LogFormat:
    """How long-running commands (`server`, `worker`) write their lines on stderr: text, or one JSON
    object a line (`--log-format json`) for a log collector."""

    json = False


def log_record(level: str, event: str, message: str, fields: dict[str, object]) -> str:
    """A line of a long-running command's log, in the chosen format, after its time (UTC)."""
    from tiercel.engine import iso, utcnow

    now = iso(utcnow())
    if LogFormat.json:
        return json.dumps({"time": now, "level": level, "event": event, "message": message, **fields})
    return f"{now} {message}"


def add_log_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text",
        help="the lines on stderr as text (default), or one JSON object a line for a log collector",
    )  # fmt: skip


def use_log_format(args: argparse.Namespace) -> None:
    LogFormat.json = args.log_format == "json"


class _SayHandler(logging.Handler):
    """The engine's warnings and errors, printed through `say`: they may quote a webhook's body."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if LogFormat.json:
                say(log_record(record.levelname, "engine", message, {"logger": record.name}), err=True)
            else:
                say(f"tiercel: {message}", err=True)
        except Exception:
            self.handleError(record)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def verbosity_options(parser: argparse.ArgumentParser, default: object) -> None:
    """-v and --log-level: which of the engine's own lines reach stderr (its warnings, by default)."""
    parser.add_argument(
        "-v", "--verbose", action="count", default=default,
        help="say more of what the engine does: -v its INFO lines, -vv its DEBUG lines",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, type=str.upper, default=default,
        help="the least level of the engine's lines printed on stderr (default: WARNING)",
    )  # fmt: skip


def report_engine_warnings(level: str | None = None, verbose: int = 0) -> None:
    """Print the engine's lines from `level` up (from WARNING, or INFO with -v, DEBUG with -vv) on
    stderr (instead of Python's bare last resort)."""
    chosen = getattr(logging, level) if level else (logging.WARNING, logging.INFO)[min(verbose, 1)]
    if not level and verbose >= 2:
        chosen = logging.DEBUG
    logger = logging.getLogger("tiercel")
    logger.setLevel(chosen)
    for handler in logger.handlers:
        if isinstance(handler, _SayHandler):
            handler.setLevel(chosen)
            return
    logger.addHandler(_SayHandler(chosen))


def report_input_error(error: InputError, heading: str) -> None:
    """Inputs the engine refused: the heading, then one problem a line."""
    say(f"tiercel: {heading}", err=True)
    for message in error.errors:
        for line in message.splitlines():
            say(f"  {line}", err=True)


def warn_undeclared(given: Iterable[str], declared: Sequence[str], owner: str, kind: str = "input") -> None:
    """One warning line for the inputs given that `owner` does not declare.

    Kestra ignores them, and so does the engine; said here so that a typo in a name does not pass
    unseen (the input then runs with its default).
    """
    unknown = [name for name in given if name not in declared]
    if not unknown:
        return
    names = ", ".join(f"`{name}`" for name in unknown)
    known = f"its {kind}s: {', '.join(declared)}" if declared else f"it declares no {kind}s"
    plural = "s" if len(unknown) > 1 else ""
    say(f"tiercel: warning: {owner} does not declare the {kind}{plural} {names}, ignored ({known})", err=True)


def warn_undeclared_inputs(given: Iterable[str], flow: Flow) -> None:
    warn_undeclared(given, [spec.id for spec in flow.inputs], f"flow {flow.namespace}.{flow.id}")


def format_log(entry: LogEntry) -> str:
    """A log line as `run` and `logs` print it (before `visible`)."""
    # The level formats as its name (a StrEnum), without the enum's slower `.value`.
    return f"{entry.stamp} {entry.level:<5} {entry.task_id or '-':<20} {entry.message}"


# -- the engine of a worker process ---------------------------------------------------------------


async def open_member_engine(db: DbTarget, flows_dir: Path | None) -> Engine | None:
    """An Engine on a cluster's store as a member (not started): it writes the tables it shares with
    the servers without owning the store. None when it cannot be had (the message is said)."""
    from tiercel.engine import Engine, SecretError, Store, StoreError

    try:
        store = await Store.open(db, member=True)
    except StoreError as error:
        say(f"tiercel: {error}", err=True)
        return None
    try:
        return Engine(store, flows_dir=flows_dir)
    except SecretError as error:
        say(f"tiercel: {error} (TIERCEL_SECRETS_FILE)", err=True)
        await store.close()
        return None
