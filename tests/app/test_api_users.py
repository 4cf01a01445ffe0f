"""The API's users file: scrypt hashes made by `tiercel users hash`, read with clear refusals, and
turned into the people namespace permissions name."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.test_cli import clean_env
from tiercel.app.api.users import Users, UsersFileError, hash_password

TIERCEL = Path(sys.executable).parent / "tiercel"


def header(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


async def test_a_user_is_known_by_their_password_and_carries_their_groups(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(
        f"users:\n  - name: erin\n    password: {hash_password('s3cret:x')}\n    groups: [analysts]\n"
        f"  - name: root\n    password: {hash_password('toor')}\n    owner: true\n"
    )
    users = Users.load(path)
    erin = await users.authenticate(header("erin", "s3cret:x"))
    assert erin is not None and (erin.name, erin.groups, erin.owner) == (
        "erin",
        frozenset({"analysts"}),
        False,
    )
    assert await users.authenticate(header("erin", "s3cret:x")) == erin  # remembered: the same answer
    root = await users.authenticate(header("root", "toor"))
    assert root is not None and root.owner
    for wrong in (header("erin", "nope"), header("nobody", "s3cret:x"), "Bearer x", "Basic %%%", None):
        assert await users.authenticate(wrong) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("users: [", "users.yaml:"),
        ("people: []", "a users file holds `users:`"),
        ("users:\n  - name: a\n    password: plain", "must be a hash from `tiercel users hash`"),
        ("users:\n  - name: 'a:b'\n    password: x", "without a colon"),
        ("users:\n  - {name: a, password: 'scrypt$1$1$1$00$00', role: x}", "unknown key `role`"),
        ("users:\n  - {name: a, password: 'scrypt$1$1$1$00$00', groups: ops}", "must be a list of names"),
        (
            "users:\n  - {name: a, password: 'scrypt$1$1$1$00$00'}\n"
            "  - {name: a, password: 'scrypt$9$9$9$00$00'}",
            "listed twice",
        ),
    ],
)
def test_a_wrong_users_file_says_where_and_why(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(text)
    with pytest.raises(UsersFileError, match=re.escape(reason)):
        Users.load(path)


def test_users_hash_reads_the_password_from_stdin_and_the_server_refuses_a_wrong_file(
    tmp_path: Path,
) -> None:
    made = subprocess.run(
        [str(TIERCEL), "users", "hash"],
        input="pa ss\n",
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    assert made.returncode == 0, made.stderr
    stored = made.stdout.strip()
    path = tmp_path / "users.yaml"
    path.write_text(f"users:\n  - name: ann\n    password: {stored}\n")
    assert asyncio.run(Users.load(path).authenticate(header("ann", "pa ss"))) is not None
    path.write_text("users:\n  - name: ann\n    password: clear-text\n")
    (tmp_path / "flows").mkdir()
    refused = subprocess.run(
        [str(TIERCEL), "server", "--flows", tmp_path / "flows", "--db", tmp_path / "t.db", "--users", path],
        capture_output=True, text=True, env=clean_env(), timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "must be a hash from `tiercel users hash`" in refused.stderr


def test_the_dashboards_users_option_is_checked_before_it_opens_and_tiercel_alone_still_starts(
    tmp_path: Path,
) -> None:
    (tmp_path / "flows").mkdir()
    bad_db = tmp_path / "not-a.db"
    bad_db.write_text("garbage")

    def ui(*args: str | Path, password: str = "", **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TIERCEL), *map(str, args)], capture_output=True, text=True, env=clean_env(**env),
            input=password, cwd=tmp_path, timeout=60, check=False,
        )  # fmt: skip

    # `tiercel` alone (the dashboard, without a --users option) gets as far as the database.
    alone = ui(TIERCEL_DB=str(bad_db))
    assert alone.returncode == 2 and "file is not a database" in alone.stderr, alone.stderr
    without = ui("ui", "--flows", "flows", "--users", "users.yaml")
    assert without.returncode == 2 and "name the dashboard's user with --user, or" in without.stderr
    open_api = ui("ui", "--flows", "flows", "--read-only", "--webhooks")
    assert (
        open_api.returncode == 2 and "--read-only with --webhooks: the API would be open" in open_api.stderr
    )
    for command in ("ui", "server"):
        pointless = ui(command, "--flows", "flows", "--open-webhooks")
        assert pointless.returncode == 2 and "--open-webhooks is for --users" in pointless.stderr
    no_file = ui("ui", "--flows", "flows", "--user", "erin")
    assert no_file.returncode == 2 and "--user: name the users file it is in with --users" in no_file.stderr
    (tmp_path / "erin.yaml").write_text(f"users:\n  - name: erin\n    password: {hash_password('right')}\n")
    as_erin = ("ui", "--flows", "flows", "--db", bad_db, "--users", "erin.yaml", "--user")
    for name, password in (("erin", "wrong"), ("nobody", "right")):
        refused = ui(*as_erin, name, password=f"{password}\n")
        assert refused.returncode == 2, refused.stderr
        assert f"--user: wrong name or password for `{name}`" in refused.stderr
    # The right password: on to the database (which is not one).
    let_in = ui(*as_erin, "erin", "--read-only", password="right\n")
    assert let_in.returncode == 2 and "file is not a database" in let_in.stderr, let_in.stderr
    missing = ui("ui", "--flows", "flows", "--webhooks", "--users", "users.yaml")
    assert missing.returncode == 2 and "--users: users.yaml:" in missing.stderr
