"""Script tasks: shell, Python and Node commands and scripts, run as local processes.

This is Kestra's `io.kestra.plugin.core.runner.Process` task runner. A flow that asks for a Docker
runner still runs here, as a local process, and its log says so once. Processes run in their own
working directory (shared when a WorkingDirectory parent provides one); stdout lines are INFO logs,
stderr lines ERROR logs, and a `::{"outputs": ...}::` line sets outputs instead of being logged.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..expressions import to_text
from ..internal_storage import StorageError, files_matching, write_into
from ..model import LogLevel
from ..processes.confinement import Confinement, confine
from ..processes.forkserver import python_start
from ..processes.limits import LimitError, ResourceLimits
from ..processes.run import PROCESS_WATCH, TASK_FOLDER_PREFIX, ProcessError, run_process
from .base import TaskContext, TaskFailure
from .failures import EXIT_CODE
from .storage_uris import LocalCopies, copy_stored_file
from .toolbox import SCRIPTS, base_environment, python_settled, settle_python, toolbox

LEGACY = "io.kestra.core.tasks.scripts"
_PROTOCOL = re.compile(r"^::(\{.*\})::\s*$")
# Python's level names too: Kestra has no level above ERROR, so CRITICAL (and FATAL) log at ERROR.
_LEVELS = {level.value: level for level in LogLevel} | {
    "WARNING": LogLevel.WARN,
    "CRITICAL": LogLevel.ERROR,
    "FATAL": LogLevel.ERROR,
}


@dataclass(frozen=True)
class Flavour:
    """How one script task type turns its properties into a shell program."""

    language: str  # shell | python | node
    script: bool  # a `script` property (Script) rather than `commands` (Commands)
    legacy: bool = False  # io.kestra.core.tasks.scripts.Bash / Python

    @property
    def suffix(self) -> str:
        return {"python": ".py", "node": ".js"}.get(self.language, ".sh")

    @property
    def program(self) -> str:
        return {"python": "python", "node": "node"}.get(self.language, "sh")


@dataclass
class _Run:
    """What one process run collects from its output."""

    context: TaskContext
    vars: dict[str, Any]
    stderr_lines: int = 0

    def on_line(self, line: str, is_stderr: bool) -> None:
        match = _PROTOCOL.match(line)
        if match and self._protocol(match.group(1)):
            return
        if is_stderr:
            self.stderr_lines += 1
        self.context.log(LogLevel.ERROR if is_stderr else LogLevel.INFO, line)

    def _protocol(self, text: str) -> bool:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            return False
        if not isinstance(payload, dict):
            return False
        outputs = payload.get("outputs")
        if isinstance(outputs, dict):
            self.vars.update(outputs)
        if payload.get("metrics") is not None:
            self.context.report_metrics(payload["metrics"])
        for entry in payload.get("logs") or ():
            if isinstance(entry, dict):
                level = _LEVELS.get(str(entry.get("level", "INFO")).upper(), LogLevel.INFO)
                self.context.log(level, to_text(entry.get("message")))
        return True


def _docker_asked(props: Mapping[str, Any]) -> bool:
    runner = props.get("taskRunner")
    runner_type = str(runner.get("type", "")) if isinstance(runner, Mapping) else ""
    legacy_runner = str(props.get("runner", "")).upper()
    return "docker" in runner_type.lower() or legacy_runner == "DOCKER" or "docker" in props


def _docker_note(context: TaskContext) -> None:
    props = context.task.props
    if _docker_asked(props):
        context.log(
            LogLevel.INFO,
            "A Docker task runner was asked for; this engine runs the task as a local process "
            f"(image `{props.get('containerImage', 'default')}` is not used)",
        )


def _confinement(context: TaskContext) -> Confinement | None:
    """The Process runner's `memory` and `cpu` limits as they will be applied, said in the log."""
    runner = context.prop("taskRunner")
    if not isinstance(runner, Mapping) or _docker_asked(context.task.props):
        return None
    try:
        limits = ResourceLimits.of(dict(runner))
    except LimitError as error:
        raise TaskFailure(f"`taskRunner`: {error}") from None
    if limits is None:
        return None
    confinement = confine(limits)
    context.log(LogLevel.INFO, confinement.description)
    return confinement


def _text_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [to_text(item) for item in value]
    raise TaskFailure(f"`{name}` must be a list of strings")


def write_input_files(context: TaskContext, folder: Path, files: Any) -> None:
    """inputFiles: a map of file name -> inline text, or -> a kestra:// URI to copy."""
    if files is None:
        return
    if isinstance(files, str):
        try:
            files = json.loads(files)
        except json.JSONDecodeError:
            raise TaskFailure("`inputFiles` must be a map of file names to contents") from None
    if not isinstance(files, Mapping):
        raise TaskFailure("`inputFiles` must be a map of file names to contents")
    for name, content in files.items():
        is_uri = isinstance(content, str) and content.startswith("kestra://")
        try:
            target = write_into(folder, str(name), b"" if is_uri else to_text(content))
        except StorageError as error:
            raise TaskFailure(f"inputFiles `{name}`: {error}") from None
        if is_uri:
            try:
                copy_stored_file(context, content, target)
            except TaskFailure as error:
                raise TaskFailure(f"inputFiles `{name}`: {error}") from None


