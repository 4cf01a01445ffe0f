"""Kestra's `PushFlows` and `SyncFlows`: flows kept in git, through the engine's flows service.

PushFlows writes the flows of `sourceNamespace` (and, with `includeChildNamespaces`, of the
namespaces below it, in sub-folders) whose id a `flows` glob matches, as `<id>.yml` under
`gitDirectory` (`_flows`), `revision:` lines dropped and, with `targetNamespace`, every line
`namespace: <source>...` rewritten as Kestra does (a plain text replacement, sub-namespaces too);
its `flows` output is the diff file. SyncFlows reads every file under `gitDirectory` as a flow of
`targetNamespace` (a sub-folder is a child namespace, with `includeChildNamespaces`), its first
`namespace:` line rewritten, and saves it; with `delete`, the flows of those namespaces git does not
have are deleted, never the flow running the task. Its `flows` output has a row per flow:
`{gitPath, syncState, flowId, namespace}` with syncState ADDED, UPDATED, UNCHANGED or DELETED.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import LogLevel, TaskContext, TaskFailure

from .clone import workspace
from .command import Git, inside, remote_of
from .diffs import globs_of, matches_any, store_rows
from .resources import checkout_for_sync, git_entries, push_resources, sorted_rows, sync_settings
from .stores import FlowWriteError, require_flows

_REVISION = re.compile(r"(?m)^revision:\s*\d+\n?")
_NAMESPACE_LINE = re.compile(r"(?m)^namespace: (.*)$")
_ID_LINE = re.compile(r"(?m)^id:\s*['\"]?([^'\"\s#]+)")


def _namespace(context: TaskContext, name: str, required: bool = False) -> str:
    value = context.prop(name)
    if value is None or not str(value).strip():
        if required:
            raise TaskFailure(f"`{name}` is required")
        value = context.execution.namespace
    return str(value).strip()


async def push_flows(context: TaskContext) -> Mapping[str, Any]:
    flows = require_flows(context)
    source_namespace = _namespace(context, "sourceNamespace")
    target = context.prop("targetNamespace")
    target_namespace = str(target).strip() if target not in (None, "") else source_namespace
    children = context.flag("includeChildNamespaces", False)
    globs = globs_of(context.prop("flows"), "flows")
    rename = re.compile(r"(?m)^(\s*namespace:\s*)" + re.escape(source_namespace))

    async def produce(directory: Path, globs: list[str] | None) -> dict[Path, bytes]:
        found: dict[Path, bytes] = {}
        for flow in flows.flow_sources(source_namespace, children=children):
            if globs is not None and not matches_any(globs, flow.id):
                continue
            folder = directory
            if len(flow.namespace) > len(source_namespace):
                relative = flow.namespace[len(source_namespace) + 1 :].replace(".", "/")
                folder = inside(directory, relative, "namespace")
            source = _REVISION.sub("", flow.source)
            source = rename.sub(lambda m: m.group(1) + target_namespace, source)
            found[inside(folder, f"{flow.id}.yml", "flow id")] = source.encode()
        return found

    return await push_resources(
        context,
        default_message=f"Add flows from {source_namespace} namespace",
        default_directory="_flows",
        globs=globs,
        produce=produce,
        output="flows",
    )


def _normalised(source: str) -> str:
    return _REVISION.sub("", source).replace("\r\n", "\n").strip()


async def sync_flows(context: TaskContext) -> Mapping[str, Any]:
    flows = require_flows(context)
    namespace = _namespace(context, "targetNamespace", required=True)
    children = context.flag("includeChildNamespaces", False)
    ignore_invalid = context.flag("ignoreInvalidFlows", False)
    settings = sync_settings(context, "_flows", default_delete=False)
    remote = remote_of(context)
    if not remote.url:
        raise TaskFailure("`url` is required")
    async with workspace(context) as base, Git(context, remote) as git:
        directory = await checkout_for_sync(context, git, base, settings)
        existing = {(f.namespace, f.id): f for f in flows.flow_sources(namespace, children=children)}
        kept: set[tuple[str, str]] = set()
        rows: list[dict[str, Any]] = []
        for entry in git_entries(directory, recursive=children) if directory is not None else []:
            if entry.folder:
                continue
            reference = entry.uri.lstrip("/")
            folder = entry.uri.rsplit("/", 1)[0]
            flow_namespace = namespace + folder.replace("/", ".")
            source = _NAMESPACE_LINE.sub(
                f"namespace: {flow_namespace}", entry.path.read_text(), count=1
            ).rstrip()
            found = _ID_LINE.search(source)
            if found is None:
                if ignore_invalid:
                    git.log(LogLevel.WARN, f"Invalid flow imported from Git ({reference}): no `id`")
                    continue
                raise TaskFailure(f"Invalid flow imported from Git ({reference}): no `id`")
            key = (flow_namespace, found.group(1))
            before = existing.get(key)
            if before is not None and _normalised(before.source) == _normalised(source):
                state = "UNCHANGED"
            else:
                state = "ADDED" if before is None else "UPDATED"
                if not settings.dry_run:
                    try:
                        saved = await flows.save_flow(source)
                    except FlowWriteError as error:
                        if ignore_invalid:
                            git.log(LogLevel.WARN, f"Invalid flow imported from Git ({reference}): {error}")
                            continue
                        raise TaskFailure(f"Invalid flow imported from Git ({reference}): {error}") from None
                    key = (saved.namespace, saved.id)
                    state = "ADDED" if key not in existing else state
            kept.add(key)
            row = {"gitPath": settings.git_directory + entry.uri, "syncState": state}
            rows.append(row | {"flowId": key[1], "namespace": key[0]})
        if settings.delete:
            running = (context.execution.namespace, context.execution.flow_id)
            for key in sorted(set(existing) - kept):
                if key == running:
                    continue
                if not settings.dry_run:
                    await flows.delete_flow(*key)
                rows.append({"syncState": "DELETED", "flowId": key[1], "namespace": key[0]})
        git.log(
            LogLevel.INFO,
            f"Synced {len(rows)} flows of {namespace} from git{' (dry run)' if settings.dry_run else ''}",
        )
        return {"flows": store_rows(context, "diffs.ion", sorted_rows(rows))}
