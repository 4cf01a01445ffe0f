"""`tiercel plugins`: every task type and plugin trigger type this installation knows, with the
package it comes from, and the task plugins that failed to load."""

from __future__ import annotations

import argparse
import json

from .common import EXIT_FAILED, EXIT_OK, add_json_option, command, say
from .tables import table


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    plugins = command(
        sub,
        "plugins",
        "list the task types with the package each comes from, and the plugins that failed to load",
        ["tiercel plugins", "tiercel plugins --json | jq '.types[] | select(.package != \"tiercel\")'"],
    )
    add_json_option(plugins, "the task types and the failures")


def cmd_plugins(args: argparse.Namespace) -> int:
    from tiercel.engine import registry

    found = registry()
    rows = [
        (name, task_type.kind.value, found.source(name), list(task_type.aliases))
        for name in sorted(found.names())
        if (task_type := found.lookup(name)) is not None
    ]
    # A plugin's trigger types: polling ones, or known and refused (Kestra's realtime triggers).
    rows += [
        (
            name,
            "refused trigger" if trigger.unsupported else "trigger",
            found.source(name),
            list(trigger.aliases),
        )
        for name in sorted(found.trigger_names())
        if (trigger := found.lookup_trigger(name)) is not None
    ]
    if args.json:
        listed = [
            {"type": name, "kind": kind, "package": package, "aliases": aliases}
            for name, kind, package, aliases in rows
        ]
        failures = [
            {"entryPoint": failure.entry_point, "package": failure.package, "error": failure.error}
            for failure in found.failures
        ]
        say(json.dumps({"types": listed, "failures": failures}, indent=2))
    else:
        say("\n".join(table([[name, kind, package] for name, kind, package, _ in rows])))
        for failure in found.failures:
            say(f"tiercel: {failure}", err=True)
    return EXIT_FAILED if found.failures else EXIT_OK
