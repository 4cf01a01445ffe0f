"""The ``kestra:///`` URI scheme: building and parsing URIs, and which files an execution may read.

URI form: only ``kestra:///path`` with three slashes, as Kestra writes them. The two-slash form
``kestra://a/b`` is refused rather than normalised, because Java's ``URI`` reads ``a`` as a host
and Kestra would silently drop it: the same flow must not address different files here and there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote

from .names import StorageError, check_segment, segment_problem

SCHEME = "kestra"
URI_PREFIX = "kestra:///"

# RFC 3986 sub-delims plus ':' and '@' may stay raw in a path segment; quote() keeps letters,
# digits and '_.-~' anyway, and encodes spaces, '%', '?', '#' and non-ASCII characters.
_SEGMENT_SAFE = "!$&'()*+,;=:@"


def join_uri(parts: Sequence[str]) -> str:
    """The ``kestra:///`` URI of checked path segments, each percent-encoded."""
    return URI_PREFIX + "/".join(quote(part, safe=_SEGMENT_SAFE) for part in parts)


# <namespace as folders>/_files/<path>: Kestra's namespace files in its internal storage. No flow id
# nor namespace starts with an underscore, so the name is free beside them.
NAMESPACE_FILES = "_files"


def namespace_files_uri(namespace: str) -> str:
    """The folder URI of a namespace's files: ``kestra:///<ns as folders>/_files``."""
    if not isinstance(namespace, str):
        raise StorageError(f"Namespace must be text, not {type(namespace).__name__}")
    parts = [check_segment(part, f"Namespace '{namespace}' segment") for part in namespace.split(".")]
    return join_uri([*parts, NAMESPACE_FILES])


def execution_uri(namespace: str, flow_id: str, execution_id: str) -> str:
    """The folder URI of an execution: ``kestra:///<ns as folders>/<flowId>/executions/<id>``."""
    if not isinstance(namespace, str):
        raise StorageError(f"Namespace must be text, not {type(namespace).__name__}")
    parts = [check_segment(part, f"Namespace '{namespace}' segment") for part in namespace.split(".")]
    parts.append(check_segment(flow_id, "Flow id"))
    parts.append("executions")
    parts.append(check_segment(execution_id, "Execution id"))
    return join_uri(parts)


def task_uri(namespace: str, flow_id: str, execution_id: str, task_id: str, task_run_id: str) -> str:
    """The folder URI of a task run: ``<execution>/tasks/<taskId>/<taskRunId>``."""
    base = execution_uri(namespace, flow_id, execution_id)
    task = quote(check_segment(task_id, "Task id"), safe=_SEGMENT_SAFE)
    run = quote(check_segment(task_run_id, "Task run id"), safe=_SEGMENT_SAFE)
    return f"{base}/tasks/{task}/{run}"


def input_uri(namespace: str, flow_id: str, execution_id: str, input_id: str) -> str:
    """The folder URI of a FILE input: ``<execution>/inputs/<inputId>``."""
    base = execution_uri(namespace, flow_id, execution_id)
    return f"{base}/inputs/{quote(check_segment(input_id, 'Input id'), safe=_SEGMENT_SAFE)}"


def parse_uri(uri: str) -> tuple[str, ...]:
    """Split a ``kestra:///`` URI into checked, percent-decoded path segments."""
    if not isinstance(uri, str):
        raise StorageError(f"Storage URI must be text, not {type(uri).__name__}")
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() != SCHEME:
        raise StorageError(
            f"Storage URI '{uri}' refused: only kestra:/// URIs are supported, not '{scheme}:'"
            if colon
            else f"Storage URI '{uri}' refused: expected kestra:///<path>"
        )
    if not rest.startswith("///"):
        if rest.startswith("//"):
            raise StorageError(
                f"Storage URI '{uri}' refused: write three slashes (kestra:///{rest[2:]}); "
                "with two, Kestra reads the first name as a host and drops it"
            )
        raise StorageError(f"Storage URI '{uri}' refused: expected kestra:///<path>")
    raw = rest[3:]
    if "?" in raw or "#" in raw:
        raise StorageError(f"Storage URI '{uri}' refused: a query or fragment is not allowed")
    if "\\" in raw:
        raise StorageError(f"Storage URI '{uri}' refused: path traversal (backslash)")
    try:
        # Decoded exactly once: '%252e' stays the literal name '%2e', never '.'.
        path = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise StorageError(f"Storage URI '{uri}' refused: invalid percent-encoding") from None
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]  # a folder URI may end with a slash
    if path == "":
        return ()
    segments = tuple(path.split("/"))
    for segment in segments:
        problem = segment_problem(segment)
        if problem is not None:
            raise StorageError(f"Storage URI '{uri}' refused: {problem}")
    return segments


def check_readable(uri: str, namespace: str, trigger: Mapping[str, Any] | None = None) -> None:
    """Refuse a file that an execution of `namespace` may not read.

    An execution reads the execution files of its own namespace and of its parent namespaces
    (`company.team` reads those of `company.team` and `company`), and those of the execution
    that started it (a Subflow's parent, a Flow trigger's upstream execution: the trigger's
    `namespace`, `flowId` and `executionId` variables), as Kestra does. A webhook supplying
    a URI of another namespace's execution can thus not read its files.

    Raises:
        StorageError: For a malformed URI or a file outside what the execution may read.
    """
    segments = parse_uri(uri)
    own = tuple(str(namespace).split("."))
    for size in range(len(own), 0, -1):
        if _execution_file_of(segments, own[:size]):
            return
    upstream = _upstream(trigger)
    if upstream is not None and len(segments) > len(upstream) and segments[: len(upstream)] == upstream:
        return
    owner = next(
        (
            ".".join(segments[:index])
            for index in range(1, len(segments) - 3)
            if segments[index + 1] == "executions"
        ),
        None,
    )
    whose = f"it belongs to namespace `{owner}`" if owner else "it is not an execution file"
    allowed = "its own namespace and its parent namespaces"
    if upstream is not None:
        allowed += ", and of the execution that started it"
    raise StorageError(
        f"File '{uri}' refused: {whose}; an execution of `{namespace}` reads only the execution "
        f"files of {allowed}"
    )


def _upstream(trigger: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    """The folder of the execution that started this one, as path segments, if any."""
    variables = (trigger or {}).get("variables")
    if not isinstance(variables, Mapping):
        return None
    named = [variables.get(key) for key in ("namespace", "flowId", "executionId")]
    if not all(isinstance(value, str) and value for value in named):
        return None
    try:
        return parse_uri(execution_uri(*(str(value) for value in named)))
    except StorageError:
        return None


def _execution_file_of(segments: Sequence[str], namespace: Sequence[str]) -> bool:
    """Whether the URI segments name a file inside an execution of `namespace` (any flow)."""
    size = len(namespace)
    return (
        len(segments) > size + 3
        and tuple(segments[:size]) == tuple(namespace)
        and segments[size + 1] == "executions"
    )
