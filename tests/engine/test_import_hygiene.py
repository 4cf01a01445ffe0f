"""The engine must stay free of UI imports, and headless commands must not pull Textual in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    # Top-level names, with tiercel's own packages named in full (tiercel.app, tiercel.engine).
    return {
        ".".join(name.split(".")[:2]) if name.startswith("tiercel.") else name.split(".")[0]
        for name in out.split()
    }


def test_engine_imports_neither_textual_nor_rich() -> None:
    loaded = _loaded_after(
        "import tiercel.engine, tiercel.engine.engine, tiercel.engine.executor.decisions,"
        " tiercel.engine.store, tiercel.engine.parser, tiercel.engine.expressions"
    )
    assert "tiercel.engine" in loaded
    assert not loaded & {"textual", "rich", "tiercel.app"}


def test_cli_module_does_not_import_textual() -> None:
    loaded = _loaded_after("import tiercel.app.cli")
    assert "textual" not in loaded and "rich" not in loaded


def _loaded_by_command(tmp_path: Path, *args: str) -> set[str]:
    """The top-level modules a `tiercel` command has imported when it exits (it must succeed)."""
    listing = tmp_path / "modules.txt"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sys.modules)))\n"
        f"sys.argv = ['tiercel', *{list(args)!r}]\n"
        "from tiercel.app.cli import main\n"
        "sys.exit(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return {name.split(".")[0] for name in listing.read_text().split()}


def test_run_and_validate_import_no_http_client_cron_or_watcher_they_do_not_use(tmp_path: Path) -> None:
    """Start-up time: httpx, croniter and watchfiles load only when a flow calls HTTP, has a
    schedule, or the engine watches its folder."""
    flow = tmp_path / "hello.yml"
    flow.write_text(
        "id: hello\nnamespace: acme\ntasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n"
        "    message: hi\n"
    )
    for args in (("validate", str(flow)), ("run", "--db", str(tmp_path / "t.db"), str(flow))):
        loaded = _loaded_by_command(tmp_path, *args)
        assert "tiercel" in loaded
        assert not loaded & {"httpx", "croniter", "watchfiles"}, args
