"""The HTTP Request and Download tasks against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from tests.engine.helpers import flow, one_run, run_flow
from tiercel.engine.expressions import Renderer
from tiercel.engine.expressions.variables import build_context
from tiercel.engine.internal_storage import Storage
from tiercel.engine.model import Execution, LogLevel, State, StateType, TaskRun, new_id
from tiercel.engine.parser import parse_flow
from tiercel.engine.tasks import http
from tiercel.engine.tasks.base import TaskContext, TaskFailure
from tiercel.engine.tasks.http import response as http_response

REQUEST = "io.kestra.plugin.core.http.Request"
DOWNLOAD = "io.kestra.plugin.core.http.Download"
RENDERER = Renderer()

BIG_CHUNKS = 320  # 320 x 64 KiB = 20 MiB
REPORT = b"id,total\n1,10\n2,20\n"
CREDENTIALS = base64.b64encode(b"user:s3cret").decode()


def big_chunk(index: int) -> bytes:
    return hashlib.sha256(str(index).encode()).digest() * 2048


# ---------------------------------------------------------------------------------------------
# The local server
# ---------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.route()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def reply(
        self,
        code: int,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(code)
        for name, value in headers or []:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(size) if size else b""
        path = self.path
        if path.endswith("/echo"):
            echo = {
                "method": self.command,
                "path": path,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": received.decode("utf-8", errors="replace"),
            }
            self.reply(200, json.dumps(echo).encode(), [("Content-Type", "application/json")])
        elif path == "/json":
            body = json.dumps({"hello": "wörld"}, ensure_ascii=False).encode()
            headers = [
                ("Content-Type", "application/json; charset=utf-8"),
                ("X-Multi", "one"),
                ("X-Multi", "two"),
            ]
            self.reply(200, body, headers)
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self.reply(code, f"error page {code}".encode(), [("Content-Type", "text/plain")])
        elif path == "/redirect":
            self.reply(302, headers=[("Location", "/echo")])
        elif path == "/auth":
            if self.headers.get("Authorization") == f"Basic {CREDENTIALS}":
                self.reply(200, b"welcome")
            else:
                self.reply(401, b"who are you?", [("WWW-Authenticate", 'Basic realm="test"')])
        elif path == "/slow":
            time.sleep(1.0)
            self.reply(200, b"late")
        elif path == "/files/report.csv":
            self.reply(200, REPORT, [("Content-Type", "text/csv")])
        elif path == "/disposition":
            self.reply(
                200, b"evil", [("Content-Disposition", 'attachment; filename="../../etc/evil name.txt"')]
            )
        elif path == "/disposition-utf8":
            disposition = "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
            self.reply(200, b"%PDF", [("Content-Disposition", disposition)])
        elif path == "/empty":
            self.reply(200)
        elif path == "/short":
            self.close_connection = True
            self.reply(200, b"0123456789", length=100)
        elif path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(BIG_CHUNKS * 64 * 1024))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            for index in range(BIG_CHUNKS):
                self.wfile.write(big_chunk(index))
        else:
            self.reply(404, b"no such page")


class Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up early (timeouts, the size cap) close the connection mid-reply.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "storage")


# ---------------------------------------------------------------------------------------------
# Running one task
# ---------------------------------------------------------------------------------------------


class Run:
    """One task of a one-task flow, with the lines it logged."""

    def __init__(self, task_type: str, storage: Storage | None, **props: Any) -> None:
        source = {
            "id": "http_flow",
            "namespace": "company.team",
            "tasks": [{"id": "call", "type": task_type, **props}],
        }
        flow = parse_flow(yaml.safe_dump(source, sort_keys=False))
        spec = flow.tasks_by_id["call"]
        execution = Execution(
            id=new_id(),
            namespace=flow.namespace,
            flow_id=flow.id,
            flow_revision=flow.revision,
            state=State.new(),
        )
        self.task_run = TaskRun(
            id=new_id(),
            execution_id=execution.id,
            namespace=flow.namespace,
            flow_id=flow.id,
            task_id=spec.id,
            state=State.new(),
        )
        execution = execution.with_task_run(self.task_run)
        self.logs: list[tuple[LogLevel, str]] = []
        self.context = TaskContext(
            flow=flow,
            execution=execution,
            task=spec,
            run=self.task_run,
            renderer=RENDERER,
            variables=build_context(flow, execution, spec, self.task_run),
            emit=lambda level, message: self.logs.append((level, message)),
            storage=storage,
        )

    async def request(self) -> dict[str, Any]:
        return dict(await http.request(self.context) or {})

    async def download(self) -> dict[str, Any]:
        return dict(await http.download(self.context) or {})

    def messages(self, level: LogLevel) -> list[str]:
        return [message for logged, message in self.logs if logged is level]


async def request(storage: Storage | None = None, **props: Any) -> tuple[dict[str, Any], Run]:
    run = Run(REQUEST, storage, **props)
    return await run.request(), run


async def echo(**props: Any) -> dict[str, Any]:
    outputs, _ = await request(**props)
    assert outputs["code"] == 200
    echoed: dict[str, Any] = json.loads(outputs["body"])
    return echoed


@contextmanager
def refused_port() -> Iterator[int]:
    """A port bound on 127.0.0.1 that does not listen: connecting to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


