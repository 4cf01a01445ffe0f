"""`tiercel flows`, `namespaces` and `revisions`: what a flows folder holds and what the store kept of it.

The folder is the truth for what exists now; the database (read-only, and only when it exists) adds
revisions and KV keys. Neither command needs the engine, so they work beside a running dashboard.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from tiercel.engine import visible

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    add_db_option,
    add_flows_option,
    add_json_option,
    command,
    flow_files,
    flows_folder,
    resolve_db,
    say,
)
from .tables import table, width

if TYPE_CHECKING:
    from tiercel.engine import Flow, FlowParseError, Namespaces, Store


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    flows = command(
        sub,
        "flows",
        "list the flows of a folder, with their revisions and errors",
        ["tiercel flows", "tiercel flows --flows ~/project/flows --json"],
    )
    add_flows_option(flows)
    add_db_option(flows)
    add_json_option(flows, "the flows")

    namespaces = command(
        sub,
        "namespaces",
        "show the namespace tree with flows, variables and KV keys",
        ["tiercel namespaces", "tiercel namespaces --flows sample_flows"],
    )
    add_flows_option(namespaces)
    add_db_option(namespaces)

    revisions = command(
        sub,
        "revisions",
        "list, show or diff the stored revisions of a flow",
        [
            "tiercel revisions acme.data nightly_load",
            "tiercel revisions acme.data nightly_load --show 3",
            "tiercel revisions acme.data nightly_load --diff 2 --to 4",
        ],
    )
    add_flows_option(revisions)
    add_db_option(revisions)
    revisions.add_argument("--show", type=int, metavar="N", help="print revision N")
    revisions.add_argument("--diff", type=int, metavar="A", help="diff revision A against the next one")
    revisions.add_argument("--to", type=int, metavar="B", help="with --diff: against revision B instead")
    revisions.add_argument("namespace", help="the flow's namespace")
    revisions.add_argument("flow_id", help="the flow's id")


def _folder(args: argparse.Namespace) -> Path:
    folder = flows_folder(args.flows)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such flows folder")
    return folder


async def _stored(args: argparse.Namespace) -> Store | None:
    """The store, read-only, or None when there is no database yet."""
    from tiercel.engine import Store, target_exists

    db = resolve_db(args.db)
    return await Store.open(db, readonly=True) if target_exists(db) else None


def _parse_folder(folder: Path) -> tuple[list[Flow], list[tuple[Path, FlowParseError]], Namespaces]:
    from tiercel.engine import FlowParseError, Namespaces, is_flow_file, parse_flow_file

    namespaces = Namespaces()
    namespaces.load(folder)
    flows: list[Flow] = []
    errors: list[tuple[Path, FlowParseError]] = []
    for file in flow_files([str(folder)]):
        if not is_flow_file(folder, file):
            continue
        try:
            flows.append(parse_flow_file(file, defaults=namespaces.plugin_defaults))
        except FlowParseError as error:
            errors.append((file, error))
    errors += [(Path(path), FlowParseError(found)) for path, found in namespaces.errors.items()]
    return flows, errors, namespaces


class _FlowRow(TypedDict):
    """A flow as `tiercel flows --json` prints it."""

    namespace: str
    id: str
    revision: int | None
    editedSinceRevision: bool
    path: str | None
    tasks: int
    triggers: list[str]
    disabled: bool


async def cmd_flows(args: argparse.Namespace) -> int:
    folder = _folder(args)
    flows, errors, _ = _parse_folder(folder)
    store = await _stored(args)
    revisions: dict[tuple[str, str], tuple[int, bool]] = {}
    try:
        for flow in flows:
            found = await store.flow_source(flow.namespace, flow.id) if store else None
            if found is not None:
                revisions[flow.uid] = (found[0], found[1] != flow.source)
    finally:
        if store is not None:
            await store.close()
    rows: list[_FlowRow] = []
    for flow in sorted(flows, key=lambda f: (f.namespace, f.id)):
        revision, edited = revisions.get(flow.uid, (None, False))
        rows.append(
            {
                "namespace": flow.namespace,
                "id": flow.id,
                "revision": revision,
                "editedSinceRevision": edited,
                "path": flow.path,
                "tasks": len(flow.tasks),
                "triggers": [t.id for t in flow.triggers],
                "disabled": flow.disabled,
            }
        )
    problems = [{"path": str(file), "errors": [str(e) for e in error.errors]} for file, error in errors]
    if args.json:
        say(json.dumps([*rows, *problems], indent=2))
        return EXIT_OK
    if rows:
        say("\n".join(table([_flow_cells(row) for row in rows])))
    if any(row["editedSinceRevision"] for row in rows):
        say(
            "* the file changed since that revision; a running engine stores the new one as it sees it",
            err=True,
        )
    for file, error in errors:
        first = str(error.errors[0]) if error.errors else ""
        # A flow error names its file already (path:line:column: message).
        say(f"INVALID {first}" if first.startswith(str(file)) else f"INVALID {file}: {first}")
    return EXIT_OK


def _flow_cells(row: _FlowRow) -> list[str]:
    revision = row["revision"]
    shown = "-" if revision is None else f"{revision}{'*' if row['editedSinceRevision'] else ''}"
    triggers = ",".join(row["triggers"]) or "-"
    return [
        row["namespace"],
        row["id"],
        f"rev={shown}",
        f"tasks={row['tasks']}",
        f"triggers={triggers}",
        row["path"] or "-",
    ]


async def cmd_namespaces(args: argparse.Namespace) -> int:
    folder = _folder(args)
    flows, _, namespaces = _parse_folder(folder)
    tree: dict[str, list[str]] = {}
    for name in [flow.namespace for flow in flows] + list(namespaces.declared):
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            tree.setdefault(".".join(parts[:depth]), [])
    for flow in flows:
        tree[flow.namespace].append(flow.id)
    store = await _stored(args)
    try:
        keys = {namespace: await store.kv_keys(namespace) if store else [] for namespace in tree}
    finally:
        if store is not None:
            await store.close()
    labels = {namespace: "  " * namespace.count(".") + namespace.rsplit(".", 1)[-1] for namespace in tree}
    label_width = max((width(label) for label in labels.values()), default=0)
    for namespace in sorted(tree):
        description = namespaces.description(namespace)
        label = labels[namespace]
        heading = label + " " * (label_width - width(label)) + f"  ({namespace})"
        say(heading + (f"  {description}" if description else ""))
        pad = "  " * (namespace.count(".") + 1)
        declared = namespaces.declared.get(namespace)
        if declared is not None and declared.path:
            say(f"{pad}file {visible(declared.path)}{_written_by(declared.path)}")
        # Every setting the namespace has, its own or inherited (then said from where).
        chain = namespaces.chain(namespace)
        variables = {key: (value, spec.id) for spec in chain for key, value in spec.variables.items()}
        key_width = max((width(key) for key in variables), default=0)
        for key, (value, origin) in variables.items():
            inherited = f"  (from {origin})" if origin != namespace else ""
            say(f"{pad}var {key}{' ' * (key_width - width(key))} = {json.dumps(value)}{inherited}")
        for spec in chain:
            for grant in spec.permissions:
                inherited = f"  (from {spec.id})" if spec.id != namespace else ""
                say(f"{pad}may  {grant.permission} {grant.principal} {visible(grant.name)}{inherited}")
        for key in keys[namespace]:
            say(f"{pad}kv  {key}")
        for flow_id in sorted(tree[namespace]):
            say(f"{pad}- {flow_id}")
    return EXIT_OK


def _written_by(path: str) -> str:
    """`  (written by ...)` when a task wrote the declaration last (its first line says so)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline().strip()
    except OSError:
        return ""
    if not first.startswith("# Written by "):
        return ""
    return f"  (written by {visible(first.removeprefix('# Written by '))})"


