"""The notifications family (io.kestra.plugin.notifications): Kestra's documented examples run through
a real engine against a local HTTP server standing for the chat services' webhooks, and a local SMTP
server (aiosmtpd) with a login, plain and with STARTTLS."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tiercel.engine.engine import Engine
from tiercel.engine.model import Execution, StateType

from ..waiting import until
from .helpers import logs_of, messages, one_run, running_engine

pytestmark = pytest.mark.asyncio

# The alert text of Kestra's examples.
ALERT = "Failure alert for flow {{ flow.namespace }}.{{ flow.id }} with ID {{ execution.id }}"


class Hooks(ThreadingHTTPServer):
    """A webhook receiver: what each POST sent, and the status it answers."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.received: list[tuple[str, dict[str, str], Any]] = []
        self.status = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Hook(BaseHTTPRequestHandler):
    server: Hooks

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def run(engine: Engine, flow_id: str, inputs: dict[str, Any] | None = None) -> Execution:
    execution_id = await engine.trigger("company.team", flow_id, inputs or {}, [], local_files=True)
    return await asyncio.wait_for(engine.wait(execution_id), 30)


async def test_slack_alert_on_a_failed_flow_as_kestra_documents_it(tmp_path: Path, hooks: Hooks) -> None:
    source = f"""
id: unreliable_flow
namespace: company.team

tasks:
  - id: fail
    type: io.kestra.plugin.scripts.shell.Commands
    runner: PROCESS
    commands:
      - exit 1

errors:
  - id: alert_on_failure
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{hooks.url}/services/xzy/xyz/xyz"
    payload: |
      {{
        "text": "{ALERT}"
      }}
"""
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "unreliable_flow")
        assert execution.state.current is StateType.FAILED
        assert one_run(execution, "alert_on_failure").state.current is StateType.SUCCESS
    [(path, headers, payload)] = hooks.received
    assert path == "/services/xzy/xyz/xyz" and headers["Content-Type"] == "application/json"
    assert payload == {"text": f"Failure alert for flow company.team.unreliable_flow with ID {execution.id}"}


async def test_slack_message_text_and_the_other_services(tmp_path: Path, hooks: Hooks) -> None:
    source = f"""
id: chatty
namespace: company.team
tasks:
  - id: markdown
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{hooks.url}/slack"
    messageText: "**Done**: see [the run](https://example.com/{{{{ execution.id }}}}) __now__"
  - id: json_text
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{hooks.url}/slack"
    messageText: '{{"blocks": []}}'
  - id: teams
    type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook
    url: "{hooks.url}/teams"
    payload: '{{"text": "Teams says {{{{ flow.id }}}}"}}'
  - id: discord
    type: io.kestra.plugin.notifications.discord.DiscordIncomingWebhook
    url: "{hooks.url}/discord"
    payload: '{{"content": "Discord says hi"}}'
    options:
      headers:
        X-Token: secret-123
  - id: chat
    type: io.kestra.plugin.notifications.google.GoogleChatIncomingWebhook
    url: "{hooks.url}/chat"
    payload: '{{"text": "Chat says hi"}}'
  - id: zulip
    type: io.kestra.plugin.notifications.zulip.ZulipIncomingWebhook
    url: "{hooks.url}/zulip"
    payload: '{{"text": "Hello from the workflow {{{{ flow.id }}}}"}}'
  - id: whatsapp
    type: io.kestra.plugin.notifications.whatsapp.WhatsAppIncomingWebhook
    url: "{hooks.url}/whatsapp"
    payload: '{{"profileName": "MyName", "whatsAppIds": ["IdNo1"], "from": 380999999999}}'
  - id: squadcast
    type: io.kestra.plugin.notifications.squadcast.SquadcastIncomingWebhook
    url: "{hooks.url}/squadcast"
    payload: '{{"message": "Squadcast says hi", "status": "trigger"}}'
  - id: x
    type: io.kestra.plugin.notifications.x.XIncomingWebhook
    url: "{hooks.url}/x"
    payload: '{{"text": "X says hi"}}'
"""
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "chatty")
        assert execution.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
    got = {(path, json.dumps(payload, sort_keys=True)) for path, _, payload in hooks.received}
    assert got == {
        ("/slack", json.dumps({"text": f"*Done*: see <https://example.com/{execution.id}|the run> _now_"})),
        ("/slack", json.dumps({"blocks": []})),
        ("/teams", json.dumps({"text": "Teams says chatty"})),
        ("/discord", json.dumps({"content": "Discord says hi"})),
        ("/chat", json.dumps({"text": "Chat says hi"})),
        ("/zulip", json.dumps({"text": "Hello from the workflow chatty"})),
        ("/whatsapp", json.dumps({"from": 380999999999, "profileName": "MyName", "whatsAppIds": ["IdNo1"]})),
        ("/squadcast", json.dumps({"message": "Squadcast says hi", "status": "trigger"})),
        ("/x", json.dumps({"text": "X says hi"})),
    }
    assert next(h for path, h, _ in hooks.received if path == "/discord")["X-Token"] == "secret-123"


