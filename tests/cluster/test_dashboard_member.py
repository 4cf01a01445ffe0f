"""The dashboard on a PostgreSQL store joins the cluster beside its servers: it opens while they run
(it used to be refused, the store being theirs), lists them with the workers, shows the executions
they run as they change, and its commands reach them."""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import DataTable

from tests.cluster.harness import Cluster
from tests.cluster.test_servers import held_flow, held_text, post_all, server_ids, states
from tests.waiting import until_drawn
from tiercel.app.app import TiercelApp
from tiercel.app.screens.cluster import ClusterScreen
from tiercel.app.widgets.namespaces import NodeRef
from tiercel.engine import Principal


def shown_state(app: object, execution_id: str) -> str | None:
    row = app.table.rows_by_id.get(execution_id)  # type: ignore[attr-defined]
    return None if row is None else str(row.state)


async def test_the_dashboard_joins_the_cluster_and_follows_what_its_servers_run(
    cluster: Cluster, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    held_flow(cluster, release)
    server = cluster.server(machine="a")
    cluster.worker()
    app = TiercelApp(cluster.flows, cluster.url, control=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)
        assert len(server_ids(cluster)) == 2  # the dashboard is a server beside the other
        await pilot.press("W")  # who runs the cluster
        await until_drawn(pilot, lambda: isinstance(app.screen, ClusterScreen))
        servers = app.screen.query_one("#cluster-servers", DataTable)
        workers = app.screen.query_one("#cluster-workers", DataTable)
        await until_drawn(
            pilot, lambda: servers.row_count == 2 and workers.row_count == 2, what="the members"
        )
        pids = {str(servers.get_row_at(n)[2]) for n in range(2)}
        assert pids == {str(server.pid), str(os.getpid())}
        await pilot.press("escape")
        await until_drawn(pilot, lambda: not isinstance(app.screen, ClusterScreen))
        assert app.ns_tree.select_ref(NodeRef("flow", "cluster", "held"))
        [held] = await post_all([cluster.webhooks_of(server)], "cluster", "held", 1)
        await until_drawn(pilot, lambda: shown_state(app, held) == "RUNNING", what="the other's execution")
        assert app.session is not None and not app.session.hosted.engine.is_live(held)  # shown, run elsewhere
        release.touch()
        await until_drawn(pilot, lambda: shown_state(app, held) == "SUCCESS", what="its end")
        # A kill from the dashboard reaches the server that runs the execution.
        release.unlink()
        [second] = await post_all([cluster.webhooks_of(server)], "cluster", "held", 1)
        await until_drawn(pilot, lambda: shown_state(app, second) == "RUNNING", what="the second")
        await app.engine.kill(second)
        await until_drawn(pilot, lambda: shown_state(app, second) == "KILLED", what="the kill")
    assert states(cluster, [held, second]) == {held: "SUCCESS", second: "KILLED"}
    assert len(server_ids(cluster)) == 1  # the dashboard left the cluster as it closed


async def test_a_dashboard_for_one_user_shows_and_commands_what_they_are_granted(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Several people open dashboards on one cluster, each as themselves: a reader of `cluster`
    follows what a server runs there, sees nothing of another namespace, and may not kill."""
    release = tmp_path / "release"
    held_flow(cluster, release)
    cluster.flow("private", held_text(release, flow_id="private", namespace="private"))
    (cluster.flows / "_namespace.yaml").write_text(
        "id: cluster\npermissions:\n  - username: rita\n    permission: READ\n"
    )
    server = cluster.server(worker=True)
    rita = Principal("rita")
    app = TiercelApp(cluster.flows, cluster.url, control=False, principal=rita)
    async with app.run_test(size=(120, 40)) as pilot:
        await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count == 1)
        assert app.ns_tree.select_ref(NodeRef("namespace", ""))
        [mine] = await post_all([cluster.webhooks_of(server)], "cluster", "held", 1)
        [theirs] = await post_all([cluster.webhooks_of(server)], "private", "private", 1)
        await until_drawn(pilot, lambda: shown_state(app, mine) == "RUNNING", what="the readable one")
        app.table.focus()
        await until_drawn(pilot, lambda: app.table.selected_id == mine)
        await pilot.press("K")
        expected = "User `rita` lacks EXECUTE on namespace `cluster` (holds READ there)"
        await until_drawn(pilot, lambda: any(expected in str(n.message) for n in app._notifications))
        assert shown_state(app, theirs) is None
        release.touch()
        await until_drawn(pilot, lambda: shown_state(app, mine) == "SUCCESS", what="its end")
        assert shown_state(app, theirs) is None
    assert states(cluster, [mine, theirs]) == {mine: "SUCCESS", theirs: "SUCCESS"}
