"""Running the `git` program for one task run: argv lists, never a shell; credentials kept out of argv.

A password, a passphrase and a private key reach git and ssh through the environment of the child
(readable only by its own user) and a small askpass script in a private temporary folder that prints
them; the key itself is a 0600 file there. Every message that leaves this module has the secrets
replaced by `***`. Each command runs in its own process group, which is killed (TERM, then KILL after
the engine's grace) when the task is cancelled or the command outlives its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from tiercel.engine.plugin import LogLevel, TaskContext, TaskFailure

# A command talking to a remote stops when it transfers nothing for `readTimeout`; this is only the
# outer bound of one command, local or remote.
COMMAND_TIMEOUT = 3600.0
_ASKPASS = """#!/bin/sh
case "$1" in
  Username*|username*) printf '%s\\n' "$TIERCEL_GIT_USERNAME" ;;
  *assphrase*) printf '%s\\n' "$TIERCEL_GIT_PASSPHRASE" ;;
  *) printf '%s\\n' "$TIERCEL_GIT_PASSWORD" ;;
esac
"""
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


@dataclass(frozen=True)
class Remote:
    """Where a repository is and how to authenticate to it (Kestra's connection properties)."""

    url: str | None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)
    trusted_ca: str | None = None
    no_proxy: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    @property
    def shown(self) -> str:
        """The URL as logs may show it (no user information)."""
        return _USERINFO.sub("", self.url or "")

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.passphrase, self.private_key) if s)


def _text(context: TaskContext, name: str) -> str | None:
    value = context.prop(name)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise TaskFailure(f"`{name}` must be a text")
    return str(value)


def _millis(context: TaskContext, name: str, default: int) -> float:
    value = context.prop(name, default)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise TaskFailure(f"`{name}` must be a number of milliseconds, not `{value}`") from None
    if number <= 0:
        raise TaskFailure(f"`{name}` must be a positive number of milliseconds, not `{value}`")
    return number / 1000


def remote_of(context: TaskContext) -> Remote:
    """The connection properties of a task, rendered. Credentials written into an http(s) URL are
    moved out of it (to be given through askpass rather than on the command line)."""
    url = _text(context, "url")
    username, password = _text(context, "username"), _text(context, "password")
    if url is not None:
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and "@" in parts.netloc:
            userinfo, _, host = parts.netloc.rpartition("@")
            user, _, secret = userinfo.partition(":")
            username = username or unquote(user) or None
            password = password or unquote(secret) or None
            url = urlunsplit(parts._replace(netloc=host))
    return Remote(
        url=url,
        username=username,
        password=password,
        private_key=_text(context, "privateKey"),
        passphrase=_text(context, "passphrase"),
        trusted_ca=_text(context, "trustedCaPemPath"),
        no_proxy=context.flag("noProxy", False),
        connect_timeout=_millis(context, "connectTimeout", 10000),
        read_timeout=_millis(context, "readTimeout", 60000),
    )


@dataclass
class Result:
    code: int
    out: str
    err: str


class GitError(TaskFailure):
    """A git command that failed; its message has no secret in it."""


