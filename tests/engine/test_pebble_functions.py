"""The functions of Kestra's current Pebble extension that Tiercel added: the calendar functions, ksuid(),
nanoId(), encrypt()/decrypt(), http(), tasksWithState() and the file functions.

Each case cites the Kestra test (core/src/test/java/io/kestra/core/runners/pebble/functions/) or, where
Kestra's tests do not pin it, the function's source (core/src/main/java/.../pebble/functions/).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.waiting import HANG
from tiercel.engine.expressions import ExpressionError, Renderer
from tiercel.engine.expressions.identifiers import fn_ksuid
from tiercel.engine.model import StateType

from .helpers import flow, messages, run_flow

# kestra.encryption.secret-key of Kestra's test configuration is a base64 AES-256 key like this one.
KEY = base64.b64encode(bytes(range(32))).decode()


def render(template: str, context: dict[str, Any] | None = None) -> str:
    return Renderer().render(template, context or {})


# ---------------------------------------------------------------------------------------------------------
# Calendar functions
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ dayOfWeek('2025-01-06') }}", "MONDAY"),
        ("{{ dayOfWeek('2025-01-06T00:30:00+02:00') }}", "MONDAY"),
        ("{{ dayOfWeek('2025-01-05T23:59:59') }}", "SUNDAY"),
        ("{{ dayOfWeek('2025-01-11T10:00:00Z[UTC]') }}", "SATURDAY"),
        ("{{ dayOfMonth('2025-03-31') }}", "31"),
        ("{{ monthOfYear('2025-12-01T08:00:00Z') }}", "12"),
        ("{{ hourOfDay('2025-01-06T14:30:00+02:00') }}", "14"),
        ("{{ hourOfDay('2025-01-06T23:05:00') }}", "23"),
        ("{{ isWeekend('2025-01-04') }}", "true"),
        ("{{ isWeekend('2025-01-05T12:00:00Z') }}", "true"),
        ("{{ isWeekend('2025-01-06') }}", "false"),
    ],
)
def test_calendar_reads_the_date_as_written(template: str, expected: str) -> None:
    """DayOfWeekFunctionTest, DayOfMonthFunctionTest, MonthOfYearFunctionTest, HourOfDayFunctionTest,
    IsWeekendFunctionTest: the day is the local date of the text (DateUtils.parseLocalDate), never UTC."""
    assert render(template) == expected


@pytest.mark.parametrize(
    ("date", "day", "position", "expected"),
    [
        ("2025-01-06", "MONDAY", "FIRST", True),
        ("2025-01-13", "monday", "SECOND", True),
        ("2025-01-20", "MONDAY", "THIRD", True),
        ("2025-01-27", "MONDAY", "FOURTH", True),
        ("2025-01-27", "MONDAY", "LAST", True),
        ("2025-01-20", "MONDAY", "LAST", False),
        ("2025-01-31T09:00:00Z", "FRIDAY", "last", True),
        ("2025-01-07", "MONDAY", "FIRST", False),
    ],
)
def test_is_day_week_in_month(date: str, day: str, position: str, expected: bool) -> None:
    """IsDayWeekInMonthFunctionTest: the Nth (or last) weekday of the date's month, names in any case."""
    assert render(f"{{{{ isDayWeekInMonth('{date}', '{day}', '{position}') }}}}") == str(expected).lower()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ isLastWorkingDay('2025-05-30') }}", "true"),  # Friday; May 31 is a Saturday
        ("{{ isLastWorkingDay('2025-05-31') }}", "false"),  # not a working day at all
        ("{{ isLastWorkingDay('2025-05-29') }}", "false"),
        ("{{ isLastWorkingDay('2025-05-31', 'MONDAY,TUESDAY,WEDNESDAY,THURSDAY,FRIDAY,SATURDAY') }}", "true"),
        ("{{ isLastWorkingDay('2025-05-26', 'monday tuesday') }}", "false"),
        ("{{ isLastWorkingDay('2025-05-27', 'monday tuesday') }}", "true"),
    ],
)
def test_is_last_working_day(template: str, expected: str) -> None:
    """IsLastWorkingDayFunctionTest: Monday to Friday by default, else the days listed by comma or space."""
    assert render(template) == expected


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("2026-01-01T00:00:00Z", "true"),
        ("2025-12-31T23:59:59Z", "false"),  # the bounds are excluded
        ("2026-07-01T02:00:00+03:00", "true"),  # 23:00 UTC on June 30, before the bound at 02:59:59 UTC
        ("2026-07-01T03:00:00Z", "false"),
    ],
)
def test_is_date_between_compares_instants(date: str, expected: str) -> None:
    """IsDateBetweenFunctionTest: strictly after `after` and before `before`, compared as instants."""
    template = f"{{{{ isDateBetween('{date}', '2025-12-31T23:59:59Z', '2026-06-30T23:59:59-03:00') }}}}"
    assert render(template) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ dayOfWeek() }}", "expects a 'date' argument"),
        ("{{ isWeekend('not a date') }}", "could not parse 'date'"),
        ("{{ isWeekend('2025-02-30') }}", "could not parse 'date'"),
        ("{{ hourOfDay('2025-01-06') }}", "could not parse 'date'"),
        ("{{ isDayWeekInMonth('2025-01-06', 'MONDI', 'FIRST') }}", "invalid 'dayOfWeek' value"),
        ("{{ isDayWeekInMonth('2025-01-06', 'MONDAY', 'FIFTH') }}", "invalid 'position' value"),
        ("{{ isLastWorkingDay('2025-01-06', 'MONDAY,HOLIDAY') }}", "invalid 'workingDays' value"),
        (
            "{{ isDateBetween('2026-01-01T00:00:00', '2025-01-01T00:00:00Z', '2027-01-01T00:00:00Z') }}",
            "'date'",
        ),
        (
            "{{ isDateBetween('2026-01-01T00:00:00Z', '2025-01-01T00:00:00Z') }}",
            "expects a 'before' argument",
        ),
    ],
)
def test_calendar_errors(template: str, message: str) -> None:
    """The PebbleException of each function's source: a missing argument, an unparsable date, a bad name."""
    with pytest.raises(ExpressionError, match=re.escape(message)):
        render(template)


