"""`tiercel worker`: a process that runs task runs of a PostgreSQL-backed cluster, and nothing else.

It claims task runs from the store's queue up to its concurrency (those of its worker group only,
with `--group`), runs them as the server's own worker would, and heartbeats; a worker that dies has
its task runs handed to another once its heartbeats stop (see `tiercel server --heartbeat-timeout`).
It stops on SIGTERM or SIGINT: its running attempts are stopped and the executor's policy for a lost
worker applies to them (a new attempt elsewhere, or FAILED for tasks marked not idempotent).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tiercel.engine import cluster_worker, describe_target

from .activity import log_line
from .common import (
    DEFAULT_CONCURRENCY,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_log_format_option,
    add_storage_option,
    command,
    open_member_engine,
    positive_int,
    resolve_db,
    say,
    stop_requested,
    use_log_format,
    use_storage,
)
from .tables import table


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = command(
        sub,
        "worker",
        "run task runs of a PostgreSQL-backed cluster",
        [
            "tiercel worker --db postgresql://tiercel@db-host/tiercel --concurrency 8",
            "tiercel worker --db postgresql://tiercel@db-host/tiercel --group gpu --flows /srv/flows",
        ],
        "Run task runs of the cluster whose store is the PostgreSQL database --db names.",
    )
    worker.add_argument("--db", help="the cluster's store: a postgresql:// URL (or TIERCEL_DB)")
    add_log_format_option(worker)
    add_storage_option(worker)
    worker.add_argument(
        "--concurrency", type=positive_int, default=DEFAULT_CONCURRENCY,
        help=f"task runs run at once (default: {DEFAULT_CONCURRENCY})",
    )  # fmt: skip
    worker.add_argument("--group", help="run only the task runs of this workerGroup key")
    worker.add_argument(
        "--flows",
        help="the servers' flows folder, as this machine sees it (a checkout or a shared mount): "
        "where the `_namespace.yaml` declarations are read from (namespace files come from the store)",
    )
    worker.add_argument(
        "--heartbeat", type=float, default=2.0, metavar="SECONDS",
        help="seconds between heartbeats; keep it well under the servers' --heartbeat-timeout (default: 2)",
    )  # fmt: skip


async def cmd_worker(args: argparse.Namespace) -> int:
    use_log_format(args)
    use_storage(args)
    db = resolve_db(args.db)
    if not isinstance(db, str):
        raise UsageError("a worker needs a PostgreSQL store: --db postgresql://... (or TIERCEL_DB)")
    flows_dir = Path(args.flows) if args.flows else None
    if flows_dir is not None and not flows_dir.is_dir():
        raise UsageError(f"{flows_dir}: no such flows folder")
    engine = await open_member_engine(db, flows_dir)
    if engine is None:
        return EXIT_USAGE
    stopping = stop_requested()
    worker = cluster_worker(
        engine, db, concurrency=args.concurrency, group=args.group, heartbeat=args.heartbeat
    )
    engine.log_pipeline.start()
    try:
        await worker.start()
        group = f", group {args.group}" if args.group else ""
        log_line(
            f"tiercel worker {worker.id}: {args.concurrency} at once{group}, database {describe_target(db)}",
            "worker.started",
            worker=worker.id,
        )
        await stopping.wait()
        log_line(f"tiercel worker {worker.id}: stopping", "worker.stopping", worker=worker.id)
    finally:
        await worker.stop()
        await engine.log_pipeline.stop()
        await engine.store.close()
    return EXIT_OK


def add_list_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    workers = command(
        sub,
        "workers",
        "list the servers and workers of a PostgreSQL-backed cluster",
        [
            "tiercel workers --db postgresql://tiercel@db-host/tiercel",
            "TIERCEL_DB=postgresql://db/t tiercel workers --json",
        ],
        "The servers of the cluster whose store --db names (host, pid, the executions each "
        "runs, which one runs the scheduler, last heartbeat), its workers (host, pid, group, the task "
        "runs each holds, last heartbeat), then the task runs waiting for a worker.",
    )
    workers.add_argument("--db", help="the cluster's store: a postgresql:// URL (or TIERCEL_DB)")
    workers.add_argument("--json", action="store_true", help="print the workers as JSON")


async def cmd_workers(args: argparse.Namespace) -> int:
    from tiercel.engine import StoreError, cluster_members, iso

    db = resolve_db(args.db)
    if not isinstance(db, str):
        raise UsageError("workers run beside a PostgreSQL store: --db postgresql://... (or TIERCEL_DB)")
    try:
        members = await cluster_members(db)
    except StoreError as error:
        say(f"tiercel: {error}", err=True)
        return EXIT_USAGE
    from ..cluster_rows import SERVER_COLUMNS, WORKER_COLUMNS, server_rows, waiting_lines, worker_rows

    servers, workers, waiting = members.servers, members.workers, members.waiting
    if args.json:
        server_json = [
            {
                "id": s.id, "host": s.host, "pid": s.pid, "running": s.running, "scheduler": s.scheduler,
                "started": iso(s.started), "heartbeatSecondsAgo": round(s.heartbeat_age, 1),
            }
            for s in servers
        ]  # fmt: skip
        rows = [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "group": w.group,
                "concurrency": w.concurrency,
                "running": w.running,
                "started": iso(w.started),
                "heartbeatSecondsAgo": round(w.heartbeat_age, 1),
            }
            for w in workers
        ]
        queued = [{"group": group, "waiting": count} for group, count in sorted(waiting.items(), key=str)]
        say(json.dumps({"servers": server_json, "workers": rows, "waiting": queued}, indent=2))
        return EXIT_OK
    cells = [list(SERVER_COLUMNS), *server_rows(members)]
    say("\n".join(table(cells)) if servers else "no servers")
    say("")
    cells = [list(WORKER_COLUMNS), *worker_rows(members)]
    say("\n".join(table(cells)) if workers else "no workers")
    for line in waiting_lines(members):
        say(line)
    return EXIT_OK
