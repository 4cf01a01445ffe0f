"""What script tasks find first on PATH and PYTHONPATH (`python`, as Kestra's images have one, and
Kestra's helper library), the environment they start with, and the warm interpreter their Python
tasks fork from, started early.

Light on purpose (the standard library and the secrets' names): `tiercel run` imports it before
the engine, so that a flow's Python interpreter starts while the engine itself loads.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from ..secrets import ENV_PREFIX

__all__ = [
    "PYTHON_TASK_TYPES",
    "SCRIPTS",
    "base_environment",
    "engine_environment",
    "python_settled",
    "settle_python",
    "toolbox",
    "warm_python",
]

_log = logging.getLogger(__name__)

SCRIPTS = "io.kestra.plugin.scripts"
# The task types whose `python script.py` may be forked (not the legacy Python task: bash runs it).
PYTHON_TASK_TYPES = frozenset(f"{SCRIPTS}.python.{kind}" for kind in ("Commands", "Script"))
# The variables the engine reads secrets from, beside ``SECRET_*`` (see engine.secrets).
SECRETS_FILE_ENV = "TIERCEL_SECRETS_FILE"

# What Kestra's Python helper library (`from kestra import Kestra`) provides, printed with the same
# protocol, so that Python scripts written for Kestra run unchanged.
_KESTRA_PY = '''"""Kestra's helper for Python scripts: outputs, metrics and logs over stdout."""
import json
import logging
import sys
import time


class Kestra:
    @staticmethod
    def _send(payload):
        print("::" + json.dumps(payload, default=str) + "::", flush=True)

    @staticmethod
    def outputs(map_):
        Kestra._send({"outputs": map_})

    @staticmethod
    def counter(key, count, tags=None):
        Kestra._send({"metrics": [{"name": key, "type": "counter", "value": count, "tags": tags or {}}]})

    @staticmethod
    def timer(key, duration, tags=None):
        """A duration in seconds, or the time a callable takes to run."""
        if callable(duration):
            start = time.perf_counter()
            duration()
            value = time.perf_counter() - start
        else:
            value = duration
        Kestra._send({"metrics": [{"name": key, "type": "timer", "value": value, "tags": tags or {}}]})

    @staticmethod
    def logger():
        class _Handler(logging.Handler):
            def emit(self, record):
                Kestra._send({"logs": [{"level": record.levelname, "message": self.format(record)}]})

        log = logging.getLogger("Kestra")
        if not log.handlers:
            log.addHandler(_Handler())
            log.setLevel(logging.DEBUG)
            log.propagate = False
        return log
'''


@cache
def toolbox() -> Path:
    """A folder put first on PATH and PYTHONPATH: `python` (Kestra images have one) and `kestra`."""
    folder = Path(tempfile.mkdtemp(prefix="tiercel-toolbox-"))
    # One per engine process, removed when it exits (tasks and forkservers are gone by then).
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "python").symlink_to(shutil.which("python3") or sys.executable)
    (folder / "kestra.py").write_text(_KESTRA_PY)
    return folder


# A Lock, not an RLock: `warm_python` takes it in one thread and its own thread lets it go.
_SETTLE_LOCK = threading.Lock()
# Once the link is settled, Python tasks no longer go through a worker thread for it.
_settled = False


def settle_python() -> None:
    """Point the toolbox's `python` at the interpreter itself when PATH gives a launcher script.

    A pyenv or asdf shim costs a shell start and a version lookup at every spawn (35 ms here, as
    much as Python's own start-up), so the interpreter it selects is asked once for its own path,
    on the first Python task, and the link is replaced atomically. Runs in worker threads.
    """
    global _settled
    with _SETTLE_LOCK:
        _settle_python_once()
        _settled = True


@cache
def _settle_python_once() -> None:
    link = toolbox() / "python"
    found = os.readlink(link)
    try:
        with open(found, "rb") as head:
            if head.read(4) == b"\x7fELF":
                return
        # Isolated and without site: the answer is the same, and it comes sooner.
        done = subprocess.run(
            [found, "-I", "-S", "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            cwd=link.parent,
        )
    except (OSError, subprocess.SubprocessError):
        return
    real = done.stdout.strip()
    if done.returncode != 0 or not real or not os.access(real, os.X_OK):
        return
    staged = link.with_name(f".python-{os.getpid()}")
    staged.unlink(missing_ok=True)
    staged.symlink_to(real)
    os.replace(staged, link)


def python_settled() -> bool:
    """Whether `settle_python` has run and no warm-up is under way: Python tasks then need not go
    through a thread to wait for either."""
    return _settled and not _SETTLE_LOCK.locked()


def engine_environment() -> dict[str, str]:
    """The engine's environment as task programs inherit it: without the variables holding secrets.

    ``SECRET_*`` (what ``secret()`` reads) and ``TIERCEL_SECRETS_FILE`` are left out: a program that
    never asked for a secret must not be able to print one. A task's own ``env`` is added on top.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(ENV_PREFIX) and name != SECRETS_FILE_ENV
    }


def base_environment() -> dict[str, str]:
    """The environment of a script task without an `env` of its own: the toolbox comes first."""
    env = engine_environment()
    tools = str(toolbox())
    env["PATH"] = tools + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["PYTHONPATH"] = tools + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def warm_python(flow_file: Path) -> None:
    """Start the warm interpreter that the flow's Python tasks fork from, if it has any, in a thread.

    What `tiercel run` does first with a flow file: a version manager's shim is settled and the
    forkserver starts while the engine loads and parses the flow, instead of once the first Python
    task has started. Only the file's task types are read here (a file that is not YAML starts
    nothing). A guess at what the tasks need: a task with an environment or interpreter of its own
    starts its forkserver as before, and one that no task took is closed when the worker stops (or,
    when the run goes to another process, exits with this one).
    """
    import yaml

    try:
        document = yaml.load(flow_file.read_bytes(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return
    if PYTHON_TASK_TYPES.isdisjoint(_types(document)):
        return
    tools = toolbox()
    # The engine's umask as its tasks get it: the engine sets another for a moment as it opens its
    # files, and the forkserver, started meanwhile, would pass that one on to every task.
    umask = os.umask(0o022)
    os.umask(umask)
    # The settling lock is held until the forkserver is started: a first task that comes sooner
    # waits for it there, instead of starting a second interpreter.
    if not _SETTLE_LOCK.acquire(blocking=False):
        return  # settling already: a warm-up is under way, or the first task came first

    def start() -> None:
        global _settled
        try:
            _settle_python_once()
            # Imported here, meanwhile the engine's own imports go on in the main thread.
            from ..processes.forkserver import start_early

            start_early("python", str(tools / "python"), base_environment(), umask)
        except Exception as error:  # the tasks start their interpreter as they would have
            _log.debug("the early Python forkserver did not start: %s", error)
        finally:
            _settled = True
            _SETTLE_LOCK.release()

    try:
        threading.Thread(target=start, name="tiercel-python-warmup", daemon=True).start()
    except RuntimeError:  # no thread to be had: the first task settles and starts as before
        _SETTLE_LOCK.release()


def _types(node: Any) -> Iterator[str]:
    """Every string under a `type` key in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "type" and isinstance(value, str):
                yield value
            else:
                yield from _types(value)
    elif isinstance(node, list):
        for item in node:
            yield from _types(item)
