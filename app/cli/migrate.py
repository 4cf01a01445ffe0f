"""`tiercel migrate`: a store's whole history copied into a new store, SQLite into PostgreSQL or back."""

from __future__ import annotations

import argparse

from .common import EXIT_FAILED, EXIT_OK, UsageError, command, say


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = command(
        sub,
        "migrate",
        "copy a store into a new one (an SQLite file into PostgreSQL, or back)",
        [
            "tiercel migrate --from .tiercel/tiercel.db --to postgresql://tiercel@db/tiercel",
            "tiercel migrate --from postgresql://tiercel@db/tiercel --to backup.db",
        ],
        "Copy every flow revision, execution, task run, log line, KV pair, trigger state and file "
        "of executions of one store into a new, empty one. Stop the engines that use the source "
        "first: the copy takes its lock.",
    )
    migrate.add_argument("--from", dest="source", required=True, help="the store to copy: a file or a URL")
    migrate.add_argument("--to", dest="target", required=True, help="the new store: a file or a URL")


async def cmd_migrate(args: argparse.Namespace) -> int:
    from tiercel.engine import (
        Store,
        StoreError,
        as_target,
        copy_files,
        copy_store,
        describe_target,
        target_exists,
    )

    source, target = as_target(args.source), as_target(args.target)
    if not target_exists(source):
        raise UsageError(f"no store at {describe_target(source)}")
    if source == target:
        raise UsageError("--from and --to name the same store")

    def progress(table: str, rows: int) -> None:
        if rows % 100_000 == 0:  # a line now and then on a long copy (pages hold 2,000 rows)
            say(f"{table}: {rows:,} rows so far", err=True)

    try:
        # Read-only first: a store that is not there (a mistyped URL) is not made by the copy.
        async with await Store.open(source, readonly=True):
            pass
        async with await Store.open(source) as old, await Store.open(target) as new:
            copied = await copy_store(old, new, progress)
            files = copy_files(old, new)
    except StoreError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_FAILED
    for table, rows in copied.items():
        say(f"{table:<22} {rows:>12,} rows")
    say(f"{'files':<22} {files:>12,} files")
    say(f"copied {describe_target(source)} into {describe_target(target)}")
    return EXIT_OK
