"""A built wheel carries every data file the code reads, under the distinctive `tiercel` name.

The editable install reads files straight from the checkout, so only a real wheel shows what a
`pip install .`, `pipx install .` or `uv tool install .` user gets. (.ci/run goes further: it
installs the wheel into a fresh venv and runs a sample flow from another folder.)
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
DATA_SUFFIXES = {".sql", ".tcss"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("tiercel-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_ships_every_data_file_of_app_and_engine(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for top in ("app", "engine"):
        for path in (REPO / top).rglob("*"):
            if path.suffix in DATA_SUFFIXES or path.suffix == ".py":
                assert f"tiercel/{path.relative_to(REPO).as_posix()}" in names, path


def test_wheel_installs_nothing_at_the_top_level_but_tiercel(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"tiercel"}
    assert any(name.endswith("licenses/LICENSE") for name in wheel.namelist())
