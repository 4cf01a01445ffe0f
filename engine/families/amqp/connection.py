"""What every AMQP task shares: the broker its properties name (Kestra's host, port, username,
password and virtualHost, or the deprecated `url`), the connection, and property values.

aio_pika connects (imported when a task runs); the tasks then speak AMQP on the aiormq channel under
it, which keeps message properties as they travel (absent stays absent, as with Java's client). A
refused or silent broker fails the task within `CONNECT_TIMEOUT`, naming the address, never the
password.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from tiercel.engine.plugin import TaskContext, TaskFailure

if TYPE_CHECKING:
    import aiormq.abc

PACKAGE = "io.kestra.plugin.amqp"
CONNECTION_PROPERTIES = frozenset({"url", "host", "port", "username", "password", "virtualHost"})
CONNECT_TIMEOUT = 10.0
# A declaration, a bind, a cancel: answered at once by a healthy broker.
OPERATION_TIMEOUT = 30.0
_CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Broker:
    """Where to connect, as Kestra's AbstractAmqpConnection reads it."""

    host: str
    port: int
    username: str
    password: str
    virtual_host: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Broker:
        """The broker of rendered settings; the deprecated `url` (amqp://user:pass@host:port/vhost,
        the path kept whole as the virtual host, as Kestra keeps it) or `host`, not both.

        Raises:
            TaskFailure: Both or neither, or a malformed value.
        """
        url, host = settings.get("url"), settings.get("host")
        port: Any = settings.get("port")
        username, password = settings.get("username"), settings.get("password")
        virtual_host = settings.get("virtualHost")
        if url and host:
            raise TaskFailure("Cannot define both `url` and `host`")
        if url:
            try:
                parts = urlsplit(str(url).strip())
                found_port = parts.port
            except ValueError:
                raise TaskFailure(
                    "`url` is not an AMQP URL such as amqp://user:password@host:5672/"
                ) from None
            host = parts.hostname
            port = found_port if found_port is not None else port
            if parts.username is not None:
                username, password = unquote(parts.username), unquote(parts.password or "")
            if parts.path:
                virtual_host = unquote(parts.path)
        if not host:
            raise TaskFailure("`host` is required: the broker's host name or address")
        try:
            number = int(str(port).strip()) if port is not None else 5672
        except ValueError:
            number = -1
        if not 0 < number < 65536:
            raise TaskFailure(f"`port` must be a port number, not `{port}`")
        return cls(
            host=str(host),
            port=number,
            username="guest" if username is None else str(username),
            password="guest" if password is None else str(password),
            virtual_host="/" if virtual_host is None else str(virtual_host),
        )


def broker_failure(broker: Broker, error: BaseException) -> TaskFailure:
    """An aio_pika/aiormq error as a task failure naming the broker."""
    text = str(error).strip() or type(error).__name__
    if type(error).__name__ == "InvalidFrameError" and "Connection.Close" in text:
        text = (
            f"the broker closed the connection while opening it: the virtual host `{broker.virtual_host}` "
            "may not exist, or the user may not reach it"
        )
    return TaskFailure(f"AMQP broker at {broker.address}: {text}")


async def _closed_because(raw: aiormq.abc.AbstractChannel | None, error: BaseException) -> BaseException:
    """Why the broker closed the channel (a publish to a missing exchange ...), when a later call
    found it closed and says only that: the channel's own closing tells, once it has settled."""
    if raw is None or type(error).__name__ != "ChannelInvalidStateError":
        return error
    closed = raw.closing
    with contextlib.suppress(Exception):
        await asyncio.wait({closed}, timeout=1.0)
    if closed.done() and not closed.cancelled() and closed.exception() is not None:
        return closed.exception() or error
    closed.cancel()
    return error


@asynccontextmanager
async def channel(broker: Broker) -> AsyncIterator[aiormq.abc.AbstractChannel]:
    """An AMQP channel on a connection of its own, both closed on the way out (within a few seconds
    even when the broker has gone silent); the client's errors become task failures naming the broker."""
    import aio_pika
    import aiormq.exceptions

    errors = (aiormq.exceptions.AMQPError, OSError, asyncio.TimeoutError)
    try:
        connection = await aio_pika.connect(
            host=broker.host,
            port=broker.port,
            login=broker.username,
            password=broker.password,
            virtualhost=broker.virtual_host,
            timeout=CONNECT_TIMEOUT,
            client_properties={"connection_name": "tiercel"},
        )
    except errors as error:
        raise broker_failure(broker, error) from None
    raw: aiormq.abc.AbstractChannel | None = None
    try:
        opened = await connection.channel(publisher_confirms=False)
        raw = await opened.get_underlay_channel()
        yield raw
    except (*errors, aiormq.exceptions.ChannelInvalidStateError) as error:
        raise broker_failure(broker, await _closed_because(raw, error)) from None
    finally:
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            await asyncio.wait_for(connection.close(), _CLOSE_TIMEOUT)


# -- property values -----------------------------------------------------------------------------------------


def required_text(context: TaskContext, name: str) -> str:
    value = context.prop(name)
    if value is None or value == "":
        raise TaskFailure(f"`{name}` is required")
    return str(value)


def java_duration(milliseconds: int) -> str:
    """Java's `Duration.toString` of a number of milliseconds (PT1M, PT1.5S, PT25H1M1S)."""
    hours, rest = divmod(max(0, milliseconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or millis or (not hours and not minutes):
        fraction = f".{millis:03d}".rstrip("0") if millis else ""
        text += f"{secs}{fraction}S"
    return text


def switch(name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise TaskFailure(f"`{name}` must be true or false, got `{value}`")
    return text == "true"


def arguments(context: TaskContext) -> dict[str, Any]:
    value = context.prop("args") or {}
    if not isinstance(value, Mapping):
        raise TaskFailure("`args` must be a map of AMQP arguments (x-message-ttl ...)")
    return {str(key): item for key, item in value.items()}
