"""The Dag graph: its layered layout as data, and the drawing checked by following its lines."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from rich.text import Text
from textual.app import App
from textual.widgets import Label, Static

from tests.waiting import until_drawn
from tiercel.app.screens.dag import DagScreen, flow_dags, flow_has_dag
from tiercel.app.widgets.dag_graph import dag_text
from tiercel.app.widgets.dag_layout import GAP, bounded_layers, layer_numbers, layout_dag
from tiercel.engine import parse_flow
from tiercel.engine.engine import Engine
from tiercel.engine.model import StateType
from tiercel.engine.store import Store

ETL = {
    "extract": (),
    "clean": ("extract",),
    "enrich": ("extract",),
    "audit": ("extract",),
    "load": ("clean", "enrich"),
    "report": ("load", "audit"),
}
FAN_IN = {"start": (), "x1": ("start",), "x2": ("start",), "x3": ("start",), "end": ("x1", "x2", "x3")}
SKIPS = {"a": (), "b": (), "c": ("a", "b"), "d": ("a",), "e": ("c", "d", "a")}


def layered(layers: int, per_layer: int, seed: int) -> dict[str, tuple[str, ...]]:
    """A cycle-free graph: `per_layer` tasks a layer, each depending on one or two of the layer above."""
    pick = random.Random(seed)
    depends: dict[str, tuple[str, ...]] = {}
    above: list[str] = []
    for layer in range(layers):
        row = [f"t{layer}_{i}" for i in range(per_layer)]
        for task in row:
            depends[task] = tuple(pick.sample(above, k=pick.randint(1, 2))) if above else ()
        above = row
    return depends


# -- following the drawn lines -------------------------------------------------------------------
UP, DOWN, LEFT, RIGHT = (-1, 0), (1, 0), (0, -1), (0, 1)
OPENINGS = {
    "│": {UP, DOWN},
    "─": {LEFT, RIGHT},
    "┌": {DOWN, RIGHT},
    "┐": {DOWN, LEFT},
    "└": {UP, RIGHT},
    "┘": {UP, LEFT},
    "├": {UP, DOWN, RIGHT},
    "┤": {UP, DOWN, LEFT},
    "┬": {DOWN, LEFT, RIGHT},
    "┴": {UP, LEFT, RIGHT},
    "┼": {UP, DOWN, LEFT, RIGHT},
}


def boxes(grid: list[str]) -> dict[str, tuple[int, int, int]]:
    """Each box's task id (label without a state glyph): its top row and its columns."""
    found: dict[str, tuple[int, int, int]] = {}
    for row, line in enumerate(grid[:-2]):
        for left, char in enumerate(line):
            if char != "┌":
                continue
            right = left + 1
            while right < len(line) and line[right] in "─┴":
                right += 1
            middle, below = grid[row + 1], grid[row + 2]
            if right >= len(line) or line[right] != "┐" or len(middle) <= right:
                continue
            label = middle[left + 1 : right].strip()
            if (
                middle[left] == middle[right] == "│"
                and below[left : left + 1] == "└"
                and label[-1:].isalnum()
            ):
                found[label.split()[-1]] = (row, left, right + 1)
    return found


