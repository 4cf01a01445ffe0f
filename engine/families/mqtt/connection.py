"""An MQTT connection made from Kestra's properties, and the small property readers the tasks share.

`server` is a URI: tcp://host:port (1883 by default) or ssl://host:port (8883), as Paho takes it;
`mqttVersion` V5 (the default) or V3 (MQTT 3.1.1); `clientId`, `username`, `password`,
`connectionTimeout`, `authMethod` (MQTT 5 extended authentication), and for ssl:// `crt` (the CA
certificate: PEM text, a kestra:// URI or a local path) and `httpsHostnameVerificationEnabled`.
aiomqtt is imported where a connection is opened, never when the family loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tiercel.engine.plugin import TaskContext, TaskFailure, seconds

if TYPE_CHECKING:
    from aiomqtt import Client

CONNECTION = frozenset(
    {
        "server",
        "mqttVersion",
        "clientId",
        "connectionTimeout",
        "httpsHostnameVerificationEnabled",
        "authMethod",
        "username",
        "password",
        "crt",
    }
)
# Paho's default connection timeout (Kestra's when `connectionTimeout` is not set).
DEFAULT_CONNECT_TIMEOUT = 30.0


def flag(settings: Mapping[str, Any], name: str, default: bool) -> bool:
    value = settings.get(name, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise TaskFailure(f"`{name}` must be true or false, not `{value}`")
    return text == "true"


def choice(settings: Mapping[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = str(settings.get(name, default)).strip().upper()
    if value not in allowed:
        raise TaskFailure(f"`{name}` `{settings.get(name)}` is not one of {', '.join(allowed)}")
    return value


def _endpoint(server: Any) -> tuple[str, int, bool]:
    """(host, port, TLS) of `server`."""
    text = str(server or "").strip()
    if not text:
        raise TaskFailure("`server` is required (tcp://host:1883 or ssl://host:8883)")
    parts = urlsplit(text if "://" in text else f"tcp://{text}")
    secure = parts.scheme.lower() in ("ssl", "mqtts", "tls")
    if parts.scheme.lower() not in ("tcp", "mqtt", "ssl", "mqtts", "tls") or not parts.hostname:
        raise TaskFailure(f"`server` `{text}` must be tcp://host:port or ssl://host:port")
    try:
        port = parts.port or (8883 if secure else 1883)
    except ValueError:
        raise TaskFailure(f"`server` `{text}` has a bad port") from None
    return parts.hostname, port, secure


def _tls(context: TaskContext | None, settings: Mapping[str, Any]) -> ssl.SSLContext:
    """A client TLS context trusting `crt` when given (else the system's authorities)."""
    tls = ssl.create_default_context()
    crt = str(settings.get("crt") or "").strip()
    if crt:
        if crt.startswith("kestra://"):
            if context is None:
                raise TaskFailure("`crt`: a kestra:// URI needs a task's storage")
            pem = context.stored_file(crt).read_text()
        elif crt.startswith("-----BEGIN "):
            pem = crt
        elif Path(crt).is_file():
            pem = Path(crt).read_text()
        else:
            raise TaskFailure(
                "`crt` is not a kestra:// URI, an existing file or PEM certificate text: " + crt[:50]
            )
        try:
            tls.load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError) as error:
            raise TaskFailure(f"`crt` is not a valid PEM certificate: {error}") from None
    if not flag(settings, "httpsHostnameVerificationEnabled", True):
        tls.check_hostname = False
    return tls


def where(settings: Mapping[str, Any]) -> str:
    host, port, _ = _endpoint(settings.get("server"))
    return f"MQTT broker at {host}:{port}"


@asynccontextmanager
async def connected(settings: Mapping[str, Any], context: TaskContext | None = None) -> AsyncIterator[Client]:
    """A connected aiomqtt client, disconnected on leaving; a broker that cannot be reached, or that
    refuses the connection, fails at once with a failure naming it."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    host, port, secure = _endpoint(settings.get("server"))
    version = choice(settings, "mqttVersion", "V5", ("V5", "V3"))
    given = settings.get("connectionTimeout")
    timeout = seconds("connectionTimeout", given, short=True) or DEFAULT_CONNECT_TIMEOUT
    properties = None
    if version == "V5" and settings.get("authMethod") is not None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.AuthenticationMethod = str(settings["authMethod"])
    client = aiomqtt.Client(
        host,
        port,
        identifier=str(settings["clientId"]) if settings.get("clientId") is not None else None,
        username=str(settings["username"]) if settings.get("username") is not None else None,
        password=str(settings["password"]) if settings.get("password") is not None else None,
        protocol=aiomqtt.ProtocolVersion.V5 if version == "V5" else aiomqtt.ProtocolVersion.V311,
        timeout=timeout,
        properties=properties,
        tls_context=_tls(context, settings) if secure else None,
    )
    try:
        await asyncio.wait_for(client.__aenter__(), timeout + 1)
    except TimeoutError:
        raise TaskFailure(f"{where(settings)}: no answer within {timeout:g}s") from None
    except Exception as error:
        raise failure(settings, error) from None
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):  # best effort: the work is done, or failed already
            await asyncio.wait_for(client.__aexit__(None, None, None), 5)


def failure(settings: Mapping[str, Any], error: BaseException) -> TaskFailure:
    """A client error as a task failure naming the broker."""
    detail = str(error).strip() or type(error).__name__
    return TaskFailure(f"{where(settings)}: {detail}")
