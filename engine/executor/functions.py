"""The expression functions that read engine state: errorLogs(), kv(), secret(), read(), namespace.

Rendering is synchronous (the executor's steps, a handler's properties), but reading the KV store is
not: before a task's properties are rendered, `prefetch_kv` reads the keys their templates ask for
without blocking the event loop, and kv() then finds them in the current asyncio task's cache. The
keys are found by rendering each kv(...) call of the templates alone with a kv() that records what
it is asked (a key built from another key's value takes one more round). A key no prefetch saw (a
flowable's condition rendered by the executor, a key the dry render could not reach) is read at once
from the store's read-only connection, as before: the semantics stay "the value at the time of
rendering".
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..expressions import ExpressionError, Renderer
from ..expressions.variables import build_context
from ..flows.catalog import NAMESPACE_FILES_FOLDER
from ..internal_storage import Storage, StorageError, safe_relative
from ..model import Execution, Flow, LogEntry, LogLevel
from ..secrets import Masker, SecretError, Secrets
from ..tasks.registry import Registry
from ..tasks.types import Kind

# Rounds of dry renders: each may uncover keys built from the values the previous one read.
PREFETCH_ROUNDS = 3
STEP_CALLS_CACHED = 4096
# A kv() call with its arguments (one level of nested parentheses): rendered alone to learn its key.
_KV_CALL = re.compile(r"\bkv\s*\(((?:[^()]|\([^()]*\))*)\)")

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


def namespace_file(flows_dir: Path | None, namespace: str, name: str) -> Path:
    """The path of a namespace file, refusing anything outside the namespace's folder."""
    if flows_dir is None:
        raise StorageError("namespace files need a flows folder")
    folder = flows_dir / NAMESPACE_FILES_FOLDER / namespace
    path = (folder / safe_relative(name)).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise StorageError(f"no namespace file `{name}` in namespace `{namespace}`")
    return path


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


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
        flows_dir: Path | None,
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
        self.flows_dir = flows_dir
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

        def read(path: str) -> str:
            """A kestra:// file of the internal storage, or a namespace file of this namespace."""
            try:
                if str(path).startswith("kestra://"):
                    self.storage.check_readable(str(path), execution.namespace, execution.trigger)
                    return self.storage.read_text(str(path))
                return namespace_file(self.flows_dir, execution.namespace, str(path)).read_text()
            except (StorageError, OSError) as error:
                raise ExpressionError(f"read(`{path}`): {error}") from None

        functions: dict[str, Any] = {
            "errorLogs": error_logs,
            "kv": kv,
            "secret": secret,
            "read": read,
            "namespace": self.namespaces.context(execution.namespace),
        }
        clear = self.clear_inputs(execution.id)
        if clear:
            functions["inputs"] = {**execution.inputs, **clear}
        return functions

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
        """What the executor renders itself: flowable properties, runIf, the flow's outputs."""
        specs = flow.tasks_by_id.values()
        rendered: list[Any] = [spec.props for spec in specs if self._is_flowable(spec.type)]
        rendered += [spec.run_if for spec in specs if spec.run_if]
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
        for text in _strings(value)
        if "kv" in text
        for match in _KV_CALL.finditer(text)
    )
