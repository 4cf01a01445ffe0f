"""Shell completion: `tiercel completion bash|zsh|fish` prints a script for the shell, which asks
`tiercel __complete WORD...` (the words after `tiercel`, the last one being completed) for the
candidates, one a line.

Commands and options come from the parser itself; values from what they name: execution ids (the
newest first), namespaces, flow ids and trigger ids from the store the words' `--db` names (or the
default one), states, log levels and shells from their lists. Where nothing is known (a file, a
folder), nothing is answered and the shell completes file names. Completion never fails loudly: any
error answers nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiercel.engine import Store

SHELLS = ("bash", "zsh", "fish")
STATES = ("CREATED", "QUEUED", "RUNNING", "PAUSED", "SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
# How many execution ids are offered, newest first.
EXECUTION_IDS = 50

_BASH = """# tiercel completion for bash: `source <(tiercel completion bash)`, or save it as
# ~/.local/share/bash-completion/completions/tiercel
_tiercel() {
    local IFS=$'\\n'
    COMPREPLY=($(tiercel __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _tiercel tiercel
"""

_ZSH = """#compdef tiercel
# tiercel completion for zsh: `source <(tiercel completion zsh)` (after compinit), or save it as
# _tiercel in a folder of $fpath
_tiercel() {
    local -a found
    found=("${(@f)$(tiercel __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    if (( ${#found} )) && [[ -n "${found[1]}" ]]; then
        compadd -- "${found[@]}"
    else
        _files
    fi
}
compdef _tiercel tiercel
"""

_FISH = """# tiercel completion for fish: `tiercel completion fish > ~/.config/fish/completions/tiercel.fish`
function __tiercel_complete
    set -l words (commandline -opc) (commandline -ct)
    tiercel __complete $words[2..-1] 2>/dev/null
end
complete -c tiercel -a '(__tiercel_complete)'
"""

SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    from .common import command

    completion = command(
        sub,
        "completion",
        "print the shell completion script for bash, zsh or fish",
        [
            "tiercel completion bash > ~/.local/share/bash-completion/completions/tiercel",
            "tiercel completion zsh > ~/.zfunc/_tiercel",
            "tiercel completion fish > ~/.config/fish/completions/tiercel.fish",
        ],
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    return completion


def cmd_completion(args: argparse.Namespace) -> int:
    from .common import say

    say(SCRIPTS[args.shell].rstrip("\n"))
    return 0


def complete(parser: argparse.ArgumentParser, words: Sequence[str]) -> int:
    """`tiercel __complete WORD...`: print the candidates for the last word."""
    from .common import say

    found: list[str] = []
    with contextlib.suppress(Exception):  # a completion that fails offers nothing
        found = candidates(parser, list(words) or [""])
    if found:
        say("\n".join(found))
    return 0


def candidates(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """What may come as the last of `words`, given `tiercel`'s parser."""
    current, before = words[-1], words[:-1]
    commands = _commands(parser)
    top = _plain(parser, before)  # the command, after the options of `tiercel` itself
    name = top[0] if top else None
    if name is None:
        if current.startswith("-"):
            return _options(parser, current)
        return [command for command in commands if command.startswith(current)]
    chosen = commands.get(name)
    if chosen is None:
        return []
    after = before[before.index(name) + 1 :]
    pending = _pending_option(chosen, after)
    if pending is not None:
        action, position = pending
        return _matching(_values(action.dest, position, after, words), current)
    if current.startswith("-"):
        return _options(chosen, current)
    dest, position = _positional(chosen, after)
    return _matching(_values(dest, position, _plain(chosen, after), words), current) if dest else []


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(sorted(action.choices.items()))
    return {}


def _options(parser: argparse.ArgumentParser, current: str) -> list[str]:
    names = (name for action in parser._actions for name in action.option_strings if name.startswith("--"))
    return sorted(name for name in names if name.startswith(current))


def _takes(action: argparse.Action) -> int:
    """How many values an option takes (0 for a flag)."""
    if action.nargs in (None, "?"):
        return 1
    return action.nargs if isinstance(action.nargs, int) else 1


def _pending_option(parser: argparse.ArgumentParser, after: list[str]) -> tuple[argparse.Action, int] | None:
    """The option whose value is being completed, with the value's position, if any."""
    index = 0
    while index < len(after):
        action = parser._option_string_actions.get(after[index])
        if action is not None:
            wanted = _takes(action)
            given = len(after) - index - 1
            if given < wanted:
                return action, given
            index += wanted
        index += 1
    return None


def _plain(parser: argparse.ArgumentParser, after: list[str]) -> list[str]:
    """The positional words among `after` (without the options and their values)."""
    given: list[str] = []
    index = 0
    while index < len(after):
        action = parser._option_string_actions.get(after[index])
        if action is not None:
            index += _takes(action) + 1
            continue
        given.append(after[index])
        index += 1
    return given


def _positional(parser: argparse.ArgumentParser, after: list[str]) -> tuple[str | None, int]:
    """The positional argument the next word fills (its dest), and how many words it has so far."""
    count = len(_plain(parser, after))
    for action in parser._actions:
        if action.option_strings:
            continue
        if action.nargs in ("+", "*"):
            return action.dest, count
        if count == 0:
            return action.dest, 0
        count -= 1
    return None, 0


def _matching(values: Sequence[str], current: str) -> list[str]:
    return [value for value in values if value.startswith(current)]


def _values(dest: str, position: int, after: list[str], words: list[str]) -> list[str]:
    if dest == "shell":
        return list(SHELLS)
    if dest == "state":
        return list(STATES)
    if dest == "level":
        return list(LEVELS)
    if dest in ("execution_id", "parent"):
        return _from_store(words, _execution_ids)
    if dest in ("namespace", "target", "enable", "disable", "flow", "flow_id", "trigger_id"):
        return _from_store(words, lambda store: _flow_parts(store, dest, position, after))
    return []


def _from_store(words: list[str], read: Callable[[Store], Awaitable[list[str]]]) -> list[str]:
    from tiercel.engine import Store, target_exists

    from .common import resolve_db

    db_words = [words[index + 1] for index, word in enumerate(words[:-1]) if word == "--db"]
    db = resolve_db(db_words[-1] if db_words else None)
    if not target_exists(db):
        return []
    if isinstance(db, str) and "connect_timeout" not in db:  # a PostgreSQL URL: a TAB waits 2 s at most
        db += f"{'&' if '?' in db else '?'}connect_timeout=2"

    async def run() -> list[str]:
        store = await Store.open(db, readonly=True)
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(run())


async def _execution_ids(store: Store) -> list[str]:
    found = await store.list_executions(limit=EXECUTION_IDS)
    return [summary.id for summary in found]


async def _flow_parts(store: Store, dest: str, position: int, after: list[str]) -> list[str]:
    """Namespaces, flow ids or trigger ids, by the place of the word in its group (namespace,
    flow id, trigger id), the words before it naming the namespace and the flow: the positional
    words, or those of the option being completed."""
    flows = [row for row in await store.list_flows() if not row.deleted]
    place = {"namespace": 0, "flow": 1, "flow_id": 1, "trigger_id": 2}.get(dest, position)
    plain = after
    if dest in ("enable", "disable"):
        plain = after[after.index(f"--{dest}") + 1 :]
    elif dest == "flow":
        plain = [after[after.index("--namespace") + 1]] if "--namespace" in after[:-1] else []
    if place == 0:
        return sorted({row.namespace for row in flows})
    namespace = plain[0] if plain else None
    if place == 1:
        return sorted(row.flow_id for row in flows if namespace is None or row.namespace == namespace)
    if place == 2 and len(plain) >= 2:
        return await _trigger_ids(store, plain[0], plain[1])
    return []


async def _trigger_ids(store: Store, namespace: str, flow_id: str) -> list[str]:
    """The triggers of a flow's current revision, as its stored source declares them."""
    import yaml

    revisions = await store.flow_revisions(namespace, flow_id)
    if not revisions:
        return []
    document = yaml.safe_load(revisions[-1][1])
    triggers = document.get("triggers") if isinstance(document, dict) else None
    return sorted(str(item["id"]) for item in triggers or () if isinstance(item, dict) and "id" in item)