class Git:
    """The git commands of one task run, sharing one private folder for the askpass script and key.

    Use as an async context manager: the folder goes away with it.
    """

    def __init__(self, context: TaskContext, remote: Remote) -> None:
        self.context = context
        self.remote = remote
        self.program = shutil.which("git")
        if self.program is None:
            raise TaskFailure("The git tasks run the `git` program, which must be installed on this machine")
        self._private: Path | None = None
        self._env: dict[str, str] = {}
        self.identity: dict[str, str] = {}

    async def __aenter__(self) -> Git:
        self._private = Path(tempfile.mkdtemp(prefix="tiercel-git-"))
        os.chmod(self._private, stat.S_IRWXU)
        self._env = self._environment(self._private)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)

    def _environment(self, private: Path) -> dict[str, str]:
        remote = self.remote
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "TIERCEL_GIT_", "SSH_ASKPASS"))
        }
        askpass = private / "askpass.sh"
        askpass.write_text(_ASKPASS)
        askpass.chmod(stat.S_IRWXU)
        env.update(
            GIT_ASKPASS=str(askpass),
            SSH_ASKPASS=str(askpass),
            SSH_ASKPASS_REQUIRE="force",
            GIT_TERMINAL_PROMPT="0",
            LC_ALL="C",
            TIERCEL_GIT_USERNAME=remote.username or "",
            TIERCEL_GIT_PASSWORD=remote.password or "",
            TIERCEL_GIT_PASSPHRASE=remote.passphrase or "",
        )
        # Stored credentials are neither used nor written; transfers slower than 1 byte/s for
        # `readTimeout` stop (as JGit's read timeout does).
        config: list[tuple[str, str]] = [
            ("credential.helper", ""),
            ("http.lowSpeedLimit", "1"),
            ("http.lowSpeedTime", str(max(1, round(remote.read_timeout)))),
            ("protocol.file.allow", "always"),
        ]
        if remote.trusted_ca:
            config.append(("http.sslCAInfo", remote.trusted_ca))
        if remote.no_proxy:
            config.append(("http.proxy", ""))
            for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
                env.pop(name, None)
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
        ssh = [
            "ssh",
            "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={private / 'known_hosts'}",
            "-o", f"ConnectTimeout={max(1, round(remote.connect_timeout))}",
            "-o", f"ServerAliveInterval={max(1, round(remote.read_timeout))}",
            "-o", "ServerAliveCountMax=1",
        ]  # fmt: skip
        if remote.private_key:
            key_file = private / "key"
            key_file.touch(mode=0o600)
            text = remote.private_key if remote.private_key.endswith("\n") else remote.private_key + "\n"
            key_file.write_text(text)
            ssh += ["-i", str(key_file), "-o", "IdentitiesOnly=yes"]
        env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        return env

    def redact(self, text: str) -> str:
        """`text` with every secret of the remote replaced, and user information cut out of URLs."""
        for secret in sorted(self.remote.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return _USERINFO.sub("", text)

    async def run(
        self,
        *args: str,
        cwd: Path,
        check: bool = True,
        what: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run `git <args>` in `cwd`; with `check`, a non-zero exit fails the task with git's message.

        Raises:
            GitError: The command failed (with `check`) or outlived its timeout.
        """
        assert self.program is not None
        env = {**self._env, **self.identity, **(extra_env or {})}
        process = await asyncio.create_subprocess_exec(
            self.program,
            *args,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
        except TimeoutError:
            await self._stop(process)
            raise GitError(f"git {args[0]} did not end within {COMMAND_TIMEOUT:.0f} seconds") from None
        except BaseException:
            await self._stop(process)
            raise
        code = process.returncode if process.returncode is not None else -1
        result = Result(code, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and code != 0:
            raise GitError(self.failure(what or f"git {args[0]}", result))
        return result

    def failure(self, what: str, result: Result) -> str:
        lines = [line.strip() for line in result.err.splitlines() if line.strip()]
        detail = "; ".join(lines[-4:]) or f"exit code {result.code}"
        return self.redact(f"{what} failed: {detail}")

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        """Stop the command's whole process group (git spawns ssh and remote helpers)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(process.wait()), self.context.kill_grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(process.wait()), 5)

    def log(self, level: LogLevel, message: str) -> None:
        self.context.log(level, self.redact(message))

    async def config(self, repo: Path, values: Any) -> None:
        """Kestra's `gitConfig`: `section.name` (or `section.sub.name`) keys set in the repository's
        config; a null or blank value unsets the key, a list sets every value."""
        if values is None:
            return
        if not isinstance(values, Mapping):
            raise TaskFailure("`gitConfig` must be a map of git config keys to values")
        for key, value in values.items():
            name = str(key)
            if "." not in name.strip(".") or name.startswith(".") or name.endswith("."):
                self.log(LogLevel.WARN, f"Invalid git config key `{name}`: expected `section.name`")
                continue
            if value is None or (isinstance(value, str) and not value.strip()):
                await self.run("config", "--local", "--unset-all", name, cwd=repo, check=False)
                continue
            if isinstance(value, (list, tuple)):
                await self.run("config", "--local", "--unset-all", name, cwd=repo, check=False)
                for item in value:
                    await self.run("config", "--local", "--add", name, _config_text(item), cwd=repo)
            else:
                await self.run("config", "--local", name, _config_text(value), cwd=repo)
            self.log(LogLevel.INFO, f"Applied git config {name}")


def _config_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def inside(base: Path, relative: str | None, what: str) -> Path:
    """`base/relative`, refusing a path that leaves `base`."""
    if not relative:
        return base
    target = (base / relative).resolve()
    if target != base.resolve() and base.resolve() not in target.parents:
        raise TaskFailure(f"`{what}` `{relative}` is outside the task's working directory")
    return target


def flag_list(value: Any, name: str) -> list[str]:
    """A text or a list of texts."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise TaskFailure(f"`{name}` must be a text or a list of texts")