def reached(grid: list[str], depends: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    """Per box, the boxes its edges lead to, following the lines down and sideways, never up.

    A horizontal line meeting a plain `│` crosses it; any joint (┬ ┴ ├ ┤ ┼ and corners) joins.
    """
    box_of = boxes(grid)
    tops = {
        (top, column): task for task, (top, left, right) in box_of.items() for column in range(left, right)
    }
    cell = {(row, column): char for row, line in enumerate(grid) for column, char in enumerate(line)}
    found: dict[str, set[str]] = {}
    for task, (top, left, right) in box_of.items():
        bottom = top + 2
        exits = [column for column in range(left, right) if cell.get((bottom, column)) == "┬"]
        seen: set[tuple[int, int, tuple[int, int]]] = set()
        pending = [(bottom + 1, column, DOWN) for column in exits]
        targets: set[str] = set()
        while pending:
            row, column, heading = pending.pop()
            if (row, column, heading) in seen:
                continue
            seen.add((row, column, heading))
            char = cell.get((row, column), " ")
            if (row, column) in tops:
                assert char == "┴", f"an edge of {task} enters {tops[row, column]} off its joint"
                targets.add(tops[row, column])
                continue
            opposite = (-heading[0], -heading[1])
            if char == "│" and heading in (LEFT, RIGHT):
                ways = {heading}  # a crossing
            elif opposite in OPENINGS.get(char, set()):
                ways = OPENINGS[char] - {opposite, UP}
            else:
                raise AssertionError(f"the edge of {task} ends at {char!r} ({row}, {column})")
            pending.extend((row + way[0], column + way[1], way) for way in ways)
        found[task] = targets
    assert set(found) == set(depends), "every task has its box"
    return found


def dependants(depends: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {task: set() for task in depends}
    for task, deps in depends.items():
        for dep in deps:
            found[dep].add(task)
    return found


def grid_of(text: Text) -> list[str]:
    return text.plain.split("\n")


# -- layout ----------------------------------------------------------------------------------------
def test_each_task_is_one_layer_below_its_deepest_dependency() -> None:
    assert layer_numbers(ETL) == {"extract": 0, "clean": 1, "enrich": 1, "audit": 1, "load": 2, "report": 3}
    assert layer_numbers(SKIPS) == {"a": 0, "b": 0, "c": 1, "d": 1, "e": 2}
    # An unknown dependency is ignored; a cycle (refused by the parser) is put below, not fatal.
    assert layer_numbers({"a": ("ghost",), "b": ("c",), "c": ("b",)}) == {"a": 0, "b": 1, "c": 1}


def test_an_edge_that_skips_layers_passes_through_a_stand_in_per_layer() -> None:
    layout = layout_dag({"a": (), "b": ("a",), "c": ("b",), "d": ("c", "a")}, dict.fromkeys("abcd", 5))
    stand_ins = [(slot.layer, slot.width) for layer in layout.layers for slot in layer if slot.task is None]
    assert stand_ins == [(1, 1), (2, 1)]
    assert len(layout.edges) == 3 + 3  # a-b, b-c, c-d, and a-d in three steps


def test_boxes_of_a_layer_keep_apart_and_fan_ins_share_one_track() -> None:
    widths = {task: len(task) + 4 for task in FAN_IN}
    layout = layout_dag(FAN_IN, widths)
    for layer in layout.layers:
        for left, right in itertools.pairwise(layer):
            assert right.x >= left.right + 1
    assert [len(layer) for layer in layout.layers] == [1, 3, 1]
    assert [channel.tracks for channel in layout.channels] == [1, 1]
    (group,) = layout.channels[1].groups
    assert len(group.sources) == 3 and group.targets == (layout.slot("end").center,) and group.track == 0


def test_wide_layers_are_spread_over_more_layers_within_the_width() -> None:
    many = {f"task_{i:02d}": () for i in range(12)} | {"after": tuple(f"task_{i:02d}" for i in range(12))}
    widths = {task: len(task) + 4 for task in many}
    layers = bounded_layers(many, widths, 76)
    rows: dict[int, int] = {}
    for task, number in layers.items():
        rows[number] = rows.get(number, 0) + widths[task] + GAP
    assert all(used - GAP <= 76 for used in rows.values())
    assert layers["after"] > max(number for task, number in layers.items() if task != "after")


# -- drawing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("depends", [ETL, FAN_IN, SKIPS], ids=["etl", "fan_in", "skips"])
def test_every_edge_drawn_leads_from_a_task_to_exactly_its_dependants(
    depends: dict[str, tuple[str, ...]],
) -> None:
    assert reached(grid_of(dag_text(depends)), depends) == dependants(depends)


def test_a_thirty_task_dag_reads_at_80_columns() -> None:
    depends = layered(6, 5, seed=3)
    text = dag_text(depends, max_width=76)
    grid = grid_of(text)
    assert max(len(line) for line in grid) <= 80
    assert reached(grid, depends) == dependants(depends)


def test_a_random_thirty_task_dag_draws_every_edge() -> None:
    pick = random.Random(11)
    depends: dict[str, tuple[str, ...]] = {}
    for index in range(30):
        depends[f"n{index}"] = tuple(pick.sample(sorted(depends), k=min(len(depends), pick.randint(0, 3))))
    grid = grid_of(dag_text(depends, max_width=76))
    assert reached(grid, depends) == dependants(depends)


def test_a_long_task_id_is_cut_and_states_colour_the_boxes() -> None:
    depends = {"first": (), "a_task_id_much_longer_than_any_box_should_be": ("first",), "never": ("first",)}
    states = {"first": "SUCCESS", "a_task_id_much_longer_than_any_box_should_be": "FAILED"}
    text = dag_text(depends, states)
    plain = text.plain
    assert "│ ✔ first │" in plain and "│ · never │" in plain
    assert "✘ a_task_id_much_longer_t…" in plain
    styles = {plain[span.start : span.end]: str(span.style) for span in text.spans}
    assert styles["│ ✔ first │"] == "green" and styles["│ · never │"] == "dim"
    assert styles["│ ✘ a_task_id_much_longer_t… │"] == "bold red"
    assert "✔" not in dag_text(depends).plain  # without an execution, no states


def test_control_characters_in_a_task_id_are_shown_not_sent() -> None:
    assert "\x1b" not in dag_text({"evil\x1b[2J": ()}).plain


FLOW = """
id: nested
namespace: acme
tasks:
  - id: outer
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: inner
        type: io.kestra.plugin.core.flow.Dag
        tasks:
          - task: {id: a, type: io.kestra.plugin.core.log.Log, message: a}
          - task:
              id: deeper
              type: io.kestra.plugin.core.flow.Dag
              tasks:
                - task: {id: x, type: io.kestra.plugin.core.log.Log, message: x}
                - task: {id: y, type: io.kestra.plugin.core.log.Log, message: y}
                  dependsOn: [x]
            dependsOn: [a]
errors:
  - id: cleanup
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {id: z, type: io.kestra.plugin.core.log.Log, message: z}
"""


def test_every_dag_of_a_flow_is_found_inside_other_flowables() -> None:
    dags = flow_dags(parse_flow(FLOW))
    assert [(dag.id, dag.parents, dict(dag.depends)) for dag in dags] == [
        ("inner", ("outer",), {"a": (), "deeper": ("a",)}),
        ("deeper", ("outer", "inner"), {"x": (), "y": ("x",)}),
        ("cleanup", (), {"z": ()}),
    ]
    plain = parse_flow(
        "id: p\nnamespace: acme\ntasks:\n  - {id: l, type: io.kestra.plugin.core.log.Log, message: m}\n"
    )
    assert flow_has_dag(parse_flow(FLOW)) and not flow_has_dag(plain)


DEPENDS = """
id: lists
namespace: acme
tasks:
  - {id: extract, type: io.kestra.plugin.core.log.Log, message: e}
  - {id: audit, type: io.kestra.plugin.core.log.Log, message: a, dependsOn: []}
  - {id: load, type: io.kestra.plugin.core.log.Log, message: l, dependsOn: [extract, audit]}
  - {id: report, type: io.kestra.plugin.core.log.Log, message: r}
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [1, 2]
    dependsOn: [extract]
    tasks:
      - {id: get, type: io.kestra.plugin.core.log.Log, message: g}
      - {id: put, type: io.kestra.plugin.core.log.Log, message: p, dependsOn: [get]}
"""


def test_task_lists_with_depends_on_are_graphs_their_implicit_order_drawn() -> None:
    graphs = flow_dags(parse_flow(DEPENDS))
    assert [(graph.id, graph.parents, dict(graph.depends), graph.is_list) for graph in graphs] == [
        (
            "tasks",
            (),
            {
                "extract": (),
                "audit": (),
                "load": ("extract", "audit"),
                "report": ("load",),
                "each": ("extract",),
            },
            True,
        ),
        ("tasks of each", ("each",), {"get": (), "put": ("get",)}, True),
    ]
    drawn = dag_text(graphs[0].depends).plain
    assert all(f"│ {task} │" in drawn for task in ("extract", "audit", "load", "report", "each"))


# -- the screen ---------------------------------------------------------------------------------------
RUNNABLE = """
id: pipeline
namespace: acme
tasks:
  - id: steps
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task: {id: extract, type: io.kestra.plugin.core.log.Log, message: extract}
      - task: {id: clean, type: io.kestra.plugin.core.log.Log, message: clean}
        dependsOn: [extract]
      - task: {id: broken, type: io.kestra.plugin.core.execution.Fail}
        dependsOn: [extract]
      - task: {id: load, type: io.kestra.plugin.core.log.Log, message: load}
        dependsOn: [clean, broken]
"""


class Host(App[None]):
    def __init__(self, screen: DagScreen) -> None:
        super().__init__()
        self.shown = screen

    def on_mount(self) -> None:
        self.push_screen(self.shown)


def graph_text(screen: DagScreen, number: int = 0) -> Text:
    content = screen.query_one(f"#dag-{number}", Static).content
    assert isinstance(content, Text)
    return content


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_screen_colours_a_dag_by_a_real_executions_task_runs(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "pipeline.yml").write_text(RUNNABLE)
    engine = Engine(await Store.open(tmp_path / "tiercel.db"), flows_dir=flows)
    await engine.start(control=False, triggers=False)
    try:
        execution = await engine.wait(await engine.trigger("acme", "pipeline"))
        flow = engine.flows[("acme", "pipeline")]
    finally:
        await engine.stop()
    assert execution.state.current is StateType.FAILED
    screen = DagScreen(flow)
    app = Host(screen)
    async with app.run_test(size=size) as pilot:
        await until_drawn(pilot, lambda: "extract" in graph_text(screen).plain)
        assert "│ extract │" in graph_text(screen).plain  # no execution: no states
        screen.update_execution(execution)
        await pilot.pause()
        text = graph_text(screen)
        assert "✔ extract" in text.plain and "✘ broken" in text.plain and "· load" in text.plain
        assert reached(grid_of(text), dict(flow_dags(flow)[0].depends))["extract"] == {"clean", "broken"}
        styles = {text.plain[span.start : span.end].strip(): str(span.style) for span in text.spans}
        assert styles["│ ✘ broken │"] == "bold red" and styles["│ ✔ clean │"] == "green"
        assert "in execution" in str(screen.query_one("#dag-title", Label).content)
        await pilot.press("q")
        await until_drawn(pilot, lambda: screen not in app.screen_stack)


async def test_the_screen_shows_every_dag_and_scrolls_a_wide_one() -> None:
    log = "type: io.kestra.plugin.core.log.Log, message: m"
    wide = "\n".join(f"      - task: {{id: a_rather_long_task_name_{i:02d}, {log}}}" for i in range(30))
    dag = "  - id: wide\n    type: io.kestra.plugin.core.flow.Dag\n    tasks:\n"
    screen = DagScreen(parse_flow(FLOW.replace("errors:", f"{dag}{wide}\nerrors:")))
    app = Host(screen)
    async with app.run_test(size=(80, 24)) as pilot:
        await until_drawn(pilot, lambda: "│ z │" in graph_text(screen, 3).plain)
        headings = [str(label.content) for label in screen.query(".dag-heading").results(Label)]
        assert headings == [
            "Dag inner (in outer): 2 tasks",
            "Dag deeper (in outer › inner): 2 tasks",
            "Dag wide: 30 tasks",
            "Dag cleanup: 1 task",
        ]
        wide_graph = graph_text(screen, 2)
        assert max(len(line) for line in wide_graph.plain.split("\n")) <= 80 - 6
        assert wide_graph.plain.count("┌") == 30
    empty = DagScreen(parse_flow(f"id: p\nnamespace: a\ntasks:\n  - {{id: l, {log}}}\n"))
    async with Host(empty).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "This flow has no Dag task nor `dependsOn`." in str(
            empty.query_one(".dag-heading", Static).content
        )
