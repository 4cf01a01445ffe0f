"""`mail.MailSend`: a mail over SMTP, as Kestra sends it (host, port, `transportStrategy` SMTPS by
default, SMTP_TLS with STARTTLS, or plain SMTP; a login when a user name is given).

`to` and `cc` hold addresses separated by commas; the body is `plainTextContent`, `htmlTextContent`
or both (an alternative of the two); `attachments` and `embeddedImages` are lists of
`{uri, name, contentType}` (or that list as JSON text), read from the internal storage, an embedded
image referred to from the HTML as `cid:<name>`. The SMTP conversation runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from collections.abc import Mapping
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from html import escape
from typing import Any

from tiercel.engine.plugin import Kind, LogLevel, TaskContext, TaskFailure, TaskType

from .summary import EXECUTION_PROPERTIES, summary

PACKAGE = "io.kestra.plugin.notifications.mail"
STRATEGIES = ("SMTP", "SMTPS", "SMTP_TLS")
_TRUSTED_HOSTS = (
    "the server's certificate is checked against the system's authorities, "
    "unless verifyServerIdentity is false"
)
_PROPERTIES = (
    *("host", "port", "username", "password", "transportStrategy", "sessionTimeout"),
    *("verifyServerIdentity", "trustedHosts", "from", "to", "cc", "subject"),
    *("htmlTextContent", "plainTextContent", "attachments", "embeddedImages"),
)


def _addresses(value: Any, name: str, required: bool) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    found = [str(item).strip() for item in items if str(item).strip()]
    if required and not found:
        raise TaskFailure(f"`{name}` is required: one address or more, separated by commas")
    return found


def _files(context: TaskContext, name: str) -> list[tuple[str, str, bytes]]:
    """(name, content type, bytes) of each file of an `attachments`-like property."""
    given = context.prop(name)
    if given is None:
        return []
    if isinstance(given, str):
        try:
            given = json.loads(given)
        except json.JSONDecodeError:
            raise TaskFailure(f"`{name}` must be a list of {{uri, name, contentType}}") from None
    if not isinstance(given, list):
        raise TaskFailure(f"`{name}` must be a list of {{uri, name, contentType}}")
    found = []
    for item in given:
        if not isinstance(item, Mapping) or not isinstance(item.get("uri"), str):
            raise TaskFailure(f"`{name}`: each one needs a `uri` (and a `name`)")
        path = context.stored_file(item["uri"])
        found.append(
            (
                str(item.get("name") or path.name),
                str(item.get("contentType") or "application/octet-stream"),
                path.read_bytes(),
            )
        )
    return found


# Lines up to RFC 5322's hard limit: a subject is not folded right after `Subject:`, which some
# readers take as a leading space.
_POLICY = policy.SMTP.clone(max_line_length=998)


def _message(context: TaskContext, written: Mapping[str, str | None] | None = None) -> EmailMessage:
    """The mail of the task's properties; `written` gives the subject and bodies instead (the
    summary of `MailExecution`)."""
    message = EmailMessage(policy=_POLICY)
    sender = context.prop("from")
    if not sender:
        raise TaskFailure("`from` is required")
    message["From"] = str(sender)
    message["To"] = ", ".join(_addresses(context.prop("to"), "to", True))
    cc = _addresses(context.prop("cc"), "cc", False)
    if cc:
        message["Cc"] = ", ".join(cc)
    texts = written or {
        name: context.prop(name) for name in ("subject", "plainTextContent", "htmlTextContent")
    }
    message["Subject"] = str(texts.get("subject") or "")
    message["Message-ID"] = make_msgid(domain="tiercel")
    plain, html = texts.get("plainTextContent"), texts.get("htmlTextContent")
    message.set_content(str(plain) if plain is not None else "")
    if html is not None:
        message.add_alternative(str(html), subtype="html")
        body = message.get_body(preferencelist=("html",))
        assert isinstance(body, EmailMessage)  # the part just added
        for name, kind, data in _files(context, "embeddedImages"):
            main, _, sub = kind.partition("/")
            body.add_related(
                data, maintype=main, subtype=sub or "octet-stream", cid=f"<{name}>", filename=name
            )
    for name, kind, data in _files(context, "attachments"):
        main, _, sub = kind.partition("/")
        message.add_attachment(data, maintype=main, subtype=sub or "octet-stream", filename=name)
    return message


def _tls(context: TaskContext) -> ssl.SSLContext:
    tls = ssl.create_default_context()
    if not context.flag("verifyServerIdentity", True):
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    return tls


def _send(
    message: EmailMessage, host: str, port: int, strategy: str, timeout: float, tls: ssl.SSLContext,
    login: tuple[str, str] | None,
) -> None:  # fmt: skip
    if strategy == "SMTPS":
        client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=tls)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if strategy == "SMTP_TLS":
            client.starttls(context=tls)
        if login is not None:
            client.login(*login)
        client.send_message(message)


async def mail_send(
    context: TaskContext, written: Mapping[str, str | None] | None = None
) -> Mapping[str, Any] | None:
    host = context.prop("host")
    if not host:
        raise TaskFailure("`host` is required: the SMTP server")
    strategy = str(context.prop("transportStrategy", "SMTPS")).upper()
    if strategy not in STRATEGIES:
        raise TaskFailure(f"`transportStrategy` must be one of {', '.join(STRATEGIES)}, not `{strategy}`")
    port = int(str(context.prop("port", 465 if strategy == "SMTPS" else 25)))
    timeout = int(str(context.prop("sessionTimeout", 10000))) / 1000
    user, password = context.prop("username"), context.prop("password")
    login = (str(user), str(password or "")) if user else None
    message = _message(context, written)
    try:
        await asyncio.to_thread(_send, message, str(host), port, strategy, timeout, _tls(context), login)
    except (smtplib.SMTPException, OSError) as error:
        raise TaskFailure(f"Cannot send the mail through {host}:{port} ({strategy}): {error}") from None
    context.log(LogLevel.INFO, f"Mail sent to {message['To']}")
    return None


async def mail_execution(context: TaskContext) -> Mapping[str, Any] | None:
    """The summary of an execution, mailed: the task's `subject` or the summary's title, the facts
    as an HTML table and as text."""
    found = await summary(context)
    rows = "".join(f"<tr><th align=left>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in found.facts)
    note = f"<p>{escape(found.message)}</p>" if found.message else ""
    written = {
        "subject": str(context.prop("subject") or found.title),
        "plainTextContent": "\n".join(found.lines()),
        "htmlTextContent": f"<h3>{escape(found.title)}</h3>{note}<table>{rows}</table>",
    }
    return await mail_send(context, written)


MAIL_TYPES = (
    TaskType(
        f"{PACKAGE}.MailSend",
        Kind.RUNNABLE,
        properties=frozenset(_PROPERTIES),
        required=frozenset({"from", "to", "host"}),
        ignored={"trustedHosts": _TRUSTED_HOSTS},
        handler=mail_send,
    ),
    TaskType(
        f"{PACKAGE}.MailExecution",
        Kind.RUNNABLE,
        properties=frozenset(_PROPERTIES) | EXECUTION_PROPERTIES,
        required=frozenset({"from", "to", "host"}),
        ignored={"trustedHosts": _TRUSTED_HOSTS},
        handler=mail_execution,
    ),
)
