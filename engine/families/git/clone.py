"""Kestra's `Clone`, and the cloning every other git task starts with.

Clone works in the task's working directory: the folder a WorkingDirectory parent shares (how Kestra
flows use it, so that the next tasks see the files), or else a folder of its own removed when the
task ends. As Kestra does, it clones shallow (`depth` 1) unless a `commit` or `tag` is asked for, and a
folder that already holds files is filled by init + fetch + checkout instead of `git clone`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import LogLevel, TaskContext, TaskFailure

from .command import Git, GitError, inside, remote_of


@asynccontextmanager
async def workspace(context: TaskContext) -> AsyncIterator[Path]:
    """The task's working directory: the shared one, or a temporary one removed afterwards."""
    if context.working_dir is not None:
        yield context.working_dir
        return
    folder = Path(tempfile.mkdtemp(prefix="tiercel-git-work-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class CloneOptions:
    branch: str | None = None
    depth: int | None = 1
    commit: str | None = None
    tag: str | None = None
    all_branches: bool = True
    no_tags: bool = False
    submodules: bool = False


def _positive(context: TaskContext, name: str, default: int) -> int:
    value = context.prop(name, default)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise TaskFailure(f"`{name}` must be a whole number, not `{value}`") from None
    if number < 1:
        raise TaskFailure(f"`{name}` must be at least 1, not `{value}`")
    return number


def _optional_text(context: TaskContext, name: str) -> str | None:
    value = context.prop(name)
    return None if value is None or str(value).strip() == "" else str(value).strip()


async def branch_exists(git: Git, cwd: Path, url: str, branch: str) -> bool:
    """Whether the remote has the branch (`git ls-remote`; fails when the remote cannot be read)."""
    result = await git.run(
        "ls-remote", "--heads", "--", url, f"refs/heads/{branch}", cwd=cwd, what=f"Reading {git.remote.shown}"
    )
    return any(line.split("\t")[-1] == f"refs/heads/{branch}" for line in result.out.splitlines())


async def clone_into(git: Git, target: Path, options: CloneOptions) -> None:
    """Clone the remote into `target` (created when missing) and check out what the options ask."""
    url = git.remote.url
    if not url:
        raise TaskFailure("`url` is required")
    git.log(LogLevel.INFO, f"Start cloning from '{git.remote.shown}'")
    pinned = options.commit is not None or options.tag is not None
    if target.is_dir() and any(target.iterdir()):
        git.log(LogLevel.INFO, f"Target directory '{target}' is not empty, using init+fetch strategy")
        await _init_fetch_checkout(git, target, options)
        return
    target.mkdir(parents=True, exist_ok=True)
    args = ["clone", "--quiet"]
    if not pinned:
        if options.branch:
            args += ["--branch", options.branch]
        if options.depth is not None:
            args += ["--depth", str(options.depth)]
    args.append("--no-single-branch" if options.all_branches else "--single-branch")
    if options.no_tags:
        args.append("--no-tags")
    if options.submodules:
        args.append("--recurse-submodules")
    await git.run(*args, "--", url, str(target), cwd=target, what=f"Cloning {git.remote.shown}")
    await _checkout_pinned(git, target, options)


async def _init_fetch_checkout(git: Git, target: Path, options: CloneOptions) -> None:
    url = git.remote.url
    assert url is not None
    await git.run("init", "--quiet", cwd=target)
    await git.run("remote", "add", "origin", url, cwd=target)
    if not options.all_branches and options.branch:
        specs = [f"+refs/heads/{options.branch}:refs/remotes/origin/{options.branch}"]
    else:
        specs = ["+refs/heads/*:refs/remotes/origin/*"]
    args = ["fetch", "--quiet", "--no-tags" if options.no_tags else "--tags"]
    if options.commit is None and options.tag is None and options.depth is not None:
        args += ["--depth", str(options.depth)]
    await git.run(*args, "origin", *specs, cwd=target, what=f"Fetching {git.remote.shown}")
    if options.commit is not None or options.tag is not None:
        await _checkout_pinned(git, target, options)
    else:
        branch = options.branch
        if branch is None:
            await git.run("remote", "set-head", "origin", "--auto", cwd=target, check=False)
            head = await git.run(
                "symbolic-ref", "--short", "refs/remotes/origin/HEAD", cwd=target, check=False
            )
            branch = head.out.strip().removeprefix("origin/") if head.code == 0 else None
        if not branch:
            raise TaskFailure(
                "Cannot determine the default branch. Please specify the 'branch' property explicitly."
            )
        await git.run(
            "checkout", "--quiet", "-B", branch, f"origin/{branch}", cwd=target, what=f"Checking out {branch}"
        )
        git.log(LogLevel.INFO, f"Checked out branch {branch} from origin/{branch}")
    if options.submodules:
        await git.run("submodule", "update", "--init", "--recursive", cwd=target, what="Cloning submodules")


async def _checkout_pinned(git: Git, target: Path, options: CloneOptions) -> None:
    if options.commit is not None:
        found = await git.run(
            "rev-parse", "--verify", "--quiet", f"{options.commit}^{{commit}}", cwd=target, check=False
        )
        if found.code != 0:
            raise TaskFailure(f"Failed to checkout commit {options.commit}: cannot resolve it")
        sha = found.out.strip()
        await git.run("checkout", "--quiet", "--detach", sha, cwd=target)
        git.log(LogLevel.INFO, f"Checked out commit {sha} (detached HEAD)")
    elif options.tag is not None:
        found = await git.run(
            "rev-parse", "--verify", "--quiet", f"refs/tags/{options.tag}^{{commit}}", cwd=target, check=False
        )
        if found.code != 0:
            raise TaskFailure(f"Cannot resolve tag: {options.tag}")
        sha = found.out.strip()
        await git.run("checkout", "--quiet", "--detach", sha, cwd=target)
        git.log(LogLevel.INFO, f"Checked out tag {options.tag} at commit {sha}")


def clone_options(context: TaskContext) -> CloneOptions:
    """Clone's own properties, checked as Kestra checks them."""
    branch = _optional_text(context, "branch")
    all_branches = context.flag("cloneAllBranches", True)
    no_tags = context.flag("noTags", False)
    tag = _optional_text(context, "tag")
    if not all_branches and not branch:
        raise TaskFailure(
            "Invalid clone configuration: when `cloneAllBranches` is false, `branch` must be set."
        )
    if tag is not None and no_tags:
        raise TaskFailure("Invalid clone configuration: `tag` cannot be used with `noTags: true`.")
    return CloneOptions(
        branch=branch.removeprefix("refs/heads/") if branch else None,
        depth=_positive(context, "depth", 1),
        commit=_optional_text(context, "commit"),
        tag=tag,
        all_branches=all_branches,
        no_tags=no_tags,
        submodules=context.flag("cloneSubmodules", False),
    )


async def clone(context: TaskContext) -> Mapping[str, Any]:
    options = clone_options(context)
    remote = remote_of(context)
    if not remote.url:
        raise TaskFailure("`url` is required")
    async with workspace(context) as base, Git(context, remote) as git:
        target = inside(base, _optional_text(context, "directory"), "directory")
        try:
            await clone_into(git, target, options)
        except GitError as error:
            git.log(LogLevel.ERROR, f"Git clone failed for '{remote.shown}': {error}")
            raise
        await git.config(target, context.prop("gitConfig"))
        top = await git.run("rev-parse", "--show-toplevel", cwd=target)
        return {"directory": top.out.strip()}


async def clone_branch(context: TaskContext, git: Git, base: Path, branch: str | None) -> bool:
    """Kestra's GitService.cloneBranch: clone the branch into `base` when the remote has it, else the
    default branch then a new local branch of that name. Returns whether the repository has a commit."""
    url = git.remote.url
    if not url:
        raise TaskFailure("`url` is required")
    exists = branch is not None and await branch_exists(git, base, url, branch)
    if branch is not None and not exists:
        git.log(LogLevel.INFO, f"Branch {branch} does not exist, creating it")
    options = CloneOptions(
        branch=branch if exists else None, submodules=context.flag("cloneSubmodules", False)
    )
    await clone_into(git, base, options)
    await git.config(base, context.prop("gitConfig"))
    has_head = (await git.run("rev-parse", "--verify", "--quiet", "HEAD", cwd=base, check=False)).code == 0
    if branch is not None and not exists:
        if has_head:
            await git.run("checkout", "--quiet", "-b", branch, cwd=base)
        else:
            await git.run("symbolic-ref", "HEAD", f"refs/heads/{branch}", cwd=base)
    return has_head
