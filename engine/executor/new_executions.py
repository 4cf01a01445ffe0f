"""New executions: a flow, inputs and labels become a CREATED execution, ready to be stored.

Inputs are checked and typed against the flow's input specs (engine.inputs). A FILE input is a
kestra:// URI this execution may read, or (only from the user's own commands: `tiercel run`, the
dashboard's run form) a local file copied into the internal storage. A SECRET input is stored masked;
its clear value is held here while the execution runs, masked in everything shown, and released when
the execution ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..expressions import Renderer
from ..expressions.variables import build_context
from ..inputs import InputError, input_json_value, resolve_inputs
from ..internal_storage import Storage, StorageError
from ..labels import CORRELATION_ID
from ..model import Execution, Flow, Label, State, new_id
from ..secrets import Masker


class NewExecutions:
    """Builds CREATED executions, and holds the clear values of their SECRET inputs."""

    def __init__(self, renderer: Renderer, storage: Storage, masker: Masker) -> None:
        self.renderer = renderer
        self.storage = storage
        self.masker = masker
        # SECRET inputs are stored masked; their values live here while the execution runs.
        self._secret_inputs: dict[str, dict[str, Any]] = {}

    def clear_inputs(self, execution_id: str) -> Mapping[str, Any] | None:
        """The clear values of an execution's SECRET inputs, if it has any."""
        return self._secret_inputs.get(execution_id)

    def release(self, execution_id: str) -> None:
        """The execution ended: forget its secret values (they are no longer masked either)."""
        self._secret_inputs.pop(execution_id, None)
        self.masker.release(execution_id)

    def new_execution(
        self,
        flow: Flow,
        inputs: Mapping[str, Any],
        labels: Sequence[Label] = (),
        *,
        parent_id: str | None = None,
        trigger: Mapping[str, Any] | None = None,
        local_files: bool = False,
        check_inputs: bool = True,
    ) -> Execution:
        """Validate inputs and build a CREATED execution (raises InputError).

        A FILE input may name a local file only when `local_files` is set (see `Engine.trigger`).
        Without `check_inputs`, the execution has no inputs: one that is to be stored FAILED
        because its inputs were invalid (see `Executions.submit`).
        """
        execution_id = new_id()
        stub = Execution(execution_id, flow.namespace, flow.id, flow.revision, State.new())

        def render_default(value: Any) -> Any:
            return self.renderer.render_value(value, build_context(flow, stub))

        typed = resolve_inputs(flow.inputs, inputs, render=render_default) if check_inputs else {}
        stored = {key: input_json_value(value) for key, value in typed.items()}
        secret_values: dict[str, Any] = {}
        try:
            for spec in flow.inputs:
                value = stored.get(spec.id)
                if value is None:
                    continue
                if spec.type == "FILE":
                    stored[spec.id] = self.store_input_file(
                        flow, execution_id, spec.id, str(value), local_files=local_files, trigger=trigger
                    )
                elif spec.type == "SECRET":
                    # Held for this execution only: released when it ends (see `release`).
                    self.masker.add(str(value), owner=execution_id)
                    secret_values[spec.id] = value
                    stored[spec.id] = self.masker.mask(str(value))
        except BaseException:
            self.masker.release(execution_id)
            raise
        if secret_values:
            self._secret_inputs[execution_id] = secret_values
        merged = {label.key: label.value for label in flow.labels}
        merged.update({label.key: label.value for label in labels})
        merged.setdefault(CORRELATION_ID, execution_id)  # unless it comes from upstream
        return Execution(
            id=execution_id,
            namespace=flow.namespace,
            flow_id=flow.id,
            flow_revision=flow.revision,
            state=State.new(),
            inputs=stored,
            labels=tuple(Label(k, v) for k, v in merged.items()),
            parent_id=parent_id,
            trigger=trigger,
        )

    def store_input_file(
        self,
        flow: Flow,
        execution_id: str,
        input_id: str,
        value: str,
        *,
        local_files: bool = False,
        trigger: Mapping[str, Any] | None = None,
    ) -> str:
        """A FILE input given as a local path is copied into the storage; a kestra:// URI stays."""
        if value.startswith("kestra://"):
            try:  # only a file this execution may read (see Storage.check_readable)
                self.storage.check_readable(value, flow.namespace, trigger)
                found = self.storage.exists(value)
            except StorageError as error:
                raise InputError([f"Invalid value for input `{input_id}`. Cause: {error}"]) from None
            if not found:
                raise InputError([f"Invalid value for input `{input_id}`. Cause: no file at {value}"])
            return value
        if not local_files:
            # A trigger's values come from outside (a webhook body): a path would copy any file the
            # engine can read into the execution.
            raise InputError(
                [
                    f"Invalid value for input `{input_id}`. Cause: a local file path is only accepted from "
                    "`tiercel run` or the dashboard's run form; a trigger must pass a kestra:// URI"
                ]
            )
        source = Path(value).expanduser()
        if not source.is_file():
            raise InputError([f"Invalid value for input `{input_id}`. Cause: no such file {value}"])
        base = self.storage.input_uri(flow.namespace, flow.id, execution_id, input_id)
        return self.storage.put_file(base, source.name, source)
