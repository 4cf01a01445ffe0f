"""Secrets from the environment and a file, and masking of every common encoding of their values."""

from __future__ import annotations

import asyncio
import base64
import json
import timeit
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.engine.helpers import logs_of, run, running_engine
from tiercel.engine.inputs import InputError
from tiercel.engine.secrets import MASK, Masker, SecretError, Secrets


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


# --- Secrets ----------------------------------------------------------------------------------------


def test_env_value_is_base64_decoded() -> None:
    secrets = Secrets(environ={"SECRET_DB_PASSWORD": b64("s3cr3t pässword"), "OTHER": "x"})
    assert secrets.get("DB_PASSWORD") == "s3cr3t pässword"


def test_key_is_case_insensitive_like_kestra() -> None:
    secrets = Secrets(environ={"SECRET_API_TOKEN": b64("tok")})
    assert secrets.get("api_token") == "tok"
    assert secrets.get("Api_Token") == "tok"


def test_env_value_tolerates_line_breaks_and_missing_padding() -> None:
    multi_line = b64("-----BEGIN KEY-----\nabc\n-----END KEY-----")
    wrapped = "\n".join(multi_line[i : i + 16] for i in range(0, len(multi_line), 16)) + "\n"
    secrets = Secrets(environ={"SECRET_KEY": wrapped, "SECRET_SHORT": b64("ab").rstrip("=")})
    assert secrets.get("KEY") == "-----BEGIN KEY-----\nabc\n-----END KEY-----"
    assert secrets.get("SHORT") == "ab"


@pytest.mark.parametrize("value", ["not base64!", "abcde", "YWJj$", "YQ==YQ==", "cGFzc3dvcmQ-"])
def test_invalid_base64_says_so_without_the_value(value: str) -> None:
    secrets = Secrets(environ={"SECRET_BROKEN": value})
    with pytest.raises(SecretError) as error:
        secrets.get("broken")
    message = str(error.value)
    assert "environment variable SECRET_BROKEN is not valid base64" in message
    assert "Secret 'broken'" in message
    assert value not in message


def test_value_that_is_not_utf8_once_decoded() -> None:
    secrets = Secrets(environ={"SECRET_BIN": base64.b64encode(b"\xff\xfe").decode()})
    with pytest.raises(SecretError, match="does not decode to UTF-8"):
        secrets.get("BIN")


def test_missing_secret_uses_kestras_message() -> None:
    with pytest.raises(SecretError) as error:
        Secrets(environ={}).get("my_password")
    assert str(error.value) == "Cannot find secret for key 'my_password'."


def test_default_environment_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_FROM_OS", b64("from-os"))
    assert Secrets().get("FROM_OS") == "from-os"


ENV_FILE = """\ufeff# a comment, after a byte order mark

PLAIN=hello world
export EXPORTED=yes
SPACED   =   padded value
WITH_COMMENT=value # trailing comment
HASH_INSIDE=pass#word
SINGLE='literal \\n $x # not a comment'
DOUBLE="line1\\nline2 \\"quoted\\" \\\\ end" # comment after quotes
EQUALS=a=b=c
EMPTY=
mixed_Case=lower
PEM="-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASC
-----END PRIVATE KEY-----"
PLAIN=later wins
"""


def test_file_parsing(tmp_path: Path) -> None:
    file = tmp_path / "secrets.env"
    file.write_text(ENV_FILE, encoding="utf-8")
    secrets = Secrets(environ={}, file=file)
    assert secrets.get("PLAIN") == "later wins"
    assert secrets.get("EXPORTED") == "yes"
    assert secrets.get("SPACED") == "padded value"
    assert secrets.get("WITH_COMMENT") == "value"
    assert secrets.get("HASH_INSIDE") == "pass#word"
    assert secrets.get("SINGLE") == "literal \\n $x # not a comment"
    assert secrets.get("DOUBLE") == 'line1\nline2 "quoted" \\ end'
    assert secrets.get("EQUALS") == "a=b=c"
    assert secrets.get("EMPTY") == ""
    assert secrets.get("MIXED_CASE") == "lower"
    assert secrets.get("pem") == (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    )