async def test_a_webhook_that_refuses_fails_the_task_with_its_answer(tmp_path: Path, hooks: Hooks) -> None:
    hooks.status = 403
    source = f"""
id: refused
namespace: company.team
tasks:
  - id: slack
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "{hooks.url}/slack"
    payload: '{{"text": "hi"}}'
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: not reached
"""
    async with running_engine(tmp_path, source) as engine:
        execution = await run(engine, "refused")
        assert execution.state.current is StateType.FAILED
        assert "The webhook answered 403 Forbidden: ok" in messages(await logs_of(engine, execution.id))


def free_port() -> int:
    """A port free now (aiosmtpd's controller checks its server by connecting to the port it is given)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """An SMTP server taking a login (user `kestra`, password `s3cret`), keeping what it receives."""

    def __init__(self, tls: Any = None) -> None:
        self.received: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                mailbox.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                parsed = message_from_bytes(envelope.content, policy=policy.default)
                assert isinstance(parsed, EmailMessage)
                mailbox.received.append(parsed)
                return "250 OK"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"kestra", b"s3cret")
            return AuthResult(success=ok, handled=False)

        self.controller = Controller(
            Handler(), hostname="127.0.0.1", port=free_port(), authenticator=authenticate,
            auth_require_tls=tls is not None, tls_context=tls, require_starttls=tls is not None,
        )  # fmt: skip

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return int(self.controller.port)


def self_signed(folder: Path) -> Any:
    import ssl

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def mail_flow(port: int, strategy: str, password: str = "s3cret", extra: str = "") -> str:
    return f"""
id: mailer
namespace: company.team
inputs:
  - id: report
    type: FILE
tasks:
  - id: fail
    type: io.kestra.plugin.scripts.shell.Commands
    runner: PROCESS
    commands:
      - exit 1
errors:
  - id: send_email
    type: io.kestra.plugin.notifications.mail.MailSend
    from: hello@kestra.io
    to: ops@example.com, lead@example.com
    cc: audit@example.com
    username: kestra
    password: {password}
    host: 127.0.0.1
    port: {port}
    transportStrategy: {strategy}
    subject: "Kestra workflow failed for the flow {{{{flow.id}}}} in the namespace {{{{flow.namespace}}}}"
    htmlTextContent: "{ALERT}"
    attachments:
      - uri: "{{{{ inputs.report }}}}"
        name: report.csv
        contentType: text/csv
{extra}"""


async def test_mail_on_a_failed_flow_with_a_login_and_an_attachment(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    with Mailbox() as mailbox:
        async with running_engine(tmp_path, mail_flow(mailbox.port, "SMTP")) as engine:
            execution = await run(engine, "mailer", {"report": str(report)})
            sent = one_run(execution, "send_email")
            assert sent.state.current is StateType.SUCCESS, messages(await logs_of(engine, execution.id))
    [message] = mailbox.received
    assert mailbox.envelopes == [
        ("hello@kestra.io", ["ops@example.com", "lead@example.com", "audit@example.com"])
    ]
    assert message["Subject"] == "Kestra workflow failed for the flow mailer in the namespace company.team"
    html = message.get_body(preferencelist=("html",))
    assert html is not None and f"with ID {execution.id}" in html.get_content()
    [attached] = list(message.iter_attachments())
    assert attached.get_filename() == "report.csv" and attached.get_content_type() == "text/csv"
    assert attached.get_content() == "a,b\n1,2\n"


async def test_mail_over_starttls_and_a_refused_login(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    report.write_text("x\n")
    with Mailbox(tls=self_signed(tmp_path)) as mailbox:
        unverified = "    verifyServerIdentity: false\n"
        async with running_engine(tmp_path, mail_flow(mailbox.port, "SMTP_TLS", extra=unverified)) as engine:
            execution = await run(engine, "mailer", {"report": str(report)})
            assert one_run(execution, "send_email").state.current is StateType.SUCCESS
        assert len(mailbox.received) == 1
        wrong = mail_flow(mailbox.port, "SMTP_TLS", password="nope", extra=unverified)
        async with running_engine(tmp_path / "wrong", wrong) as engine:
            execution = await run(engine, "mailer", {"report": str(report)})
            assert one_run(execution, "send_email").state.current is StateType.FAILED
            said = messages(await logs_of(engine, execution.id))
            assert any("Cannot send the mail through 127.0.0.1" in line and "535" in line for line in said)
        checked = mail_flow(mailbox.port, "SMTP_TLS")  # the self-signed certificate is refused
        async with running_engine(tmp_path / "checked", checked) as engine:
            execution = await run(engine, "mailer", {"report": str(report)})
            said = messages(await logs_of(engine, execution.id))
            assert any("CERTIFICATE_VERIFY_FAILED" in line for line in said)
        assert len(mailbox.received) == 1


async def test_execution_summaries_from_a_flow_trigger_as_kestra_documents_it(
    tmp_path: Path, hooks: Hooks
) -> None:
    """Kestra's SlackExecution example: a flow started by a Flow trigger when another fails sends
    that execution's summary; the other services' summaries and a mailed one go out beside it."""
    failing = """
