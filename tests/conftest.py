"""Shared fixtures: real SQLite files in temporary folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE_FLOWS = REPO.parent / "shared" / "conformance" / "flows"


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "flows"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def private_user_folders(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's keymap, dashboard state and data (a PostgreSQL store's local files) live in a fresh
    folder per test, never in ~."""
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.delenv("TIERCEL_STORAGE", raising=False)  # each store's files beside it


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With TIERCEL_TEST_STORE=postgres (engines on PostgreSQL stores), the tests that reach into an
    SQLite file themselves (to break it, or to write it as an old version would) are skipped."""
    if os.environ.get("TIERCEL_TEST_STORE") != "postgres":
        return
    skip = pytest.mark.skip(reason="reaches into the SQLite file itself")
    for item in items:
        if "sqlite_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL store's URL: a fresh schema of the test server's database, dropped after."""
    from tests.postgres import drop_schema, new_schema_url

    url, schema = new_schema_url()
    yield url
    drop_schema(schema)