def test_file_values_are_plain_and_env_wins(tmp_path: Path) -> None:
    file = tmp_path / "secrets.env"
    file.write_text("TOKEN=from-file\nONLY_FILE=aGVsbG8=\n")
    secrets = Secrets(environ={"SECRET_TOKEN": b64("from-env")}, file=file)
    assert secrets.get("TOKEN") == "from-env"
    assert secrets.get("ONLY_FILE") == "aGVsbG8="  # not decoded
    with pytest.raises(SecretError, match=r"^Cannot find secret for key 'NOPE'\.$"):
        secrets.get("NOPE")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("GOOD=1\njust text\n", r"secrets.env:2: expected KEY=VALUE"),
        ("1BAD=x\n", r"secrets.env:1: expected KEY=VALUE"),
        ('A=1\nB="never closed\nC=3\n', r"secrets.env:2: the \" quote opened for B is never closed"),
        ("A='x' trailing\n", r"secrets.env:1: unexpected text after the closing quote of A"),
    ],
)
def test_malformed_file_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "secrets.env"
    file.write_text(content)
    with pytest.raises(SecretError, match=message):
        Secrets(environ={}, file=file)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="does not exist"):
        Secrets(environ={}, file=tmp_path / "absent.env")


# --- Masker -----------------------------------------------------------------------------------------

SECRET = 'Tr0ub4dor &3 "zürich"/?>>'


def encoded_forms(secret: str) -> dict[str, str]:
    raw = secret.encode()
    return {
        "plain": secret,
        "upper": secret.upper(),
        "lower": secret.lower(),
        "mixed case": "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(secret)),
        "base64": base64.b64encode(raw).decode(),
        "base64 unpadded": base64.b64encode(raw).decode().rstrip("="),
        "base64 url-safe": base64.urlsafe_b64encode(raw).decode(),
        "base64 url-safe unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "quote": quote(secret, safe=""),
        "quote default safe": quote(secret),
        "quote_plus": quote_plus(secret),
        "json": json.dumps(secret)[1:-1],
        "json ascii off": json.dumps(secret, ensure_ascii=False)[1:-1],
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
    }


def test_test_forms_are_really_different() -> None:
    forms = encoded_forms(SECRET)
    assert len(set(forms.values())) == len(forms)


@pytest.mark.parametrize("form", list(encoded_forms(SECRET)))
def test_every_encoding_is_masked(form: str) -> None:
    masker = Masker()
    masker.add(SECRET)
    value = encoded_forms(SECRET)[form]
    assert masker.mask(f"before {value} after") == f"before {MASK} after"
    assert masker.mask(value) == MASK
    assert masker.mask(f"{value}{value}") == MASK


def test_secret_inside_basic_auth_header_is_masked() -> None:
    masker = Masker()
    masker.add("correct-horse-battery")
    for user in ("u", "us", "use", "user"):  # each byte offset of the password in the encoding
        header = "Authorization: Basic " + b64(f"{user}:correct-horse-battery")
        masked = masker.mask(header)
        # Only the characters that also encode the user name (and padding) may remain around the mask.
        before, mask, after = masked.removeprefix("Authorization: Basic ").partition(MASK)
        assert mask == MASK
        assert len(before) <= 8
        assert len(after) <= 4


def test_multi_line_secret_lines_are_masked_each() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nshort\n-----END KEY-----"
    masker = Masker()
    masker.add(pem)
    assert masker.mask("key: " + pem) == "key: " + MASK
    assert masker.mask("line MIIEvQIBADANBgkqhkiG9w0B seen") == f"line {MASK} seen"
    assert masker.mask("a short word") == "a short word"  # lines under 8 characters are not masked alone
    assert masker.mask(json.dumps({"k": pem})) == json.dumps({"k": MASK})


def test_unrelated_text_is_untouched() -> None:
    masker = Masker()
    masker.add("hunter2-password")
    masker.add("sk_live_51H8xYzABCDEF")
    for text in [
        "",
        "hunter2 is a famous password",
        "password reset for user hunter",
        "sk_live_ key prefix only",
        "2024-05-01 INFO Processed 1200 rows in 0.3s",
        "aHVudGVy",  # base64 of 'hunter', a prefix of the secret
        "ünïcödé text İstanbul",
    ]:
        assert masker.mask(text) == text


def test_several_secrets_and_overlaps_leave_nothing_in_clear() -> None:
    masker = Masker()
    masker.add("alpha-1234")
    masker.add("1234-omega")
    assert masker.mask("x alpha-1234-omega y") == f"x {MASK} y"
    assert masker.mask("alpha-1234 and 1234-omega") == f"{MASK} and {MASK}"


def test_secret_added_later_is_masked_too() -> None:
    masker = Masker()
    masker.add("first-secret")
    assert masker.mask("second-secret") == "second-secret"
    masker.add("second-secret")
    assert masker.mask("first-secret second-secret") == f"{MASK} {MASK}"
    assert len(masker) == 2


