"""Kestra's (deprecated) `Push`: commit files of the working directory and push them to a branch.

With `url`, the branch (or the default branch when it does not exist yet) is cloned first and every
file it tracks is removed, so that the commit holds exactly what the task writes: its `inputFiles`,
the namespace's files (`namespaceFiles`) and the flows (`flows`, on by default, into `_flows`).
Without `url`, the repository already in the working directory (a Clone before it) is committed as
the files stand, restricted to `addFilesPattern` (`.` by default). Output: `commitId`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import LogLevel, TaskContext, TaskFailure, write_input_files

from .clone import CloneOptions, branch_exists, clone_into, workspace
from .command import Git, flag_list, inside, remote_of
from .diffs import matches_any
from .pushing import commit_and_push, use_identity
from .stores import flow_sources, namespace_files

_REVISION = re.compile(r"(?m)^revision:\s*\d+\n?")


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TaskFailure(f"`{name}` must be a map")
    return value


async def _copy_namespace_files(context: TaskContext, folder: Path, settings: Mapping[str, Any]) -> None:
    if not context.is_truthy(settings.get("enabled", True)):
        return
    include = flag_list(context.render(settings.get("include")), "namespaceFiles.include") or ["**"]
    exclude = flag_list(context.render(settings.get("exclude")), "namespaceFiles.exclude")
    store = namespace_files(context)
    namespace = context.execution.namespace
    for path in store.list_files(namespace):
        if matches_any(include, path, "/" + path) and not matches_any(exclude, path, "/" + path):
            target = inside(folder, path, "namespace file")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(store.read_file(namespace, path))


def _copy_flows(context: TaskContext, git: Git, folder: Path, settings: Mapping[str, Any]) -> None:
    if not context.is_truthy(settings.get("enabled", True)):
        return
    if context.flows is None:
        git.log(LogLevel.DEBUG, "No flows to push: this engine runs without a flows folder")
        return
    children = context.is_truthy(settings.get("childNamespaces", True))
    directory = inside(
        folder, str(context.render(settings.get("gitDirectory", "_flows"))), "flows.gitDirectory"
    )
    directory.mkdir(parents=True, exist_ok=True)
    for flow in flow_sources(context, context.execution.namespace, children):
        target = inside(directory, f"{flow.namespace}.{flow.id}.yml", "flow")
        target.write_text(_REVISION.sub("", flow.source), encoding="utf-8")


async def push(context: TaskContext) -> Mapping[str, Any]:
    branch = str(context.prop("branch") or "").strip()
    if not branch:
        raise TaskFailure("`branch` is required")
    message = context.prop("commitMessage")
    if message in (None, ""):
        raise TaskFailure("`commitMessage` is required")
    namespace_settings = _mapping(context.prop("namespaceFiles"), "namespaceFiles")
    flow_settings = _mapping(context.task.props.get("flows"), "flows")
    author = _mapping(context.prop("author"), "author")
    patterns = flag_list(context.prop("addFilesPattern", ["."]), "addFilesPattern") or ["."]
    remote = remote_of(context)
    async with workspace(context) as base, Git(context, remote) as git:
        repo = inside(base, context.prop("directory"), "directory")
        if remote.url:
            exists = await branch_exists(git, base, remote.url, branch)
            if not exists:
                git.log(LogLevel.INFO, f"Branch {branch} does not exist, creating it")
            options = CloneOptions(
                branch=branch if exists else None, submodules=context.flag("cloneSubmodules", False)
            )
            await clone_into(git, repo, options)
        elif not (repo / ".git").exists():
            raise TaskFailure(
                f"`{context.prop('directory') or '.'}` is not a git repository: give `url` or Clone first"
            )
        current = await git.run("symbolic-ref", "--quiet", "--short", "HEAD", cwd=repo, check=False)
        if current.out.strip() != branch:
            local = await git.run(
                "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", cwd=repo, check=False
            )
            switch = ["checkout", "--quiet"] + ([branch] if local.code == 0 else ["-b", branch])
            await git.run(*switch, cwd=repo, what=f"Checking out {branch}")
        if remote.url:
            await git.run("rm", "-r", "-q", "--ignore-unmatch", "--", ".", cwd=repo)
        write_input_files(context, repo, context.prop("inputFiles"))
        if namespace_settings:
            await _copy_namespace_files(context, repo, namespace_settings)
        _copy_flows(context, git, repo, {k: v for k, v in flow_settings.items()})
        origin = await git.run("config", "--get", "remote.origin.url", cwd=repo, check=False)
        git.log(LogLevel.INFO, f"Pushing to {origin.out.strip()}/tree/{branch}")
        await git.run("add", "--", *patterns, cwd=repo, what="Adding files")
        name, email = author.get("name"), author.get("email")
        if email and not name:
            name = context.prop("username")
        await use_identity(git, repo, str(name) if name and email else None, str(email) if email else None)
        commit_id = await commit_and_push(git, repo, branch, str(message))
        return {"commitId": commit_id} if commit_id else {}
