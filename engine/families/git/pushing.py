"""Committing and pushing, shared by Push, PushNamespaceFiles and PushFlows (Kestra's AbstractPushTask).

The commit is never empty (nothing staged: nothing committed, nothing pushed, as JGit's
`setAllowEmpty(false)`); the branch is pushed by name (`HEAD:refs/heads/<branch>`), created on the
remote when missing. Without an author, git's own identity is used, or, when git has none, the
system user at this host, as JGit falls back to.
"""

from __future__ import annotations

import getpass
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import LogLevel, TaskContext, TaskFailure

from .command import Git
from .diffs import EMPTY_TREE, diff_rows, store_rows

_SSH_URL = re.compile(r"git@(?:ssh\.)?([^:]+):(?:v\d*/)?(.*)")


def http_url(url: str) -> str:
    """Kestra's GitService.getHttpUrl: an ssh `git@host:path` URL as https, user information dropped."""
    found = _SSH_URL.fullmatch(url)
    if found:
        path = f"{found.group(1)}/{found.group(2)}"
        if "azure.com" in path:
            head, _, tail = path.rpartition("/")
            path = f"{head}/_git/{tail}"
        return "https://" + path
    return re.sub(r"//.*@", "//", url, count=1) if "@" in url else url


def commit_url(url: str | None, branch: str | None, commit_id: str | None) -> str | None:
    """Kestra's link to a commit on GitHub, GitLab, Bitbucket or Azure DevOps."""
    if commit_id is None or url is None:
        return None
    base = re.sub(r"\.git$", "", http_url(url))
    link = f"{base}/{'commits' if 'bitbucket.org' in base else 'commit'}/{commit_id}"
    if "azure.com" in base:
        link += f"?refName=refs%2Fheads%2F{branch}"
    return link


async def use_identity(git: Git, repo: Path, name: str | None, email: str | None) -> None:
    """Commit as `name <email>` when both are known; else git's configured identity, else JGit's
    default (the system user, `user@host`)."""
    if name and email:
        who = {"NAME": name, "EMAIL": email}
    else:
        who = {}
        configured_name = await git.run("config", "user.name", cwd=repo, check=False)
        configured_email = await git.run("config", "user.email", cwd=repo, check=False)
        user = getpass.getuser()
        if configured_name.code != 0:
            who["NAME"] = user
        if configured_email.code != 0:
            who["EMAIL"] = f"{user}@{socket.gethostname()}"
    git.identity = {
        f"GIT_{role}_{key}": value for role in ("AUTHOR", "COMMITTER") for key, value in who.items()
    }


async def has_staged_changes(git: Git, repo: Path) -> bool:
    head = await git.run("rev-parse", "--verify", "--quiet", "HEAD", cwd=repo, check=False)
    if head.code != 0:
        listed = await git.run("ls-files", "--cached", cwd=repo)
        return bool(listed.out.strip())
    result = await git.run("diff", "--cached", "--quiet", cwd=repo, check=False)
    return result.code != 0


async def commit_and_push(git: Git, repo: Path, branch: str, message: str) -> str | None:
    """Commit what is staged and push it to `branch`; the commit id, or None when nothing changed."""
    if not await has_staged_changes(git, repo):
        git.log(LogLevel.INFO, "No changes to commit. Skipping push.")
        return None
    await git.run("commit", "--quiet", "--no-verify", "-m", message, cwd=repo, what="Committing")
    commit_id = (await git.run("rev-parse", "HEAD", cwd=repo)).out.strip()
    await git.run(
        "push", "--quiet", "--porcelain", "origin", f"HEAD:refs/heads/{branch}",
        cwd=repo, what=f"Pushing to {git.remote.shown}",
    )  # fmt: skip
    return commit_id


@dataclass(frozen=True)
class PushSettings:
    """The properties of PushNamespaceFiles and PushFlows that shape the commit."""

    branch: str
    message: str
    dry_run: bool
    delete: bool
    author_name: str | None
    author_email: str | None


def push_settings(context: TaskContext, default_message: str) -> PushSettings:
    branch = str(context.prop("branch", "main") or "main").strip()
    if not branch:
        raise TaskFailure("`branch` must not be empty")
    message = context.prop("commitMessage")
    return PushSettings(
        branch=branch,
        message=str(message) if message not in (None, "") else default_message,
        dry_run=context.flag("dryRun", False),
        delete=context.flag("delete", True),
        author_name=_text(context.prop("authorName")) or _text(context.prop("username")),
        author_email=_text(context.prop("authorEmail")),
    )


def _text(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value)


async def finish_push(
    context: TaskContext, git: Git, repo: Path, settings: PushSettings, output: str, had_head: bool
) -> Mapping[str, Any]:
    """Commit and push what is staged (or, with `dryRun`, only report it); outputs `commitId`,
    `commitURL` and the diff file under `output` (Kestra's `files` or `flows`)."""
    url = git.remote.url
    shown = http_url(git.remote.shown)
    commit_id: str | None = None
    if settings.dry_run:
        git.log(
            LogLevel.INFO,
            f"Dry run — no changes will be pushed to {shown} for now "
            "until you set the `dryRun` parameter to false",
        )
        rows = await diff_rows(git, repo, "--cached", "HEAD" if had_head else EMPTY_TREE)
    else:
        git.log(LogLevel.INFO, f"Pushing to {shown} on branch {settings.branch}")
        await use_identity(git, repo, settings.author_name, settings.author_email)
        commit_id = await commit_and_push(git, repo, settings.branch, settings.message)
        if commit_id is None:
            rows = []
        else:
            parent = await git.run("rev-parse", "--verify", "--quiet", "HEAD~1", cwd=repo, check=False)
            rows = await diff_rows(git, repo, parent.out.strip() if parent.code == 0 else EMPTY_TREE, "HEAD")
    outputs: dict[str, Any] = {output: store_rows(context, "diffs.ion", rows)}
    if commit_id is not None:
        outputs["commitId"] = commit_id
        link = commit_url(url and http_url(git.remote.shown), settings.branch, commit_id)
        outputs["commitURL"] = link
        git.log(LogLevel.INFO, f"Pushed to {link}")
    return outputs
