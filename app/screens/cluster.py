"""The servers and workers of the dashboard's cluster (a PostgreSQL store), as `tiercel workers`
lists them, read again every two seconds."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label, Static

from tiercel.engine import StoreError, cluster_members

from ..cluster_rows import SERVER_COLUMNS, WORKER_COLUMNS, server_rows, waiting_lines, worker_rows

REFRESH_SECONDS = 2.0


class ClusterScreen(ModalScreen[None]):
    """Who runs the cluster: its servers (which one runs the scheduler) and its workers."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", id="tiercel.cluster.close"),
    ]

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def compose(self) -> ComposeResult:
        with Vertical(id="cluster-view", classes="dialog"):
            yield Label("Servers", classes="cluster-heading")
            yield DataTable(id="cluster-servers", cursor_type="row", zebra_stripes=False)
            yield Label("Workers", classes="cluster-heading")
            yield DataTable(id="cluster-workers", cursor_type="row", zebra_stripes=False)
            yield Static("", id="cluster-waiting")
        yield Footer()

    async def on_mount(self) -> None:
        for table_id, columns in (("#cluster-servers", SERVER_COLUMNS), ("#cluster-workers", WORKER_COLUMNS)):
            table = self.query_one(table_id, DataTable)
            for name in columns:
                table.add_column(name, key=name)
        self.set_interval(REFRESH_SECONDS, self.reload)
        await self.reload()

    async def reload(self) -> None:
        try:
            members = await cluster_members(self.url)
        except StoreError as error:
            self.query_one("#cluster-waiting", Static).update(Text(f"Cannot read the cluster: {error}"))
            return
        for table_id, rows in (
            ("#cluster-servers", server_rows(members)),
            ("#cluster-workers", worker_rows(members)),
        ):
            table = self.query_one(table_id, DataTable)
            table.clear()
            for row in rows:
                table.add_row(*row, key=row[0])
        waiting = "\n".join(waiting_lines(members)) or "no task run waits for a worker"
        self.query_one("#cluster-waiting", Static).update(Text(waiting))

    def action_close(self) -> None:
        self.dismiss(None)
