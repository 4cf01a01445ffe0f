"""The user's keymap file: binding ids remapped to other keys, and a broken file reported, not raised."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.app.test_dashboard import db, flows, only_state, select_flow
from tests.waiting import until_drawn
from tiercel.app.app import KEYED_CLASSES, TiercelApp
from tiercel.app.keymap import KeymapError, binding_ids, keymap_path, load_keymap
from tiercel.app.screens.confirm import ConfirmScreen
from tiercel.app.screens.help import HelpScreen

__all__ = ["db", "flows"]  # fixtures shared with test_dashboard


def write_keymap(config: Path, text: str) -> Path:
    path = config / "tiercel" / "keymap.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


async def start(app: TiercelApp, pilot: Pilot[None]) -> None:
    await until_drawn(pilot, lambda: app.engine is not None and app.ns_tree.flow_count > 0)


def test_every_binding_has_an_id_and_the_ids_are_unique() -> None:
    seen: list[str] = []
    for cls in KEYED_CLASSES:
        for binding in getattr(cls, "BINDINGS", ()):
            assert binding.id, f"{cls.__name__}: {binding.key} -> {binding.action} has no id"
            seen.append(binding.id)
    # One id may serve a single binding only, except the forms' shared submit and cancel.
    repeated = {binding_id for binding_id in seen if seen.count(binding_id) > 1}
    assert repeated <= {"tiercel.form.submit", "tiercel.form.cancel"}


def test_keymap_path_follows_xdg_config_home(tmp_path: Path) -> None:
    assert keymap_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "tiercel" / "keymap.toml"
    assert keymap_path({}) == Path.home() / ".config" / "tiercel" / "keymap.toml"


def test_keymap_reads_quoted_ids_tables_and_lists(tmp_path: Path) -> None:
    path = write_keymap(tmp_path, '"tiercel.kill" = "x"\n[tiercel.log]\nlevel = ["f2", "ctrl+l"]\n')
    keymap = load_keymap(path, binding_ids(KEYED_CLASSES))
    assert keymap.keys == {"tiercel.kill": "x", "tiercel.log.level": "f2,ctrl+l"}
    assert keymap.problems == []
    assert load_keymap(tmp_path / "missing.toml", set()).keys == {}


def test_keymap_problems_name_the_file_and_line(tmp_path: Path) -> None:
    known = binding_ids(KEYED_CLASSES)
    path = write_keymap(tmp_path, '"tiercel.kill" = "x"\n"tiercel.kil" = "z"\n"tiercel.help" = 3\n')
    keymap = load_keymap(path, known)
    assert keymap.keys == {"tiercel.kill": "x"}
    assert keymap.problems[0] == (
        f"{path}, line 2: `tiercel.kil` is not a binding id (did you mean `tiercel.kill`?)"
    )
    assert keymap.problems[1].startswith(f"{path}, line 3: `tiercel.help` needs a key")
    broken = write_keymap(tmp_path, '"tiercel.kill" = "x"\n"tiercel.run" = \n')
    with pytest.raises(KeymapError, match=rf"^{broken}, line 2: "):
        load_keymap(broken, known)


async def test_a_remapped_key_runs_the_action_and_the_old_key_no_longer_does(
    flows: Path, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    write_keymap(config, '"tiercel.kill" = "x"\n"tiercel.help" = "f1"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(app, pilot)
        await select_flow(app, pilot, "acme.platform.ops", "sleepy")
        await pilot.press("r")
        await until_drawn(pilot, lambda: only_state(app) == "RUNNING")
        await pilot.press("2", "K")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen)  # K is no longer the kill key
        await pilot.press("x")
        await until_drawn(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until_drawn(pilot, lambda: only_state(app) == "KILLED")
        await pilot.press("f1")
        await until_drawn(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = str(app.screen.query_one("#help-global").render())
        assert "x  kill the selected execution" in shown
        assert str(config / "tiercel" / "keymap.toml") in str(app.screen.query_one("#help-keymap").render())


async def test_a_broken_keymap_file_is_reported_and_the_default_keys_stay(
    flows: Path, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    path = write_keymap(config, '"tiercel.kill" = "x"\n"tiercel.help = "f1"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    app = TiercelApp(flows, db, control=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await start(app, pilot)
        messages = [note.message for note in app._notifications]
        assert any(message.startswith(f"{path}, line 2: ") for message in messages), messages
        await pilot.press("question_mark")
        await until_drawn(pilot, lambda: isinstance(app.screen, HelpScreen))