def test_env_reads_envs_by_a_computed_name() -> None:
    """EnvFunctionTest: the `envs` entry named at render time, `default` when missing or empty."""
    context = {"envs": {"api_url_prod": "https://prod", "blank": ""}, "stage": "prod"}
    assert render("{{ env('api_url_' ~ stage) }}", context) == "https://prod"
    assert render("{{ env('missing', 'localhost') }}", context) == "localhost"
    assert render("{{ env('blank', default='fallback') }}", context) == "fallback"
    assert render("{{ env('missing') is null }}", context) == "true"
    with pytest.raises(ExpressionError, match="expects an argument 'name'"):
        render("{{ env() }}", context)


# ---------------------------------------------------------------------------------------------------------
# ksuid() and nanoId()
# ---------------------------------------------------------------------------------------------------------


def test_ksuid_is_27_base62_characters_and_unique() -> None:
    """KSUIDFunctionTest.testKsuidGeneration and testKsuidUniqueness."""
    first, second = render("{{ ksuid() }}"), render("{{ ksuid() }}")
    assert re.fullmatch(r"[0-9A-Za-z]{27}", first)
    assert first != second


def test_ksuid_starts_with_the_time() -> None:
    """KSUIDFunction: 4 bytes of seconds since the KSUID epoch lead, so that ids sort by time."""
    before = int(time.time())
    ksuid = fn_ksuid()
    after = int(time.time())
    value = 0
    for char in ksuid:
        value = value * 62 + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".index(char)
    # The second the id was made in: between the clock readings taken around its making.
    assert (value >> 128) + 1_400_000_000 in range(before, after + 1)