def test_text_whose_lowercase_changes_length_is_still_masked() -> None:
    masker = Masker()
    masker.add("Secret-Value")
    # 'İ'.lower() is two characters, so matching falls back to a case-insensitive pass on the text.
    assert masker.mask("İ SECRET-value İ") == f"İ {MASK} İ"


def test_short_values_are_ignored() -> None:
    masker = Masker()
    for value in ("", "a", "on", "yes"):
        masker.add(value)
    assert not masker
    assert masker.mask("a yes on") == "a yes on"
    masker.add("four")
    assert masker
    assert masker.mask("FOUR and four") == f"{MASK} and {MASK}"
    assert masker.mask("fou") == "fou"


def test_min_length_is_configurable() -> None:
    masker = Masker(min_length=2)
    masker.add("ab")
    assert masker.mask("xab") == f"x{MASK}"


def test_mask_value_goes_through_nested_structures() -> None:
    masker = Masker()
    masker.add("s3cr3t-token")
    value = {
        "headers": {"Authorization": "Bearer s3cr3t-token", "s3cr3t-token": "as key"},
        "items": ["ok", "S3CR3T-TOKEN", ("tuple", "x-s3cr3t-token-y")],
        "count": 3,
        "flag": True,
        "none": None,
        "ratio": 0.5,
    }
    assert masker.mask_value(value) == {
        "headers": {"Authorization": f"Bearer {MASK}", MASK: "as key"},
        "items": ["ok", MASK, ("tuple", f"x-{MASK}-y")],
        "count": 3,
        "flag": True,
        "none": None,
        "ratio": 0.5,
    }


def test_mask_value_masks_numbers_holding_a_secret() -> None:
    masker = Masker()
    masker.add("987654")
    assert masker.mask_value({"pin": 987654, "other": 12}) == {"pin": MASK, "other": 12}


def test_empty_masker_returns_inputs_unchanged() -> None:
    masker = Masker()
    value = {"a": ["b"]}
    assert not masker
    assert masker.mask_value(value) is value
    assert masker.mask("text") == "text"


def test_masking_a_clean_log_line_is_cheap() -> None:
    masker = Masker()
    for secret in ("hunter2-password", "sk_live_51H8xYzABCDEF", SECRET):
        masker.add(secret)
    line = "2024-05-01T12:00:00.123Z INFO  [worker-3] Processed batch 42 of customer records in 0.318s"
    runs = 20_000
    seconds = min(timeit.repeat(lambda: masker.mask(line), number=runs, repeat=5)) / runs
    print(f"Masker.mask on a {len(line)}-character clean line with 3 secrets: {seconds * 1e6:.2f} µs")
    # Measured ~0.6 µs; the bound leaves room for slow, shared test machines.
    assert seconds < 200e-6


# --- Values held for an owner (an execution's SECRET inputs) ---------------------------------------


def test_released_values_are_forgotten_and_the_others_kept() -> None:
    masker = Masker()
    masker.add("resolved-secret")  # no owner: kept for good
    masker.add("input-of-one", owner="e1")
    masker.add("shared-value", owner="e1")
    masker.add("shared-value", owner="e2")
    masker.add("resolved-secret", owner="e1")
    assert masker.mask("input-of-one shared-value resolved-secret") == f"{MASK} {MASK} {MASK}"
    masker.release("e1")
    assert masker.mask("input-of-one shared-value resolved-secret") == f"input-of-one {MASK} {MASK}"
    masker.release("e2")
    masker.release("unknown")
    assert masker.mask("input-of-one shared-value resolved-secret") == f"input-of-one shared-value {MASK}"
    assert len(masker) == 1


def test_a_masker_emptied_by_release_masks_nothing() -> None:
    masker = Masker()
    masker.add("only-for-e1", owner="e1")
    masker.release("e1")
    assert not masker and len(masker) == 0
    assert masker.mask("only-for-e1") == "only-for-e1"
    masker.add("only-for-e1", owner="e2")  # a later owner gets it masked again
    assert masker.mask("only-for-e1") == MASK


SECRET_FLOW = """
id: vault
namespace: acme.sec
inputs:
  - {id: password, type: SECRET}
tasks:
  - {id: before, type: io.kestra.plugin.core.log.Log, message: "before {{ inputs.password }}"}
  - {id: hold, type: io.kestra.plugin.core.flow.Pause}
  - {id: after, type: io.kestra.plugin.core.log.Log, message: "after {{ inputs.password }}"}
"""
REFUSED_FLOW = """
id: refused
namespace: acme.sec
inputs:
  - {id: password, type: SECRET}
  - {id: doc, type: FILE}
tasks:
  - {id: say, type: io.kestra.plugin.core.log.Log, message: never}
"""
QUICK_FLOW = """
id: quick
namespace: acme.sec
inputs:
  - {id: password, type: SECRET}
tasks:
  - {id: say, type: io.kestra.plugin.core.log.Log, message: "said {{ inputs.password }}"}
"""