def copy_namespace_files(context: TaskContext, folder: Path, settings: Any) -> None:
    """namespaceFiles: {enabled, include, exclude}: copy the namespace's files into the folder."""
    if not isinstance(settings, Mapping) or not settings.get("enabled", True) or settings == {}:
        return
    try:
        store = context.namespace_store
        source = store.local_folder(context.flow.namespace) if store is not None else None
    except StorageError as error:
        raise TaskFailure(f"namespaceFiles: {error}") from None
    if source is None:
        context.log(LogLevel.WARN, f"namespaceFiles: no files for namespace `{context.flow.namespace}`")
        return
    include = _text_list(settings.get("include"), "include") or ["**"]
    excluded = set(files_matching(source, _text_list(settings.get("exclude"), "exclude")))
    try:
        for relative in files_matching(source, include):
            if relative not in excluded:
                write_into(folder, str(relative), (source / relative).read_bytes())
    except StorageError as error:
        raise TaskFailure(f"namespaceFiles: {error}") from None


def _environment(context: TaskContext, extra: Any, local: LocalCopies) -> dict[str, str]:
    # The task's own `env` may hold rendered secrets (asked for); the engine's secret variables not.
    # A storage URI in a value becomes a local copy, as in the commands.
    env = base_environment()
    if isinstance(extra, Mapping):
        env.update({str(k): local.replace(to_text(v)) for k, v in extra.items()})
    elif extra is not None:
        raise TaskFailure("`env` must be a map of names to values")
    return env


# Shells that read a script file with `.`: the script runs as with `-c`, in the same shell ($0 kept).
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"})
_OPTIONS_ENDING_IN_C = re.compile(r"^-[A-Za-z]*c$")


def _program(
    context: TaskContext, flavour: Flavour, folder: Path, local: LocalCopies
) -> tuple[list[str], Path | None, list[str] | None]:
    """The argv that runs this task (an interpreter and one shell program), the file holding that
    program, and the words of the one plain `python` command the program is, if it is one.

    As in Kestra, the lines (beforeCommands, then commands or the script) are joined into one program
    for the interpreter, and the `kestra://` URIs in them become local copies (storage_uris.py).
    The program itself goes into a file of the working folder, readable by the user only, and the
    argv only names that file: rendered secrets must not show in `ps`.
    """
    props = context.task.props
    if flavour.legacy:
        interpreter = [to_text(context.prop("interpreter", "/bin/bash"))]
        interpreter += _text_list(context.prop("interpreterArgs", ["-c"]), "interpreterArgs")
        fail_fast = bool(context.prop("exitOnFailed", True))
        # The legacy Python task runs main.py with its `args`, unless `commands` say otherwise.
        args = " ".join(_text_list(context.prop("args"), "args"))
        default = [f"python main.py {args}".rstrip()] if flavour.language == "python" else []
        body = _text_list(context.prop("commands", default), "commands")
        before: list[str] = []
    else:
        interpreter = _text_list(context.prop("interpreter", ["/bin/sh", "-c"]), "interpreter")
        fail_fast = bool(context.prop("failFast", True))
        before = _text_list(context.prop("beforeCommands"), "beforeCommands")
        if flavour.script:
            script = local.replace(to_text(context.prop("script")))
            if flavour.language == "shell":
                body = [script]
            else:
                path = folder / f".script-{context.run.id}{flavour.suffix}"
                _write_private(path, script)
                body = [f"{flavour.program} {path}"]
        else:
            body = _text_list(context.prop("commands"), "commands")
    if "dependencies" in props or "requirements" in props:
        context.log(LogLevel.WARN, "Dependencies are not installed by this engine: install them beforehand")
    program = local.replace("\n".join((["set -e"] if fail_fast else []) + before + body))
    if not interpreter or not _OPTIONS_ENDING_IN_C.match(interpreter[-1]):
        # An interpreter that takes its program some other way (`cmd /c`, `pwsh -Command`): as is.
        return [*interpreter, program], None, None
    path = folder / f".commands-{context.run.id}.sh"
    _write_private(path, program + "\n")
    if Path(interpreter[0]).name in _SHELLS:
        words = None
        if flavour.language == "python" and not flavour.legacy and interpreter == ["/bin/sh", "-c"]:
            words = _plain_command(program.removeprefix("set -e\n") if fail_fast else program)
        return [*interpreter, f". {shlex.quote(str(path))}"], path, words
    # Another `-c` interpreter (`python -c`): the file takes the program's place.
    last = interpreter[-1][:-1]
    return [*interpreter[:-1], *([last] if last != "-" else []), str(path)], path, None


# One command the shell runs as written: words without quotes, variables, globs or redirections.
_PLAIN_COMMAND = re.compile(r"[A-Za-z0-9_@%+=:,./-]+(?:[ \t]+[A-Za-z0-9_@%+=:,./-]+)*")