def test_nano_id() -> None:
    """NanoIDFuntionTest: 21 characters by default, `length` characters, drawn from `alphabet`."""
    assert re.fullmatch(r"[0-9A-Za-z_-]{21}", render("{{ nanoId() }}"))
    assert len(render("{{ nanoId(length) }}", {"length": 8})) == 8
    assert len(render("{{ nanoId(length=10) }}")) == 10
    custom = render("{{ nanoId(length, alphabet) }}", {"length": 21, "alphabet": ":;<=>?@"})
    assert len(custom) == 21 and all(":" <= char <= "@" for char in custom)


def test_nano_id_masks_bytes_like_kestra() -> None:
    """NanoIDFunction.createNanoID: index = byte & (len - 1); of ':;<=>?@' (mask 6) only even indexes."""
    drawn = set(render("{{ nanoId(length=1000, alphabet=':;<=>?@') }}"))
    assert drawn <= set(":<>@") and len(drawn) > 1


def test_nano_id_limits() -> None:
    """NanoIDFunction.parseLength: a length over 1000 fails; a length that is not an integer is ignored."""
    with pytest.raises(ExpressionError, match="must be lower than: 1000"):
        render("{{ nanoId(length=1001) }}")
    assert len(render("{{ nanoId(length='5') }}")) == 21


# ---------------------------------------------------------------------------------------------------------
# encrypt() and decrypt()
# ---------------------------------------------------------------------------------------------------------


def test_encrypt_decrypt_round_trip() -> None:
    """EncryptDecryptFunctionTest.encryptDecrypt: decrypt(key, encrypt(key, 'toto')) is 'toto'."""
    encrypted = render("{{ encrypt(key, 'toto') }}", {"key": KEY})
    assert encrypted and encrypted != "toto"
    assert render(f"{{{{ decrypt(key, '{encrypted}') }}}}", {"key": KEY}) == "toto"
    assert render("{{ encrypt(key, 'toto') }}", {"key": KEY}) != encrypted  # a fresh IV each time


def test_encrypt_writes_kestras_format() -> None:
    """EncryptionService.encrypt: base64 of a 12-byte IV, then AES/GCM ciphertext with a 128-bit tag."""
    data = base64.b64decode(render("{{ encrypt(key, 'héllo') }}", {"key": KEY}))
    assert len(data) == 12 + len("héllo".encode()) + 16
    assert AESGCM(base64.b64decode(KEY)).decrypt(data[:12], data[12:], None) == "héllo".encode()


def test_decrypt_reads_kestras_format() -> None:
    """EncryptionService.decrypt: a value encrypted elsewhere with the same key and layout decrypts."""
    iv = bytes(12)
    value = base64.b64encode(iv + AESGCM(base64.b64decode(KEY)).encrypt(iv, b"from kestra", None)).decode()
    assert render("{{ decrypt(key, value) }}", {"key": KEY, "value": value}) == "from kestra"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ encrypt('toto') }}", "expects two arguments 'key' and 'plaintext'"),
        ("{{ decrypt('toto') }}", "expects two arguments 'key' and 'encrypted'"),
        ("{{ encrypt('dG9vc2hvcnQ=', 'toto') }}", "Invalid AES key length"),
        ("{{ decrypt(key, encrypt(other, 'toto')) }}", "Tag mismatch"),
        ("{{ decrypt(key, 'not base64!') }}", "not valid base64"),
    ],
)
def test_encrypt_decrypt_errors(template: str, message: str) -> None:
    """EncryptDecryptFunctionTest.missingParameter, and the GeneralSecurityException of a wrong key."""
    other = base64.b64encode(bytes(32)).decode()
    with pytest.raises(ExpressionError, match=re.escape(message)):
        render(template, {"key": KEY, "other": other})