id: nightly
namespace: prod.data
tasks:
  - id: load
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: disk on fire
"""
    with Mailbox() as mailbox:
        alert = f"""
id: failure_alert
namespace: company.team

tasks:
  - id: send_alert
    type: io.kestra.plugin.notifications.slack.SlackExecution
    url: "{hooks.url}/slack"
    executionId: "{{{{trigger.executionId}}}}"
    channel: "#alerts"
    customMessage: Somebody look at this
    customFields:
      Env: prod
  - id: teams
    type: io.kestra.plugin.notifications.teams.TeamsExecution
    url: "{hooks.url}/teams"
    executionId: "{{{{trigger.executionId}}}}"
  - id: discord
    type: io.kestra.plugin.notifications.discord.DiscordExecution
    url: "{hooks.url}/discord"
    executionId: "{{{{trigger.executionId}}}}"
    username: kestra
  - id: chat
    type: io.kestra.plugin.notifications.google.GoogleChatExecution
    url: "{hooks.url}/chat"
    executionId: "{{{{trigger.executionId}}}}"
  - id: mail
    type: io.kestra.plugin.notifications.mail.MailExecution
    from: kestra@example.com
    to: oncall@example.com
    host: 127.0.0.1
    port: {mailbox.port}
    transportStrategy: SMTP
    username: kestra
    password: s3cret
    executionId: "{{{{trigger.executionId}}}}"

triggers:
  - id: failed_prod_workflows
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionStatus
        in:
          - FAILED
          - WARNING
      - type: io.kestra.plugin.core.condition.ExecutionNamespace
        namespace: prod
        prefix: true
"""
        async with running_engine(tmp_path, failing, alert) as engine:
            failed_id = await engine.trigger("prod.data", "nightly", {}, [])
            await asyncio.wait_for(engine.wait(failed_id), 30)
            await until(lambda: len(hooks.received) == 4 and len(mailbox.received) == 1)
    by_path = {path: payload for path, _, payload in hooks.received}
    title = f"Execution {failed_id} of prod.data.nightly ended FAILED"
    slack = by_path["/slack"]
    assert slack["text"] == f"{title}\nSomebody look at this" and slack["channel"] == "#alerts"
    facts = {field["title"]: field["value"] for field in slack["attachments"][0]["fields"]}
    assert facts["Failed tasks"] == "load" and facts["Env"] == "prod" and facts["State"] == "FAILED"
    assert by_path["/teams"]["summary"] == title
    assert by_path["/discord"]["embeds"][0]["title"] == title and by_path["/discord"]["username"] == "kestra"
    assert by_path["/chat"]["text"].startswith(title)
    [mail] = mailbox.received
    assert mail["Subject"] == title
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and "<th align=left>Failed tasks</th><td>load</td>" in html.get_content()