# ---------------------------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------------------------


def test_handlers_are_registered_under_kestra_type_names() -> None:
    assert {REQUEST: http.request, DOWNLOAD: http.download} == http.HANDLERS


async def test_get_returns_code_headers_as_lists_and_text_body(server: str) -> None:
    outputs, run = await request(uri=f"{server}/json")
    assert outputs["code"] == 200
    assert outputs["uri"] == f"{server}/json"
    assert json.loads(outputs["body"]) == {"hello": "wörld"}
    assert outputs["headers"]["x-multi"] == ["one", "two"]
    assert outputs["headers"]["content-type"] == ["application/json; charset=utf-8"]
    [line] = run.messages(LogLevel.INFO)
    assert line.startswith(f"GET {server}/json -> 200 (")
    assert "ms)" in line


async def test_post_map_body_is_sent_as_compact_json(server: str) -> None:
    got = await echo(uri=f"{server}/echo", method="post", body={"name": "Kestra Pen", "tags": [1, 2]})
    assert got["method"] == "POST"
    assert got["body"] == '{"name":"Kestra Pen","tags":[1,2]}'
    assert got["headers"]["content-type"] == "application/json; charset=UTF-8"


async def test_text_body_is_rendered_and_sent_with_its_content_type(server: str) -> None:
    got = await echo(uri=f"{server}/echo", method="PUT", body="flow {{ flow.id }}", contentType="text/plain")
    assert (got["method"], got["body"]) == ("PUT", "flow http_flow")
    assert got["headers"]["content-type"] == "text/plain; charset=UTF-8"


async def test_form_data_is_url_encoded(server: str) -> None:
    got = await echo(uri=f"{server}/echo", method="POST", formData={"user": "Jane Doe", "city": "Zürich"})
    assert got["body"] == "user=Jane+Doe&city=Z%C3%BCrich"
    assert got["headers"]["content-type"] == "application/x-www-form-urlencoded; charset=UTF-8"


