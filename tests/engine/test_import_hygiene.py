"""The engine must stay free of UI imports, and headless commands must not pull Textual in."""

from __future__ import annotations

import subprocess
import sys


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
