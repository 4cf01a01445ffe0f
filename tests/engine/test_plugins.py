"""Third-party task types arrive through the `tiercel.tasks` entry point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from importlib.metadata import EntryPoint
from pathlib import Path

from tiercel.engine.plugin import Kind, Registry, TaskType

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "hello"
TIERCEL = Path(sys.executable).parent / "tiercel"
FLOW = """
id: greet
namespace: acme
tasks:
  - id: hello
    type: io.example.tasks.Hello
    name: Ada
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.hello.greeting }}"
"""


def test_a_plugin_task_type_validates_and_runs(tmp_path: Path) -> None:
    (tmp_path / "greet.yml").write_text(FLOW)
    env = {**os.environ, "PYTHONPATH": f"{PLUGIN}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = subprocess.run(
        [str(TIERCEL), "run", "--db", str(tmp_path / "t.db"), "--json", str(tmp_path / "greet.yml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    execution = json.loads(run.stdout)
    outputs = {r["taskId"]: r["outputs"] for r in execution["taskRunList"]}
    assert outputs["echo"] == {"value": "Hello Ada"}


def test_without_the_plugin_the_type_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "greet.yml").write_text(FLOW)
    check = subprocess.run(
        [str(TIERCEL), "validate", str(tmp_path / "greet.yml")], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 1
    assert "io.example.tasks.Hello" in check.stdout + check.stderr


BROKEN = Path(__file__).resolve().parents[1] / "plugins" / "broken"


def with_plugins(*folders: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*map(str, folders), os.environ.get("PYTHONPATH", "")]),
    }


def test_plugins_lists_each_type_with_its_package_and_names_a_plugin_that_failed(tmp_path: Path) -> None:
    listed = subprocess.run(
        [str(TIERCEL), "plugins", "--json"], capture_output=True, text=True, env=with_plugins(PLUGIN, BROKEN)
    )
    assert listed.returncode == 1  # a plugin failed to load
    found = json.loads(listed.stdout)
    packages = {entry["type"]: entry["package"] for entry in found["types"]}
    assert packages["io.example.tasks.Hello"] == "tiercel-hello 0.1"
    assert packages["io.kestra.plugin.core.log.Log"] == "tiercel"
    kinds = {entry["type"]: entry["kind"] for entry in found["types"]}
    assert kinds["io.kestra.plugin.jdbc.postgresql.Trigger"] == "trigger"  # a family's polling trigger
    assert kinds["io.kestra.plugin.amqp.RealtimeTrigger"] == "refused trigger"
    [failure] = found["failures"]
    assert (
        failure["package"] == "tiercel-broken 0.1" and "a_library_that_is_not_installed" in failure["error"]
    )


def test_a_plugin_that_fails_to_load_leaves_the_other_flows_valid_and_is_named_where_it_matters(
    tmp_path: Path,
) -> None:
    (tmp_path / "greet.yml").write_text(FLOW)
    (tmp_path / "other.yml").write_text(
        FLOW.replace("greet", "other").replace("io.example.tasks.Hello", "io.broken.Task")
    )
    env = with_plugins(PLUGIN, BROKEN)
    ran = subprocess.run(
        [str(TIERCEL), "run", "--db", str(tmp_path / "t.db"), "--json", str(tmp_path / "greet.yml")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    checked = subprocess.run(
        [str(TIERCEL), "validate", str(tmp_path / "other.yml")], capture_output=True, text=True, env=env
    )
    assert checked.returncode == 1
    assert "Unknown task type `io.broken.Task`" in checked.stdout
    assert "the task plugin `broken` (package tiercel-broken 0.1) failed to load" in checked.stdout


BUILT_IN_ONLY = """
id: nightly
namespace: acme
tasks:
  - id: log
    type: io.kestra.plugin.core.log.Log
    message: hi
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 3 * * *"
"""

LOADED = """
import sys
from tiercel.engine.parser import parse_flow
from tiercel.engine.triggers.schedule import _poller
flow = parse_flow(sys.argv[1])
assert _poller(flow.triggers[0].type) is None  # how the scheduler follows it: not polled
print("tiercel_hello" in sys.modules)
parse_flow(sys.argv[2])
print("tiercel_hello" in sys.modules)
"""


def test_plugins_are_imported_only_once_a_flow_names_a_type_the_engine_lacks() -> None:
    # Start-up pays for no plugin when every type a flow names is the engine's own.
    loaded = subprocess.run(
        [sys.executable, "-c", LOADED, BUILT_IN_ONLY, FLOW],
        capture_output=True, text=True, env=with_plugins(PLUGIN), timeout=60,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["False", "True"]


def _looks_up_while_registering(registry: Registry) -> None:
    registry.add(TaskType("io.example.tasks.Late", Kind.RUNNABLE, frozenset()))
    registry.lookup("io.example.tasks.NotThere")  # a miss while the plugins load
    assert registry.failures == []


def test_a_plugin_may_look_names_up_while_it_registers_and_other_threads_wait_for_it() -> None:
    entry = EntryPoint("late", f"{__name__}:_looks_up_while_registering", "tiercel.tasks")
    registry = Registry(plugins=lambda: [entry])
    found: list[object] = []
    threads = [
        threading.Thread(target=lambda: found.append(registry.lookup("io.example.tasks.Late")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert len(found) == 4 and all(
        getattr(task_type, "name", None) == "io.example.tasks.Late" for task_type in found
    )