async def test_multipart_form_sends_text_fields_and_stored_files(server: str, storage: Storage) -> None:
    stored = storage.put_bytes(
        "kestra:///company/team/other/executions/e1/tasks/t/r", "data.csv", b"a,b\n1,2\n"
    )
    got = await echo(
        storage=storage,
        uri=f"{server}/echo",
        method="POST",
        contentType="multipart/form-data",
        formData={"user": "John", "file": stored, "renamed": {"name": "custom.txt", "content": stored}},
    )
    assert got["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    body = got["body"]
    assert 'name="user"\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nJohn\r\n' in body
    assert 'name="file"; filename="data.csv"' in body
    assert 'name="renamed"; filename="custom.txt"' in body
    assert body.count("a,b\n1,2\n") == 2


async def test_multipart_with_a_missing_stored_file_fails_before_sending(
    server: str, storage: Storage
) -> None:
    with pytest.raises(TaskFailure, match=r"`formData.file`"):
        await request(
            storage=storage,
            uri=f"{server}/echo",
            method="POST",
            contentType="multipart/form-data",
            formData={"file": "kestra:///company/team/nothing/here.txt"},
        )


async def test_headers_are_rendered_sent_and_replace_defaults(server: str) -> None:
    got = await echo(
        uri=f"{server}/echo", headers={"User-Agent": "my-agent", "X-Namespace": "{{ flow.namespace }}"}
    )
    assert got["headers"]["user-agent"] == "my-agent"
    assert got["headers"]["x-namespace"] == "company.team"
    # Kestra sends its default content type even without a body.
    assert got["headers"]["content-type"] == "application/json"


async def test_header_value_with_a_line_break_is_refused(server: str) -> None:
    with pytest.raises(TaskFailure, match="line break"):
        await request(uri=f"{server}/echo", headers={"X-Bad": "a\r\nInjected: yes"})


@pytest.mark.parametrize(
    "options",
    [
        {"auth": {"type": "BASIC", "username": "user", "password": "s3cret"}},
        {"basicAuthUser": "user", "basicAuthPassword": "s3cret"},
    ],
    ids=["auth", "legacy"],
)
async def test_basic_auth(server: str, options: dict[str, Any]) -> None:
    outputs, _ = await request(uri=f"{server}/auth", options=options)
    assert (outputs["code"], outputs["body"]) == (200, "welcome")


async def test_basic_auth_with_a_wrong_password_fails_with_401(server: str) -> None:
    options = {"auth": {"type": "BASIC", "username": "user", "password": "wrong"}}
    with pytest.raises(TaskFailure, match=r"response code '401'"):
        await request(uri=f"{server}/auth", options=options)


async def test_bearer_auth_wins_over_an_authorization_header(server: str) -> None:
    got = await echo(
        uri=f"{server}/echo",
        headers={"Authorization": "Basic old"},
        options={"auth": {"type": "BEARER", "token": "t0k3n"}},
    )
    assert got["headers"]["authorization"] == "Bearer t0k3n"


async def test_redirects_are_followed_by_default(server: str) -> None:
    outputs, run = await request(uri=f"{server}/redirect")
    assert outputs["code"] == 200
    assert json.loads(outputs["body"])["path"] == "/echo"
    assert "1 redirect(s) to" in run.messages(LogLevel.INFO)[0]


async def test_redirects_are_returned_when_not_followed(server: str) -> None:
    outputs, _ = await request(uri=f"{server}/redirect", options={"followRedirects": False})
    assert outputs["code"] == 302
    assert outputs["headers"]["location"] == ["/echo"]


async def test_error_status_fails_with_kestra_message_the_url_and_the_body(server: str) -> None:
    run = Run(REQUEST, None, uri=f"{server}/status/404")
    with pytest.raises(TaskFailure) as failure:
        await run.request()
    [line] = run.messages(LogLevel.INFO)
    assert line.startswith(f"GET {server}/status/404 -> 404 (")
    message = str(failure.value)
    assert message.startswith("Failed http request with response code '404'")
    assert f"GET {server}/status/404" in message
    assert message.endswith("and body:\nerror page 404")


@pytest.mark.parametrize(
    "props", [{"allowFailed": True}, {"options": {"allowFailed": "true"}}], ids=["top-level", "options"]
)
async def test_allow_failed_keeps_the_error_response(server: str, props: dict[str, Any]) -> None:
    outputs, _ = await request(uri=f"{server}/status/500", **props)
    assert (outputs["code"], outputs["body"]) == (500, "error page 500")


async def test_allowed_response_codes_refuse_any_other_code(server: str) -> None:
    with pytest.raises(TaskFailure, match=r"response code '200'"):
        await request(uri=f"{server}/json", options={"allowedResponseCodes": [201]})
    outputs, _ = await request(uri=f"{server}/json", options={"allowedResponseCodes": [200, 201]})
    assert outputs["code"] == 200


@pytest.mark.parametrize(
    "options",
    [{"timeout": {"readIdleTimeout": "PT0.2S"}}, {"readTimeout": "PT0.2S"}],
    ids=["timeout", "legacy"],
)
async def test_read_timeout_fails_the_task(server: str, options: dict[str, Any]) -> None:
    # /slow answers after a second: failing with this message means the 0.2 s limit cut the wait.
    with pytest.raises(TaskFailure, match=r"sent nothing for 0.2 s") as failure:
        await request(uri=f"{server}/slow", options=options)
    assert f"GET {server}/slow" in str(failure.value)


async def test_connection_refused_fails_with_the_url_and_the_reason() -> None:
    with refused_port() as port:
        with pytest.raises(TaskFailure, match=r"cannot connect") as failure:
            await request(uri=f"http://127.0.0.1:{port}/anything")
        assert f"GET http://127.0.0.1:{port}/anything" in str(failure.value)


@pytest.mark.parametrize("uri", ["ftp://127.0.0.1/file", "not a url", ""])
async def test_an_invalid_uri_fails_clearly(uri: str) -> None:
    with pytest.raises(TaskFailure, match=r"`uri`"):
        await request(uri=uri)


async def test_password_in_the_url_is_not_shown(server: str) -> None:
    with pytest.raises(TaskFailure) as failure:
        await request(uri=server.replace("http://", "http://bob:hunter2@") + "/status/403")
    assert "hunter2" not in str(failure.value)
    assert "bob:***@" in str(failure.value)


async def test_bad_option_values_fail_clearly(server: str) -> None:
    with pytest.raises(TaskFailure, match=r"`options.timeout.connectTimeout`"):
        await request(uri=f"{server}/json", options={"timeout": {"connectTimeout": "{{ 'soon' }}"}})
    with pytest.raises(TaskFailure, match=r"`options.followRedirects` must be true or false"):
        await request(uri=f"{server}/json", options={"followRedirects": "maybe"})
    with pytest.raises(TaskFailure, match=r"`method`"):
        await request(uri=f"{server}/json", method="GET ME")


async def test_body_over_max_content_length_is_refused(server: str) -> None:
    with pytest.raises(TaskFailure, match=r"maxContentLength.*Download"):
        await request(uri=f"{server}/big", options={"maxContentLength": 1000})


async def test_http_proxy_receives_the_absolute_url(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    got = await echo(
        uri=f"{server}/echo", options={"proxy": {"type": "HTTP", "address": "127.0.0.1", "port": port}}
    )
    assert got["path"] == f"{server}/echo"


async def test_encrypt_body_and_unknown_options_are_accepted_with_a_warning(server: str) -> None:
    outputs, run = await request(uri=f"{server}/json", encryptBody=True, options={"retry": {"maxAttempt": 2}})
    assert outputs["code"] == 200
    warnings = run.messages(LogLevel.WARN)
    assert any("encryptBody" in line for line in warnings)
    assert any("options.retry" in line for line in warnings)


async def test_request_headers_are_logged_when_asked(server: str) -> None:
    _, run = await request(uri=f"{server}/json", options={"logs": ["REQUEST_HEADERS", "RESPONSE_HEADERS"]})
    lines = run.messages(LogLevel.INFO)
    assert any(line.startswith("Request headers:\nUser-Agent: Tiercel") for line in lines)
    assert any("x-multi: two" in line for line in lines)


# ---------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------


async def test_download_stores_the_body_in_the_task_run_folder(server: str, storage: Storage) -> None:
    run = Run(DOWNLOAD, storage, uri=f"{server}/files/report.csv")
    outputs = await run.download()
    uri = outputs["uri"]
    assert uri.startswith("kestra:///")
    assert uri.endswith(f"/tasks/call/{run.task_run.id}/report.csv")
    assert storage.read_bytes(uri) == REPORT
    assert (outputs["code"], outputs["length"]) == (200, len(REPORT))
    assert outputs["headers"]["content-type"] == ["text/csv"]
    assert f"-> 200 ({len(REPORT)} bytes in" in run.messages(LogLevel.INFO)[0]


@pytest.mark.parametrize(
    ("path", "name"), [("/disposition", "evil_name.txt"), ("/disposition-utf8", "résumé.pdf")]
)
async def test_download_takes_a_sanitised_name_from_content_disposition(
    server: str, storage: Storage, path: str, name: str
) -> None:
    outputs = await Run(DOWNLOAD, storage, uri=f"{server}{path}").download()
    assert unquote(outputs["uri"].rsplit("/", 1)[1]) == name
    assert storage.path(outputs["uri"]).is_file()


async def test_download_of_an_empty_body_fails_by_default(
    server: str, storage: Storage, tmp_path: Path
) -> None:
    with pytest.raises(TaskFailure, match=r"No response from server.*failOnEmptyResponse"):
        await Run(DOWNLOAD, storage, uri=f"{server}/empty").download()
    assert files_under(tmp_path / "storage") == []


async def test_download_of_an_empty_body_is_kept_when_allowed(server: str, storage: Storage) -> None:
    run = Run(DOWNLOAD, storage, uri=f"{server}/empty", failOnEmptyResponse=False)
    outputs = await run.download()
    assert outputs["length"] == 0
    assert storage.read_bytes(outputs["uri"]) == b""
    assert any("is empty" in line for line in run.messages(LogLevel.WARN))


async def test_download_streams_a_large_body_to_the_storage(server: str, storage: Storage) -> None:
    expected = hashlib.sha256()
    for index in range(BIG_CHUNKS):
        expected.update(big_chunk(index))
    run = Run(DOWNLOAD, storage, uri=f"{server}/big")
    tracemalloc.start()
    try:
        outputs = await run.download()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = BIG_CHUNKS * 64 * 1024
    assert outputs["length"] == size
    # The body is never held whole: the peak stays far below its 20 MiB.
    assert peak < size / 4
    digest = hashlib.sha256()
    with storage.path(outputs["uri"]).open("rb") as stored:
        for block in iter(lambda: stored.read(1 << 20), b""):
            digest.update(block)
    assert digest.hexdigest() == expected.hexdigest()
    assert outputs["uri"].endswith("/big")


async def test_download_over_the_size_cap_is_refused_and_leaves_nothing(
    server: str, storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(http_response, "MAX_DOWNLOAD_BYTES", 1024 * 1024)
    with pytest.raises(TaskFailure, match=r"downloads are limited to 1.0 MiB"):
        await Run(DOWNLOAD, storage, uri=f"{server}/big").download()
    assert list(scratch.iterdir()) == []
    assert files_under(tmp_path / "storage") == []


async def test_download_of_a_truncated_body_fails(server: str, storage: Storage) -> None:
    with pytest.raises(TaskFailure, match=rf"GET {server}/short"):
        await Run(DOWNLOAD, storage, uri=f"{server}/short").download()


async def test_download_of_an_error_status_fails_unless_allowed(
    server: str, storage: Storage, tmp_path: Path
) -> None:
    with pytest.raises(TaskFailure, match=r"response code '500'"):
        await Run(DOWNLOAD, storage, uri=f"{server}/status/500").download()
    assert files_under(tmp_path / "storage") == []
    outputs = await Run(
        DOWNLOAD, storage, uri=f"{server}/status/500", options={"allowFailed": True}
    ).download()
    assert outputs["code"] == 500
    assert storage.read_bytes(outputs["uri"]) == b"error page 500"


async def test_download_needs_the_internal_storage(server: str) -> None:
    with pytest.raises(TaskFailure, match="internal storage"):
        await Run(DOWNLOAD, None, uri=f"{server}/files/report.csv").download()


# ---------------------------------------------------------------------------------------------
# Through the engine
# ---------------------------------------------------------------------------------------------


async def test_downloaded_file_is_uploaded_by_the_next_task_and_a_404_fails_the_flow(
    server: str, tmp_path: Path
) -> None:
    source = flow(
        f"""
        tasks:
          - id: fetch
            type: io.kestra.plugin.core.http.Download
            uri: {server}/files/report.csv
          - id: upload
            type: io.kestra.plugin.fs.http.Request
            uri: {server}/echo
            method: POST
            contentType: multipart/form-data
            formData:
              report: "{{{{ outputs.fetch.uri }}}}"
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "{{{{ outputs.upload.code }}}} {{{{ outputs.fetch.length }}}}"
          - id: missing
            type: io.kestra.plugin.core.http.Request
            uri: {server}/status/404
        """
    )
    execution, logs = await run_flow(tmp_path, source)
    assert execution.state.current is StateType.FAILED
    assert one_run(execution, "fetch").state.current is StateType.SUCCESS
    uploaded = json.loads(one_run(execution, "upload").outputs["body"])  # type: ignore[index]
    assert 'filename="report.csv"' in uploaded["body"]
    assert REPORT.decode() in uploaded["body"]
    shown = [entry.message for entry in logs if entry.task_id == "show"]
    assert shown == [f"200 {len(REPORT)}"]
    errors = [entry.message for entry in logs if entry.task_id == "missing" and entry.level is LogLevel.ERROR]
    assert any(message.startswith("Failed http request with response code '404'") for message in errors)
