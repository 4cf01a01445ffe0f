"""The JSON Schema of flow files (`tiercel schema`), checked with the jsonschema library: every sample
and conformance flow is valid against it, broken flows are not, where they break, and the task
types of an installed plugin are in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import CONFORMANCE_FLOWS, REPO
from tiercel.engine import flow_schema, is_test_file, registry

TIERCEL = Path(sys.executable).parent / "tiercel"
PLUGIN = REPO / "tests" / "plugins" / "hello"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = flow_schema(registry())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def flow_files() -> list[Path]:
    samples = [
        path
        for path in sorted((REPO / "sample_flows").rglob("*.y*ml"))
        if "_files" not in path.parts and not path.name.startswith("_namespace") and not is_test_file(path)
    ]
    return samples + sorted(CONFORMANCE_FLOWS.glob("*.y*ml"))


def test_there_are_flows_to_check() -> None:
    assert len(flow_files()) > 40


@pytest.mark.parametrize("path", flow_files(), ids=lambda path: path.name)
def test_every_sample_and_conformance_flow_is_valid_against_the_schema(
    path: Path, validator: jsonschema.Draft7Validator
) -> None:
    errors = [
        f"{list(error.absolute_path)}: {error.message[:200]}" for error in validator.iter_errors(_load(path))
    ]
    assert not errors, errors


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


LOG = "    type: io.kestra.plugin.core.log.Log\n"
BROKEN = {
    "a misspelt task property": (
        "id: a\nnamespace: acme\ntasks:\n  - id: t\n" + LOG + "    mesage: hi\n",
        ["tasks", 0],
    ),
    "an unknown task type": (
        "id: a\nnamespace: acme\ntasks:\n  - id: t\n    type: io.kestra.plugin.core.log.Lgo\n",
        ["tasks", 0, "type"],
    ),
    "a namespace in capitals": ("id: a\nnamespace: Acme\ntasks:\n  - id: t\n" + LOG, ["namespace"]),
    "no tasks": ("id: a\nnamespace: acme\n", []),
    "a misspelt property of a nested task": (
        "id: a\nnamespace: acme\ntasks:\n  - id: p\n    type: io.kestra.plugin.core.flow.Parallel\n"
        "    tasks:\n      - id: t\n    " + LOG + "        bogus: 1\n",
        ["tasks", 0, "tasks", 0],
    ),
    "a misspelt trigger property": (
        "id: a\nnamespace: acme\ntasks:\n  - id: t\n" + LOG + "triggers:\n  - id: s\n"
        "    type: io.kestra.plugin.core.trigger.Schedule\n    crom: '* * * * *'\n",
        ["triggers", 0],
    ),
    "an unknown concurrency behaviour": (
        "id: a\nnamespace: acme\nconcurrency:\n  limit: 1\n  behavior: WAIT\ntasks:\n  - id: t\n" + LOG,
        ["concurrency", "behavior"],
    ),
    "an unknown input type": (
        "id: a\nnamespace: acme\ninputs:\n  - id: x\n    type: STRNG\ntasks:\n  - id: t\n" + LOG,
        ["inputs", 0, "type"],
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_flow_is_invalid_where_it_breaks(name: str, validator: jsonschema.Draft7Validator) -> None:
    text, where = BROKEN[name]
    errors = list(validator.iter_errors(yaml.safe_load(text)))
    assert errors, f"{name}: the schema took it"
    assert any(list(error.absolute_path)[: len(where)] == where for error in errors), [
        (list(error.absolute_path), error.message[:100]) for error in errors
    ]


def test_the_task_types_of_an_installed_plugin_are_in_the_schema(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{PLUGIN}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([str(TIERCEL), "schema"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    hello = schema["definitions"]["task:io.example.tasks.Hello"]
    assert "name" in hello["properties"] and hello["additionalProperties"] is False
    assert "io.example.tasks.Hello" in schema["definitions"]["task"]["properties"]["type"]["enum"]
    flow = {
        "id": "greet",
        "namespace": "acme",
        "tasks": [{"id": "h", "type": "io.example.tasks.Hello", "name": "Ada"}],
    }
    jsonschema.validate(flow, schema, cls=jsonschema.Draft7Validator)


def test_task_types_carry_their_description_and_enumerations_their_values(
    validator: jsonschema.Draft7Validator,
) -> None:
    definitions = validator.schema["definitions"]
    assert definitions["task:io.kestra.plugin.core.namespace.UploadFiles"]["description"]
    assert definitions["task:io.kestra.plugin.core.log.Log"]["properties"]["logLevel"]["enum"] == [
        "TRACE",
        "DEBUG",
        "INFO",
        "WARN",
        "ERROR",
    ]