async def test_secret_inputs_are_masked_while_the_execution_runs_and_dropped_when_it_ends(
    tmp_path: Path,
) -> None:
    async with running_engine(tmp_path, SECRET_FLOW, QUICK_FLOW, REFUSED_FLOW) as engine:
        paused = await run(engine, "acme.sec", "vault", {"password": "first-Pass-0001"})
        assert len(engine.masker) == 1  # held while the execution is paused
        await engine.resume(paused.id)
        ended = await asyncio.wait_for(engine.wait(paused.id), 20)
        lines = [entry.message for entry in await logs_of(engine, ended.id)]
        assert "before ******" in lines and "after ******" in lines, lines
        assert len(engine.masker) == 0
        # Many executions, each with its own value: the masker does not grow with them.
        for index in range(60):
            done = await run(engine, "acme.sec", "quick", {"password": f"pass-{index:04d}-Xy"})
            assert [e.message for e in await logs_of(engine, done.id)] == ["said ******"]
        assert len(engine.masker) == 0 and not engine.masker
        # An execution refused for another input does not leave its secret behind.
        with pytest.raises(InputError, match="input `doc`"):
            await engine.trigger(
                "acme.sec", "refused", {"password": "kept-Nowhere-01", "doc": "/etc/hostname"}
            )
        assert len(engine.masker) == 0


def test_secrets_values_are_every_readable_secret(tmp_path: Path) -> None:
    file = tmp_path / "secrets.env"
    file.write_text("FROM_FILE=file-value-1\nBOTH=hidden-by-env\n")
    secrets = Secrets(
        environ={"SECRET_TOKEN": b64("env-token-1"), "SECRET_BOTH": b64("env-wins-1"), "SECRET_BAD": "!!"},
        file=file,
    )
    assert sorted(secrets.values()) == ["env-token-1", "env-wins-1", "file-value-1"]


def test_add_all_masks_every_value_like_add() -> None:
    masker = Masker()
    masker.add_all(["first-value", "second-value", "ab"])
    assert len(masker) == 2
    assert masker.mask("first-value and second-value and ab") == f"{MASK} and {MASK} and ab"
    masker.add("third-value", owner="e1")
    masker.release("e1")
    assert masker.mask("first-value third-value") == f"{MASK} third-value"


TOKEN = "tok-Real-Value-42"
TOKEN_FLOW = """
id: relay
namespace: acme.sec
labels: {team: "{{ 'x' }}"}
tasks:
  - id: token
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('API_TOKEN') }}"
  - id: check
    type: io.kestra.plugin.scripts.shell.Commands
    env: {GOT: "{{ outputs.token.value }}"}
    commands: ['[ "$GOT" = "tok-Real-Value-42" ] && echo "arrived intact: $GOT" || echo "corrupted: $GOT"']
outputs:
  - {id: token, type: STRING, value: "{{ outputs.token.value }}"}
"""


async def test_a_secret_output_reaches_the_next_task_intact_and_logs_stay_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_API_TOKEN", b64(TOKEN))
    async with running_engine(tmp_path, TOKEN_FLOW) as engine:
        execution = await run(engine, "acme.sec", "relay")
        lines = [entry.message for entry in await logs_of(engine, execution.id)]
        stored = await engine.store.get_execution(execution.id)
    assert execution.state.current.value == "SUCCESS", lines
    # Data: the real value, in the task run's outputs and the flow's outputs, as Kestra passes them on.
    assert stored is not None
    token_run = next(run for run in stored.task_runs if run.task_id == "token")
    assert (token_run.outputs or {})["value"] == TOKEN
    assert (stored.outputs or {})["token"] == TOKEN
    # Shown: masked.
    assert "arrived intact: ******" in lines, lines
    assert not any(TOKEN in line for line in lines)
    assert not any("corrupted" in line for line in lines)


async def test_every_configured_secret_is_masked_before_any_task_uses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_UNUSED_KEY", b64("never-Rendered-77"))
    async with running_engine(tmp_path) as engine:
        assert engine.masker.mask("saw never-Rendered-77") == f"saw {MASK}"