def _plain_command(program: str) -> list[str] | None:
    """The words of `program` if it is one such command (a Python task that can be forked)."""
    line = program.strip(" \t")
    return line.split() if _PLAIN_COMMAND.fullmatch(line) else None


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it may hold rendered secrets), replacing any."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


async def run_script(context: TaskContext, flavour: Flavour) -> Mapping[str, Any]:
    _docker_note(context)
    shared = context.working_dir
    # Named after the attempt, so that the processes working there are found after a crash.
    watch = PROCESS_WATCH.get()
    prefix = TASK_FOLDER_PREFIX + (watch.token_prefix if watch is not None else "")
    folder = shared or Path(tempfile.mkdtemp(prefix=prefix))
    output_dir = Path(tempfile.mkdtemp(prefix="tiercel-out-"))
    legacy_outputs: dict[str, Path] = {}
    script_file: Path | None = None
    try:
        context.variables.update({"workingDir": str(folder), "outputDir": str(output_dir)})
        copy_namespace_files(context, folder, context.prop("namespaceFiles"))
        write_input_files(context, folder, context.prop("inputFiles") or context.prop("files"))
        if flavour.legacy:
            # The deprecated tasks declare output file names first and hand their paths to commands.
            declared = context.prop("outputFiles") or context.prop("outputsFiles")
            for name in _text_list(declared, "outputFiles"):
                legacy_outputs[name] = folder / name
            context.variables["outputFiles"] = {name: str(path) for name, path in legacy_outputs.items()}
        local = LocalCopies(context, folder)
        argv, script_file, words = _program(context, flavour, folder, local)
        env = _environment(context, context.prop("env"), local)
        if flavour.language == "python" and not python_settled():
            await asyncio.to_thread(settle_python)
        confinement = _confinement(context)
        # A plain `python script.py` is forked from a warm interpreter when it can be (a confined
        # one is spawned: its cgroup or rlimits are set up in the child before the program starts).
        start = None
        if words and not _docker_asked(context.task.props) and confinement is None:
            start = python_start(words, folder, argv, str(toolbox() / "python"))
        collected = _Run(context, {})
        try:
            result = await run_process(
                argv,
                cwd=folder,
                env=env,
                on_line=collected.on_line,
                drain=context.drain,
                kill_grace=context.kill_grace,
                start=start,
                prepare=confinement.prepare if confinement is not None else None,
            )
        except ProcessError as error:
            raise TaskFailure(str(error)) from None
        finally:
            out_of_memory = confinement is not None and confinement.memory_exceeded()
            if confinement is not None:
                confinement.close()
        outputs: dict[str, Any] = {"exitCode": result.exit_code, "vars": collected.vars}
        if out_of_memory and confinement is not None:
            raise TaskFailure(f"memory limit exceeded ({confinement.limits.memory_text})", outputs)
        files = _collect(context, flavour, folder, output_dir, legacy_outputs)
        if files:
            outputs["outputFiles"] = files
        if flavour.legacy:
            outputs["stdOutLineCount"] = result.stdout_lines
            outputs["stdErrLineCount"] = result.stderr_lines
        if result.exit_code != 0:
            raise TaskFailure(f"Command failed with exit code {result.exit_code}", outputs, EXIT_CODE)
        if collected.stderr_lines and context.prop("warningOnStdErr", True):
            context.warning = True
        return outputs
    finally:
        if shared is None:
            shutil.rmtree(folder, ignore_errors=True)
        elif script_file is not None:
            script_file.unlink(missing_ok=True)
        shutil.rmtree(output_dir, ignore_errors=True)


def collect_output_files(context: TaskContext, folder: Path, patterns: Any) -> dict[str, str]:
    """Files of `folder` matching the outputFiles globs, stored under this task run's URI."""
    stored: dict[str, str] = {}
    try:
        for relative in files_matching(folder, _text_list(patterns, "outputFiles")):
            stored[str(relative)] = context.put_file(str(relative), folder / relative)
    except StorageError as error:
        raise TaskFailure(f"outputFiles: {error}") from None
    return stored


def _collect(
    context: TaskContext, flavour: Flavour, folder: Path, output_dir: Path, legacy: Mapping[str, Path]
) -> dict[str, str]:
    """outputFiles (globs, or the legacy declared names) and everything in outputDir."""
    if flavour.legacy:
        stored = {name: context.put_file(name, path) for name, path in legacy.items() if path.is_file()}
    else:
        stored = collect_output_files(context, folder, context.prop("outputFiles"))
    stored.update(collect_output_files(context, output_dir, ["**"]))
    return stored


def _handler(flavour: Flavour) -> Any:
    async def handler(context: TaskContext) -> Mapping[str, Any] | None:
        return await run_script(context, flavour)

    return handler


HANDLERS: dict[str, Any] = {
    **{
        f"{SCRIPTS}.{language}.{kind}": _handler(Flavour(language, kind == "Script"))
        for language in ("shell", "python", "node")
        for kind in ("Commands", "Script")
    },
    f"{LEGACY}.Bash": _handler(Flavour("shell", False, legacy=True)),
    f"{LEGACY}.Python": _handler(Flavour("python", False, legacy=True)),
}
