"""The user's keymap: a TOML file mapping the dashboard's binding ids to keys.

    # ~/.config/tiercel/keymap.toml ($XDG_CONFIG_HOME/tiercel/keymap.toml)
    "tiercel.kill" = "x"            # one key
    "tiercel.help" = "f1,question_mark"   # or several, comma-separated

Dotted ids may also be written as tables (`[tiercel]` then `kill = "x"`). A file that does not
parse is not applied at all; an entry that names no binding or no key is skipped, and either is
reported with the file and line, never raised into the dashboard.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.binding import Binding

_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column \d+\)")


class KeymapError(Exception):
    """The keymap file cannot be read or is not TOML; the message names the file and line."""


@dataclass
class Keymap:
    """The keys to apply by binding id, and what was skipped (each with its file and line)."""

    keys: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def keymap_path(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_CONFIG_HOME/tiercel/keymap.toml, by default under ~/.config."""
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "tiercel" / "keymap.toml"


def binding_ids(classes: Iterable[type[object]]) -> set[str]:
    """The ids of the bindings the given widget, screen and app classes declare."""
    found: set[str] = set()
    for cls in classes:
        for binding in getattr(cls, "BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id:
                found.add(binding.id)
    return found


def load_keymap(path: Path, known: set[str]) -> Keymap:
    """The keymap in `path` (empty when there is no file), checked against the `known` binding ids."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Keymap()
    except (OSError, UnicodeDecodeError) as error:
        raise KeymapError(f"{path}: cannot read it: {error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        where = _TOML_WHERE.search(message)
        line = f", line {where.group(1)}" if where else ""
        raise KeymapError(f"{path}{line}: {_TOML_WHERE.sub('', message)}") from None
    keymap = Keymap()
    for binding_id, value in _flatten(data):
        problem = _problem(binding_id, value, known)
        if problem is None:
            keymap.keys[binding_id] = value if isinstance(value, str) else ",".join(value)
        else:
            number = _line_of(text, binding_id)
            keymap.problems.append(f"{path}{f', line {number}' if number else ''}: {problem}")
    return keymap


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Tables joined into dotted ids: `[tiercel] kill = "x"` is `tiercel.kill`."""
    found: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            found.extend(_flatten(value, name + "."))
        else:
            found.append((name, value))
    return found


def _problem(binding_id: str, value: Any, known: set[str]) -> str | None:
    """What is wrong with one entry, or None."""
    if binding_id not in known:
        close = difflib.get_close_matches(binding_id, sorted(known), n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        return f"`{binding_id}` is not a binding id{hint}"
    keys = value.split(",") if isinstance(value, str) else value
    if not isinstance(keys, list) or not keys or not all(isinstance(key, str) for key in keys):
        return f'`{binding_id}` needs a key as a string, such as "x" or "ctrl+k"'
    if any(not key.strip() or key.strip() != key or " " in key for key in keys):
        return f"`{binding_id}` = {value!r}: a key has no spaces, and keys are separated by commas only"
    return None


def _line_of(text: str, binding_id: str) -> int | None:
    """The line of the file that sets `binding_id` (the last part of its id, in a table)."""
    leaf = binding_id.rsplit(".", 1)[-1]
    names = {binding_id, f'"{binding_id}"', f"'{binding_id}'", leaf, f'"{leaf}"', f"'{leaf}'"}
    for number, line in enumerate(text.splitlines(), start=1):
        name, sep, _ = line.partition("=")
        if sep and name.strip() in names:
            return number
    return None
