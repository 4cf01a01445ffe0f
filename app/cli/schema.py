"""`tiercel schema`: the JSON Schema of flow files (task types of the installed plugins included), for
editors; with `--vscode`, written into the project's .vscode folder and mapped to the flows folder's
YAML files for the YAML extension (`yaml.schemas`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import EXIT_FAILED, EXIT_OK, add_flows_option, command, flows_folder, say

SCHEMA_FILE = Path(".vscode") / "tiercel-flow.schema.json"
SETTINGS_FILE = Path(".vscode") / "settings.json"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schema = command(
        sub,
        "schema",
        "print the JSON Schema of flow files, for editors",
        [
            "tiercel schema > flow.schema.json",
            "tiercel schema --vscode",
            "tiercel schema --vscode --flows pipelines",
        ],
    )
    schema.add_argument(
        "--vscode", action="store_true",
        help=f"write it to {SCHEMA_FILE} and map the flows folder's YAML files to it in {SETTINGS_FILE}",
    )  # fmt: skip
    add_flows_option(schema)


def cmd_schema(args: argparse.Namespace) -> int:
    from tiercel.engine import flow_schema, registry

    text = json.dumps(flow_schema(registry()), indent=2)
    if not args.vscode:
        say(text)
        return EXIT_OK
    flows = flows_folder(args.flows).as_posix().rstrip("/")
    prefix = "" if flows in ("", ".") else f"{flows.removeprefix('./')}/"
    patterns = [f"{prefix}**/*.yml", f"{prefix}**/*.yaml", "!**/_namespace.yaml", "!**/_namespace.yml"]
    patterns.append("!**/_files/**")
    settings = _settings()
    schemas = settings.setdefault("yaml.schemas", {}) if settings is not None else None
    if not isinstance(schemas, dict):
        mapping = json.dumps({f"./{SCHEMA_FILE.as_posix()}": patterns})
        say(f"tiercel: {SETTINGS_FILE} is left as it is (not plain JSON, or its yaml.schemas is not a "
            f'mapping): add "yaml.schemas": {mapping} to it yourself', err=True)  # fmt: skip
        return EXIT_FAILED
    schemas[f"./{SCHEMA_FILE.as_posix()}"] = patterns
    try:
        SCHEMA_FILE.parent.mkdir(exist_ok=True)
        SCHEMA_FILE.write_text(text + "\n", encoding="utf-8")
        written = SETTINGS_FILE.with_name(f".{SETTINGS_FILE.name}.tiercel")
        written.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        written.replace(SETTINGS_FILE)  # all or nothing: the user's settings are never cut short
    except OSError as error:
        say(f"tiercel: cannot write {error.filename or SCHEMA_FILE.parent}: {error.strerror}", err=True)
        return EXIT_FAILED
    say(f"wrote {SCHEMA_FILE}; {SETTINGS_FILE} maps {', '.join(patterns[:2])} to it")
    return EXIT_OK


def _settings() -> dict[str, object] | None:
    """The project's VS Code settings (none yet: empty), or None when they are not plain JSON."""
    if not SETTINGS_FILE.exists():
        return {}
    try:
        found = json.loads(SETTINGS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, or JSON with comments (VS Code allows them): left alone
        return None
    return found if isinstance(found, dict) else None
