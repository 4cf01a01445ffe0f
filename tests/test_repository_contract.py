"""The README's test command is what CI runs, verbatim."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    test_command = next(block for block in blocks if "pytest" in block)
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_readme_opens_the_dashboard_on_the_sample_flows() -> None:
    readme = (REPO / "README.md").read_text()
    assert "tiercel ui --flows sample_flows" in readme


def _copy_into(root: Path, *relative: str) -> Path:
    """A checkout of just these files under root/clone, with no ../shared beside it."""
    clone = root / "clone"
    for name in relative:
        target = clone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return clone


def test_conformance_step_skips_in_one_line_on_a_clone_without_shared(tmp_path: Path) -> None:
    clone = _copy_into(tmp_path, "tests/run_conformance.py")
    result = subprocess.run(
        [sys.executable, "tests/run_conformance.py"], cwd=clone, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and "conformance suite skipped" in lines[0]
    assert str(tmp_path / "shared" / "conformance") in lines[0]


def test_conformance_step_runs_the_suite_when_shared_is_beside_the_clone(tmp_path: Path) -> None:
    clone = _copy_into(tmp_path, "tests/run_conformance.py")
    suite = tmp_path / "shared" / "conformance" / "run.py"
    suite.parent.mkdir(parents=True)
    # A stand-in suite that reports what it was given and which `tiercel` it would call.
    suite.write_text(
        "import shutil, sys\n"
        "print('args', sys.argv[1:], shutil.which('tiercel'))\n"
        "print('0 passed, 1 failed')\n"
        "sys.exit(1)\n"
    )
    result = subprocess.run(
        [sys.executable, "tests/run_conformance.py", "-k", "retry"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "args ['-k', 'retry']" in result.stdout
    assert "0 passed, 1 failed" in result.stdout
    assert str(Path(sys.executable).parent / "tiercel") in result.stdout


def test_ci_refuses_to_run_without_the_conformance_suite(tmp_path: Path) -> None:
    clone = _copy_into(tmp_path, ".ci/run")
    result = subprocess.run(["bash", ".ci/run"], cwd=clone, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "conformance" in result.stderr and "missing" in result.stderr
    assert not (clone / ".venv").exists()  # it stopped before installing anything


def test_every_package_folder_is_installed_under_tiercel() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = config["package-dir"]
    folders = {
        f"tiercel.{init.parent.relative_to(REPO).as_posix().replace('/', '.')}"
        for top in ("app", "engine")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert set(config["packages"]) == folders
    assert mapping == {"tiercel.app": "app", "tiercel.engine": "engine"}
