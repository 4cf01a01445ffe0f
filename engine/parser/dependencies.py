"""`dependsOn` between tasks of one list: a Dag's nodes, or (a Tiercel extension) the tasks of any
task list, where a task waits for the siblings it names (none: it starts at once) and a task without
`dependsOn` waits for the task written before it, as in any sequence.

Each name must be a task of the same list; a cycle is reported once, on the entry that closes it.
"""

from __future__ import annotations

from typing import Any

from .context import Context, suggestion, type_name
from .loader import YamlPath

# What a list with `dependsOn` is told when it is validated: the flow runs here, not on Kestra OSS.
NOT_KESTRA = (
    "`dependsOn` on a task outside a Dag is a Tiercel extension: Kestra refuses this flow "
    "(put these tasks in an `io.kestra.plugin.core.flow.Dag` to run it there)"
)

Edges = dict[str, list[tuple[str, YamlPath]]]


def depends_on(ctx: Context, raw: Any, path: YamlPath) -> list[tuple[str, YamlPath]]:
    """The task ids a `dependsOn` names, each with where it is written."""
    items = ctx.sequence(raw, path, "`dependsOn`")
    found: list[tuple[str, YamlPath]] = []
    for index, item in enumerate(items or ()):
        if isinstance(item, str):
            found.append((item, (*path, index)))
        else:
            ctx.error((*path, index), f"`dependsOn` lists task ids (text), not {type_name(item)}")
    return found


def check_dependencies(ctx: Context, edges: Edges, where: str, members: str) -> None:
    """Refuse a name that is not a task of the list (`edges` has one entry per task) and cycles;
    `where` names the list ("Dag `x`", "`tasks`"), `members` its tasks ("this Dag")."""
    for name, depends in edges.items():
        for dependency, path in depends:
            if dependency not in edges:
                ctx.error(
                    path,
                    f"Task `{name}` of {where} depends on `{dependency}`, which is not a task of "
                    f"{members}{suggestion(dependency, edges)}",
                )
    _check_cycles(ctx, edges, where)


def _check_cycles(ctx: Context, edges: Edges, where: str) -> None:
    # Iterative depth-first search: a long chain must not hit the recursion limit.
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        trail = [start]
        on_trail = {start}
        stack = [iter(edges[start])]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                done.add(trail[-1])
                on_trail.discard(trail.pop())
                continue
            dependency, path = step
            if dependency in on_trail:
                cycle = [*trail[trail.index(dependency) :], dependency]
                fix = "remove one of these `dependsOn` entries"
                if "dependsOn" not in path:  # the implicit order closes it
                    fix = (
                        f"`{trail[-1]}` has no `dependsOn`, so it waits for the task written before it: {fix}"
                    )
                    fix += f", or give `{trail[-1]}` one"
                ctx.error(
                    path,
                    f"{where[0].upper()}{where[1:]} has a cyclic dependency: {' -> '.join(cycle)}; {fix}",
                )
            elif dependency in edges and dependency not in done:
                trail.append(dependency)
                on_trail.add(dependency)
                stack.append(iter(edges[dependency]))
