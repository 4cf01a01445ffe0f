"""The expression functions that read engine state: errorLogs(), kv(), secret(), namespace, the file
functions read(), fileURI(), fileExists(), fileSize() and isFileEmpty(), and tasksWithState().

Rendering is synchronous (the executor's steps, a handler's properties), but reading the KV store is
not: before a task's properties are rendered, `prefetch_kv` reads the keys their templates ask for
without blocking the event loop, and kv() then finds them in the current asyncio task's cache. The
keys are found by rendering each kv(...) call of the templates alone with a kv() that records what
it is asked (a key built from another key's value takes one more round). A key no prefetch saw (a
flowable's condition rendered by the executor, a key the dry render could not reach) is read at once
from the store's read-only connection, as before: the semantics stay "the value at the time of
rendering".

The file functions take a `kestra:///` URI of the internal storage, an `nsfile:///path` or
`nsfile://<namespace>/path` URI, or a plain path (a namespace file of the flow's namespace, or of the
`namespace` argument). An execution reads the execution files that `Storage.check_readable` allows,
and the namespace files of its own namespace and of its parent namespaces; `fileURI(path)` gives
`kestra:///<namespace as folders>/_files/<path>`, which the other functions read back as that
namespace file. `file://` URIs are refused: Tiercel has no allowed local paths.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..expressions import ExpressionError, Renderer
from ..expressions.core import fail_if_undefined
from ..expressions.variables import build_context
from ..flows.catalog import NAMESPACE_FILES_FOLDER
from ..internal_storage import Storage, StorageError
from ..internal_storage.uris import parse_uri
from ..mappings import strings_in
from ..model import Execution, Flow, LogEntry, LogLevel
from ..secrets import Masker, SecretError, Secrets
from ..tasks.registry import Registry
from ..tasks.services import NamespaceFiles
from ..tasks.types import Kind

# Rounds of dry renders: each may uncover keys built from the values the previous one read.
PREFETCH_ROUNDS = 3
STEP_CALLS_CACHED = 4096
# A kv() call with its arguments (one level of nested parentheses): rendered alone to learn its key.
_KV_CALL = re.compile(r"\bkv\s*\(((?:[^()]|\([^()]*\))*)\)")
# A text that starts with a URI scheme (Kestra's AbstractFileFunction.URI_PATTERN).
_URI_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

# (namespace, key) -> (found, value), read for the renders of the current asyncio task.
_Values = dict[tuple[str, str], tuple[bool, Any]]
_PREFETCHED: contextvars.ContextVar[_Values | None] = contextvars.ContextVar(
    "tiercel_kv_prefetched", default=None
)


class KeyValueReader(Protocol):
    """The store as kv() reads it."""

    async def kv_get(self, namespace: str, key: str) -> tuple[bool, Any]: ...

    def kv_get_now(self, namespace: str, key: str) -> tuple[bool, Any]: ...


class NamespaceContexts(Protocol):
    def context(self, namespace: str) -> dict[str, Any]: ...


def file_uri(namespace: str, path: Any) -> str:
    """Kestra's fileURI(): the internal-storage URI of a namespace file, `kestra:///a/b/_files/<path>`."""
    return f"kestra:///{namespace.replace('.', '/')}/{NAMESPACE_FILES_FOLDER}/{path}"


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file a file function names: a `kestra:///` URI of the storage, or a namespace file."""

    uri: str | None = None
    namespace: str = ""
    name: str = ""


def _may_read_namespace(target: str, own: str) -> bool:
    """An execution reads the namespace files of its own namespace and of its parent namespaces."""
    return target == own or own.startswith(target + ".")


def locate_file(path: Any, namespace: Any, execution: Execution, storage: Storage) -> FileRef:
    """What a file function's `path` (and `namespace`) name, as Kestra's AbstractFileFunction reads
    them, with the reading rules of the module's description.

    Raises:
        StorageError: For an unsupported scheme, a malformed URI or a file the execution may not read.
    """
    text, own = str(path), execution.namespace
    if namespace is not None and not isinstance(namespace, str):
        raise StorageError("the `namespace` argument must be a string")
    target = own
    if text.startswith("kestra://"):
        segments = parse_uri(text)
        if NAMESPACE_FILES_FOLDER in segments[:-1]:
            index = segments.index(NAMESPACE_FILES_FOLDER)
            target, name = ".".join(segments[:index]), "/".join(segments[index + 1 :])
        else:
            storage.check_readable(text, own, execution.trigger)
            return FileRef(uri=text)
    elif text.startswith("nsfile://"):
        authority, _, name = text.removeprefix("nsfile://").partition("/")
        if authority and namespace is not None:
            raise StorageError("You cannot set a namespace both as the function argument and inside the URI")
        target = authority or namespace or own
    elif text.startswith("file:"):
        raise StorageError(f"`{text}` refused: local files (file://) are not readable from expressions")
    elif _URI_SCHEME.match(text):
        raise StorageError(f"Cannot process the URI {text}: scheme not supported.")
    else:
        target, name = namespace or own, text
    if not _may_read_namespace(target, own):
        raise StorageError(
            f"namespace file `{name}` of namespace `{target}` refused: an execution of `{own}` reads "
            "only the namespace files of its own namespace and of its parent namespaces"
        )
    return FileRef(namespace=target, name=name)


def tasks_with_state(execution: Execution, state: Any) -> list[dict[str, Any]]:
    """Kestra's tasksWithState(state): `{taskId, state}` of each task run in that state (its latest run
    of each loop value, with `value` then), from the `tasks` map Kestra builds of an execution."""
    if state is None:
        raise ExpressionError("The 'tasksWithState' function expects an argument 'state'.")
    wanted = str(state).upper()
    latest: dict[tuple[str, str | None], str] = {}
    for run in execution.task_runs:
        latest[(run.task_id, run.value)] = run.state.current.value
    return [
        {"taskId": task_id, "state": current} | ({} if value is None else {"value": value})
        for (task_id, value), current in latest.items()
        if current.upper() == wanted
    ]


class ExpressionFunctions:
    """Builds the engine's functions for the renders of one execution (`functions(execution, pending)`)."""

    def __init__(
        self,
        *,
        renderer: Renderer,
        registry: Registry,
        kv: KeyValueReader,
        secrets: Secrets,
        masker: Masker,
        storage: Storage,
        namespace_files: NamespaceFiles | None,
        namespaces: NamespaceContexts,
        errors_of: Callable[[str], Sequence[LogEntry]],
        clear_inputs: Callable[[str], Mapping[str, Any] | None],
    ) -> None:
        self.renderer = renderer
        self.kv_reader = kv
        self.registry = registry
        # The kv(...) calls the executor may render, by flow revision.
        self._step_calls: dict[tuple[str, str, int], frozenset[str]] = {}
        self.secrets = secrets
        self.masker = masker
        self.storage = storage
        self.namespace_files = namespace_files
        self.namespaces = namespaces
        self.errors_of = errors_of
        self.clear_inputs = clear_inputs

    def __call__(self, execution: Execution, pending: list[LogEntry]) -> dict[str, Any]:
        """The functions for one render; `pending` are the error lines of the step not stored yet."""

        def error_logs() -> list[dict[str, Any]]:
            entries = [*self.errors_of(execution.id), *pending]
            return [entry.to_json() for entry in entries if entry.level is LogLevel.ERROR]

        def kv(key: str, namespace: str | None = None, errorOnMissing: bool = True) -> Any:
            space = namespace or execution.namespace
            found, value = self._kv_value(space, str(key))
            if not found and errorOnMissing:
                raise ExpressionError(f"The key '{key}' does not exist in the namespace '{space}'.")
            return value

        def secret(name: str) -> str:
            try:
                value = self.secrets.get(str(name))
            except SecretError as error:
                raise ExpressionError(str(error)) from None
            self.masker.add(value)
            return value

        functions: dict[str, Any] = {
            "errorLogs": error_logs,
            "kv": kv,
            "secret": secret,
            **self._file_functions(execution),
            "tasksWithState": lambda state=None: tasks_with_state(execution, state),
            "namespace": self.namespaces.context(execution.namespace),
        }
        clear = self.clear_inputs(execution.id)
        if clear:
            functions["inputs"] = {**execution.inputs, **clear}
        return functions

    def _file_functions(self, execution: Execution) -> dict[str, Callable[..., Any]]:
        """read(), fileExists(), fileSize(), isFileEmpty() and fileURI() for one execution."""

        def on_file(
            name: str,
            path: Any,
            namespace: Any,
            stored: Callable[[str], Any],
            namespace_file_: Callable[[Path, FileRef], Any],
        ) -> Any:
            fail_if_undefined(path, namespace)
            if path is None:
                raise ExpressionError(f"The '{name}' function expects an argument 'path'.")
            try:
                found = locate_file(path, namespace, execution, self.storage)
                if found.uri is not None:
                    return stored(found.uri)
                if self.namespace_files is None:
                    raise StorageError("namespace files need a flows folder")
                where = self.namespace_files.local_path(found.namespace, found.name.lstrip("/"))
                return namespace_file_(where, found)
            except (StorageError, OSError) as error:
                raise ExpressionError(f"{name}(`{path}`): {error}") from None

        def existing(where: Path, found: FileRef) -> Path:
            if not where.is_file():
                raise StorageError(f"no namespace file `{found.name}` in namespace `{found.namespace}`")
            return where

        def size(name: str, path: Any, namespace: Any) -> int:
            return int(
                on_file(name, path, namespace, self.storage.size,
                        lambda where, found: existing(where, found).stat().st_size)
            )  # fmt: skip

        def read(path: Any = None, namespace: Any = None) -> str:
            """A kestra:// file of the internal storage, or a namespace file."""
            return str(
                on_file("read", path, namespace, self.storage.read_text,
                        lambda where, found: existing(where, found).read_text())
            )  # fmt: skip

        def file_exists(path: Any = None, namespace: Any = None) -> bool:
            return bool(
                on_file("fileExists", path, namespace, lambda uri: self.storage.path(uri).is_file(),
                        lambda where, _: where.is_file())
            )  # fmt: skip

        def file_size(path: Any = None, namespace: Any = None) -> int:
            return size("fileSize", path, namespace)

        def is_file_empty(path: Any = None, namespace: Any = None) -> bool:
            return size("isFileEmpty", path, namespace) == 0

        def file_uri_of(path: Any = None) -> str:
            fail_if_undefined(path)
            if path is None:
                raise ExpressionError(
                    "The 'fileURI' function expects an argument 'path' that is a path to a namespace file."
                )
            return file_uri(execution.namespace, path)

        return {
            "read": read,
            "fileExists": file_exists,
            "fileSize": file_size,
            "isFileEmpty": is_file_empty,
            "fileURI": file_uri_of,
        }

    def _kv_value(self, namespace: str, key: str) -> tuple[bool, Any]:
        prefetched = _PREFETCHED.get()
        if prefetched is not None and (namespace, key) in prefetched:
            return prefetched[(namespace, key)]
        return self.kv_reader.kv_get_now(namespace, key)

    async def prefetch_kv(self, value: Any, variables: Mapping[str, Any]) -> None:
        """Read the KV keys the templates in `value` ask for, for this asyncio task's renders.

        Call it from the asyncio task that renders afterwards (a task run's attempt): the values
        are kept in a context variable of that task only, read afresh by each call.
        """
        fetched: _Values = {}
        _PREFETCHED.set(fetched)
        await self._prefetch(_kv_calls(value), variables, fetched)

    async def prefetch_step(self, flow: Flow, execution: Execution) -> None:
        """Read the KV keys the flowable tasks of `flow` ask for, for the executor's next steps.

        The values stay until `end_steps`: the loop calls it once the steps of its batch are taken.
        """
        key = (*flow.uid, flow.revision)
        calls = self._step_calls.get(key)
        if calls is None:
            if len(self._step_calls) >= STEP_CALLS_CACHED:
                self._step_calls.clear()
            calls = self._step_calls[key] = _kv_calls(self._rendered_by_executor(flow))
        if not calls:
            return
        fetched = _PREFETCHED.get()
        if fetched is None:
            fetched = {}
            _PREFETCHED.set(fetched)
        await self._prefetch(calls, build_context(flow, execution, extra=self(execution, [])), fetched)

    def _rendered_by_executor(self, flow: Flow) -> list[Any]:
        """What the executor renders itself: flowable properties, runIf and conditions, the flow's
        outputs."""
        specs = flow.tasks_by_id.values()
        rendered: list[Any] = [spec.props for spec in specs if self._is_flowable(spec.type)]
        rendered += [spec.run_if for spec in specs if spec.run_if]
        rendered += [list(spec.conditions) for spec in specs if spec.conditions]
        rendered += [output.value for output in flow.outputs]
        return rendered

    def _is_flowable(self, task_type: str) -> bool:
        found = self.registry.lookup(task_type)
        return found is not None and found.kind is Kind.FLOWABLE

    def end_steps(self) -> None:
        """Forget what `prefetch_step` read: the next batch reads the values again."""
        if _PREFETCHED.get() is not None:
            _PREFETCHED.set(None)

    async def _prefetch(self, calls: frozenset[str], variables: Mapping[str, Any], fetched: _Values) -> None:
        if not calls:
            return
        default_namespace = str((variables.get("flow") or {}).get("namespace") or "")
        wanted: list[tuple[str, str]] = []

        def record(key: Any, namespace: Any = None, errorOnMissing: bool = True) -> Any:
            where = (str(namespace or default_namespace), str(key))
            if where in fetched:
                return fetched[where][1]
            wanted.append(where)
            return None

        dry = {**variables, "kv": record}
        for _ in range(PREFETCH_ROUNDS):
            wanted.clear()
            for call in calls:
                with contextlib.suppress(Exception):  # the render proper reports its errors
                    self.renderer.render(call, dry)
            if not wanted:
                return
            for where in dict.fromkeys(wanted):
                fetched[where] = await self.kv_reader.kv_get(*where)


def _kv_calls(value: Any) -> frozenset[str]:
    """Each kv(...) call in the strings of `value`, as a template of its own."""
    return frozenset(
        f"{{{{ kv({match.group(1)}) }}}}"
        for text in strings_in(value)
        if "kv" in text
        for match in _KV_CALL.finditer(text)
    )