# ---------------------------------------------------------------------------------------------------------
# http()
# ---------------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else None
        if self.path.startswith("/missing"):
            self.send_error(404, "Not Found")
            return
        if self.path.startswith("/text"):
            payload, kind = b"plain words", "text/plain"
        else:
            echo = {
                "method": self.command,
                "path": self.path,
                "body": body,
                "contentType": self.headers.get("Content-Type"),
                "accept": self.headers.get("Accept"),
                "token": self.headers.get("X-Token"),
                "auth": self.headers.get("Authorization"),
            }
            payload, kind = json.dumps(echo).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _answer


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_http_get_parses_json(server: str) -> None:
    """HttpFunctionTest: a GET's JSON body comes back as a map; `query` joins the URI; Accept is sent."""
    renderer = Renderer()
    template = "{{ http(uri, query={'q': 'a b'}, headers={'X-Token': 'abc'}).path }}"
    context = {"uri": f"{server}/items?x=1"}
    assert renderer.render(template, context) == "/items?x=1&q=a+b"
    echoed = json.loads(renderer.render("{{ http(uri, headers={'X-Token': 'abc'}) | toJson }}", context))
    assert echoed["method"] == "GET" and echoed["token"] == "abc"
    assert echoed["accept"] == "application/json"


def test_http_post_writes_the_body(server: str) -> None:
    """HttpFunction.toRequestBody: a map body is written as JSON by default, its Content-Type sent."""
    template = "{{ http(uri=uri, method='post', body={'name': 'tiercel'}) | toJson }}"
    echoed = json.loads(render(template, {"uri": server}))
    assert echoed["method"] == "POST"
    assert json.loads(echoed["body"]) == {"name": "tiercel"}
    assert echoed["contentType"] == "application/json"


def test_http_text_and_auth(server: str) -> None:
    """HttpFunction: a body that is not JSON is its text; options.auth sends the credentials."""
    assert render("{{ http(uri ~ '/text') }}", {"uri": server}) == "plain words"
    template = "{{ http(uri, options={'auth': {'type': 'BEARER', 'token': 't0k'}}).auth }}"
    assert render(template, {"uri": server}) == "Bearer t0k"


def test_http_error_status_fails(server: str) -> None:
    """HttpFunction: an error status fails with 'server respond with status 404 : Not Found'."""
    with pytest.raises(ExpressionError, match="server respond with status 404 : Not Found"):
        render("{{ http(uri ~ '/missing') }}", {"uri": server})
    with pytest.raises(ExpressionError, match="expects an argument 'uri'"):
        render("{{ http() }}")


def test_http_honours_the_time_limit() -> None:
    """The render's time limit: a server that never answers does not hold the render past it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    context = {"uri": f"http://127.0.0.1:{listener.getsockname()[1]}/"}
    try:
        # The render runs in a thread so that a render that never stops fails the test at HANG.
        with ThreadPoolExecutor(max_workers=1) as pool:
            rendering = pool.submit(Renderer(timeout_s=1).render, "{{ http(uri) }}", context)
            with pytest.raises(ExpressionError, match="took longer than 1 s"):
                rendering.result(timeout=HANG)
    finally:
        listener.close()


# ---------------------------------------------------------------------------------------------------------
# Through an engine: the file functions and tasksWithState()
# ---------------------------------------------------------------------------------------------------------


async def test_file_functions_on_execution_files(tmp_path: Path) -> None:
    """FileExistsFunctionTest, FileSizeFunctionTest, IsFileEmptyFunctionTest: files of the execution."""
    source = flow(
        """
        tasks:
          - id: make
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["printf abcde > full.txt", ": > empty.txt"]
            outputFiles: ["full.txt", "empty.txt"]
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: >-
              {{ fileExists(outputs.make.outputFiles['full.txt']) }}
              {{ fileSize(outputs.make.outputFiles['full.txt']) }}
              {{ isFileEmpty(outputs.make.outputFiles['full.txt']) }}
              {{ isFileEmpty(outputs.make.outputFiles['empty.txt']) }}
              {{ fileExists(outputs.make.outputFiles['full.txt'] ~ '.gone') }}
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is StateType.SUCCESS, messages(logs)
    assert "true 5 false true false" in messages(logs)


