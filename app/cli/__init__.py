"""The `tiercel` command line, one module per command group.

main.py holds the parser and the table of handlers; run.py (run, validate), executions.py
(executions, logs: read-only queries), control.py (kill, resume, restart, replay, change-status),
flows.py (flows, namespaces, revisions), triggers.py (triggers, backfill), server.py (server, ui);
common.py what they share. Commands on executions and triggers go through `connect(db)` and the
engine's `Commands`, whether an engine runs on the database or not.

`run` is split by what changes apart: running.py (what a run shares wherever it runs),
remote_run.py (a run handed to the dashboard or a server owning the database), progress.py (its
output: task run lines, the progress line on a terminal). activity.py is the server's log, and
tables.py the aligned columns of every listing.
"""

from .main import main

__all__ = ["main"]