async def cmd_revisions(args: argparse.Namespace) -> int:
    store = await _stored(args)
    if store is None:
        raise UsageError(f"no database at {resolve_db(args.db)} (give --db or set TIERCEL_DB)")
    try:
        revisions = await store.flow_revisions(args.namespace, args.flow_id)
    finally:
        await store.close()
    if not revisions:
        say(f"tiercel: no stored revision of {args.namespace}.{args.flow_id}", err=True)
        return EXIT_FAILED
    sources = {revision: source for revision, source, _ in revisions}
    wanted = [n for n in (args.show, args.diff, args.to) if n is not None]
    missing = [n for n in wanted if n not in sources]
    if missing:
        raise UsageError(
            f"{args.namespace}.{args.flow_id} has no revision {missing[0]} (it has 1 to {max(sources)})"
        )
    if args.show is not None:
        say(sources[args.show].rstrip("\n"))
        return EXIT_OK
    if args.diff is not None:
        before = args.diff
        after = args.to if args.to is not None else before + 1
        if after not in sources:
            raise UsageError(f"{args.namespace}.{args.flow_id} has no revision {after}")
        lines = difflib.unified_diff(
            sources[before].splitlines(keepends=True),
            sources[after].splitlines(keepends=True),
            fromfile=f"revision {before}",
            tofile=f"revision {after}",
        )
        say("".join(lines).rstrip("\n"))
        return EXIT_OK
    from tiercel.engine import iso

    cells = [
        [str(n), iso(created) or "-", f"{len(source.splitlines())} lines"] for n, source, created in revisions
    ]
    say("\n".join(table(cells, align=(">", "<", ">"))))
    return EXIT_OK