async def test_file_functions_on_namespace_files(tmp_path: Path) -> None:
    """FileExistsFunctionTest.readNamespaceFileWithNamespace, shouldProcessNamespaceFile, FileURIFunctionTest:
    a plain path, nsfile:// URIs, the `namespace` argument and fileURI() name namespace files."""
    files = tmp_path / "flows" / "_files"
    (files / "company.team").mkdir(parents=True)
    (files / "company.team" / "data.txt").write_text("twelve chars")
    (files / "company").mkdir()
    (files / "company" / "empty.txt").write_text("")
    source = flow(
        """
        tasks:
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: >-
              {{ fileURI('data.txt') }}
              {{ fileSize('data.txt') }}
              {{ fileExists('nsfile:///data.txt') }}
              {{ fileExists('nsfile://company/empty.txt') }}
              {{ isFileEmpty('empty.txt', namespace='company') }}
              {{ fileExists('nope.txt') }}
              {{ read(fileURI('data.txt')) }}
              {{ fileSize(fileURI('data.txt')) }}
        """,
        namespace="company.team",
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is StateType.SUCCESS, messages(logs)
    expected = "kestra:///company/team/_files/data.txt 12 true true true false twelve chars 12"
    assert expected in messages(logs)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("fileExists('nsfile://other/data.txt')", "reads only the namespace files of its own namespace"),
        ("fileSize('data.txt', namespace='other')", "reads only the namespace files of its own namespace"),
        ("fileExists('nsfile://company/x', namespace='company')", "both as the function argument"),
        ("fileExists('unsupported://path-to/file.txt')", "scheme not supported"),
        ("fileExists('file:///etc/passwd')", "local files"),
        ("fileSize('missing.txt')", "no namespace file"),
        ("fileExists('kestra:///other/f/executions/e1/tasks/t/r/x.txt')", "belongs to namespace `other`"),
    ],
)
async def test_file_functions_refuse(tmp_path: Path, expression: str, message: str) -> None:
    """FileExistsFunctionTest.shouldFailProcessingUnsupportedScheme and shouldFailProcessingNotAllowedPath,
    AbstractFileFunction's namespace checks: the task fails with the reason."""
    source = flow(
        f"""
        tasks:
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ {expression} }}}}"
        """,
        namespace="company.team",
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is StateType.FAILED
    assert any(message in line for line in messages(logs)), messages(logs)


async def test_tasks_with_state(tmp_path: Path) -> None:
    """TasksWithStateFunctionTest: the tasks in a state, as {taskId, state} maps, with `value` in loops."""
    source = flow(
        """
        tasks:
          - id: ok
            type: io.kestra.plugin.core.debug.Return
            format: fine
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b"]
            tasks:
              - id: inner
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}"
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "{{ tasksWithState('success') | toJson }}|{{ tasksWithState(state='FAILED') is empty }}"
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is StateType.SUCCESS, messages(logs)
    shown = next(line for line in messages(logs) if line.startswith("["))
    found, empty = shown.rsplit("|", 1)
    assert [entry for entry in json.loads(found) if entry["taskId"] in ("ok", "inner")] == [
        {"taskId": "ok", "state": "SUCCESS"},
        {"taskId": "inner", "state": "SUCCESS", "value": "a"},
        {"taskId": "inner", "state": "SUCCESS", "value": "b"},
    ]
    assert empty == "true"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ isPublicHoliday('2024-12-25', 'FR') }}", "true"),
        ("{{ isPublicHoliday('2024-03-12', 'FR') }}", "false"),
        ("{{ isPublicHoliday('2024-12-25T10:00:00Z', 'FR') }}", "true"),
        ("{{ isPublicHoliday('2024-11-11', 'FR', '') }}", "true"),
    ],
)
def test_is_public_holiday(template: str, expected: str) -> None:
    """Kestra's IsPublicHolidayFunctionTest (Jollyday there, the `holidays` package here)."""
    assert render(template) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{{ isPublicHoliday() }}",
        "{{ isPublicHoliday('2024-12-25') }}",
        "{{ isPublicHoliday('not-a-date', 'FR') }}",
        "{{ isPublicHoliday('2024-12-25', 'XX') }}",
    ],
)
def test_is_public_holiday_refuses_what_kestra_refuses(template: str) -> None:
    """IsPublicHolidayFunctionTest: a missing date or country, a bad date or country fail the render."""
    with pytest.raises(ExpressionError):
        render(template)
