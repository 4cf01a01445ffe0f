"""What the push and sync tasks report: Java-style globs, the per-file diff rows and their Ion file."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tiercel.engine.plugin import TaskContext, TaskFailure, glob_matches, ion_dumps

from .command import Git

_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
# `git hash-object -t tree /dev/null`: the tree of nothing, to diff a first commit against.
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def globs_of(value: Any, name: str) -> list[str] | None:
    """Kestra's `files`/`flows`: a list of globs, a JSON list in a text, or one glob; None is all."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return [value]
        value = parsed if isinstance(parsed, list) else [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    raise TaskFailure(f"`{name}` must be a glob or a list of globs")


def matches_any(globs: Iterable[str], *candidates: str) -> bool:
    return any(glob_matches(glob, candidate) for glob in globs for candidate in candidates)


async def diff_rows(git: Git, repo: Path, *tree_range: str) -> list[dict[str, str]]:
    """Kestra's rows of a push diff, by path: `{changes, file, deletions, additions}` counted per edit
    as JGit does (a grown edit adds the difference, a shrunk one deletes it, an even one changes)."""
    common = ("diff", "--no-renames", "--no-ext-diff", "--no-color", "--histogram", *tree_range)
    names = await git.run(*common, "--name-only", "-z", cwd=repo)
    paths = [name for name in names.out.split("\0") if name]
    if not paths:
        return []
    patch = await git.run(*common, "-U0", cwd=repo)
    sections: list[list[str]] = []
    for line in patch.out.splitlines():
        if line.startswith("diff --git "):
            sections.append([])
        elif sections:
            sections[-1].append(line)
    rows = []
    for path, section in zip(paths, sections, strict=False):
        additions = deletions = changes = 0
        for line in section:
            hunk = _HUNK.match(line)
            if hunk is None:
                continue
            before = int(hunk.group(1)) if hunk.group(1) is not None else 1
            after = int(hunk.group(2)) if hunk.group(2) is not None else 1
            if after > before:
                additions += after - before
            elif after < before:
                deletions += before - after
            else:
                changes += after
        rows.append(
            {
                "changes": str(changes),
                "file": path,
                "deletions": f"-{deletions}",
                "additions": f"+{additions}",
            }
        )
    return sorted(rows, key=lambda row: row["file"])


def store_rows(context: TaskContext, name: str, rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows as an Ion file (one value a line) in the internal storage; its kestra:// URI."""
    with tempfile.TemporaryDirectory(prefix="tiercel-git-diff-") as folder:
        target = Path(folder) / name
        with target.open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(ion_dumps(dict(row)) + "\n")
        return context.put_file(name, target)
