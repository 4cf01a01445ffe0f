"""Kestra's git plugin (`io.kestra.plugin.git`), driving the `git` command-line tool.

Clone and the deprecated Push work on the task's working directory (a WorkingDirectory parent's);
PushNamespaceFiles/SyncNamespaceFiles keep a namespace's files in a repository, PushFlows/SyncFlows
its flows. git is a program, not a module: each task checks for it when it runs and fails saying it
must be installed. Credentials reach git through an askpass script and the environment, never argv,
and never appear in logs, outputs or errors.
"""

from __future__ import annotations

from tiercel.engine.plugin import Kind, Registry, RunnableHandler, TaskType

from .clone import clone
from .flows import push_flows, sync_flows
from .namespace_files import push_namespace_files, sync_namespace_files
from .push import push

PACKAGE = "io.kestra.plugin.git"
# AbstractGitTask and AbstractCloningTask.
_CONNECTION = frozenset(
    {
        "url", "username", "password", "privateKey", "passphrase", "trustedCaPemPath", "noProxy",
        "branch", "connectTimeout", "readTimeout", "gitConfig", "cloneSubmodules", "kestraUrl", "auth",
    }
)  # fmt: skip
_IGNORED = dict.fromkeys(
    ("kestraUrl", "auth"), "the git tasks use this engine's own flows and namespace files, not Kestra's API"
)
_PUSH = _CONNECTION | {"commitMessage", "dryRun", "authorEmail", "authorName", "delete", "gitDirectory"}
_SYNC = _CONNECTION | {"dryRun", "failOnMissingDirectory", "delete", "gitDirectory"}
_TYPES: dict[str, tuple[frozenset[str], frozenset[str], RunnableHandler]] = {
    # Kestra's @NotNull properties; `url` of the others is checked when they run (it often comes
    # from pluginDefaults).
    "Clone": (
        _CONNECTION | {"directory", "depth", "commit", "tag", "cloneAllBranches", "noTags"},
        frozenset({"url"}),
        clone,
    ),
    "Push": (
        _CONNECTION
        | {
            "directory",
            "commitMessage",
            "namespaceFiles",
            "flows",
            "inputFiles",
            "addFilesPattern",
            "author",
        },
        frozenset({"branch", "commitMessage"}),
        push,
    ),
    "PushNamespaceFiles": (
        _PUSH | {"namespace", "files", "errorOnMissing"},
        frozenset(),
        push_namespace_files,
    ),
    "SyncNamespaceFiles": (_SYNC | {"namespace"}, frozenset(), sync_namespace_files),
    "PushFlows": (
        _PUSH | {"sourceNamespace", "targetNamespace", "flows", "includeChildNamespaces"},
        frozenset(),
        push_flows,
    ),
    "SyncFlows": (
        _SYNC | {"targetNamespace", "includeChildNamespaces", "ignoreInvalidFlows"},
        frozenset({"targetNamespace"}),
        sync_flows,
    ),
}


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the git family."""
    for name, (properties, required, handler) in _TYPES.items():
        registry.add(
            TaskType(
                f"{PACKAGE}.{name}",
                Kind.RUNNABLE,
                properties,
                required,
                handler=handler,
                requires=(),
                extra="git",
                ignored=_IGNORED,
            )
        )
