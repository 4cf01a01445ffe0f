"""What the dashboard remembers between runs: the theme, and the last flow selected per flows folder.

    $XDG_STATE_HOME/tiercel/dashboard.json (by default ~/.local/state/tiercel/dashboard.json)

State, not configuration: the file is rewritten as the user moves, and a missing, unreadable or
foreign file is the same as no file (the dashboard never fails to start over it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Folders remembered; the least recently used is forgotten first.
FOLDERS_KEPT = 50


def preferences_path(environ: Mapping[str, str] = os.environ) -> Path:
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "tiercel" / "dashboard.json"


@dataclass
class Preferences:
    theme: str | None = None
    # The last flow selected, "namespace.flow_id" style as (namespace, flow id), by flows folder.
    last_flows: dict[str, tuple[str, str]] = field(default_factory=dict)

    def last_flow(self, folder: Path) -> tuple[str, str] | None:
        return self.last_flows.get(str(folder.resolve()))

    def remember_flow(self, folder: Path, namespace: str, flow_id: str) -> None:
        key = str(folder.resolve())
        self.last_flows.pop(key, None)  # re-inserted last: most recently used
        self.last_flows[key] = (namespace, flow_id)
        while len(self.last_flows) > FOLDERS_KEPT:
            del self.last_flows[next(iter(self.last_flows))]


def load_preferences(path: Path) -> Preferences:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return Preferences()
    if not isinstance(data, dict):
        return Preferences()
    theme = data.get("theme")
    flows: dict[str, tuple[str, str]] = {}
    raw = data.get("last_flows")
    if isinstance(raw, dict):
        for folder, uid in raw.items():
            if isinstance(uid, list) and len(uid) == 2 and all(isinstance(part, str) for part in uid):
                flows[str(folder)] = (uid[0], uid[1])
    return Preferences(theme if isinstance(theme, str) else None, flows)


def save_preferences(path: Path, preferences: Preferences) -> str | None:
    """Write the file (atomically); the reason when it could not be written."""
    data = {"theme": preferences.theme, "last_flows": {k: list(v) for k, v in preferences.last_flows.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(data, indent=2), encoding="utf-8")
        partial.replace(path)
    except OSError as error:
        return f"{path}: {error.strerror or error}"
    return None
