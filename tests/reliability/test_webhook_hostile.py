"""Hostile webhook clients: hundreds of idle or slow connections must not lock out real requests.

`tiercel server` runs as a subprocess; the hostile client is a second process (its own event loop, as
a real attacker would be), and the legitimate client sends one request at a time on a new connection
and measures how long each takes to be answered. The figures are printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.reliability.conftest import EngineProcess, start_server, write_flow

pytestmark = pytest.mark.reliability

IDLE_CONNECTIONS = 300
MEASURE_SECONDS = 6.0
PATH = "/api/v1/executions/webhook/rel.hostile/hooked/hook-key"
REQUEST = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}".encode()
FLOW = """
id: hooked
namespace: rel.hostile
tasks:
  - {id: ok, type: io.kestra.plugin.core.debug.Return, format: ok}
triggers:
  - {id: hook, type: io.kestra.plugin.core.trigger.Webhook, key: hook-key}
"""

# The hostile client: COUNT connections from 127.0.0.1 that send nothing (idle) or a request head
# that never ends (slow), each opened again as soon as the server closes it.
HOSTILE = """
import asyncio, sys

port, count, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

async def hold() -> None:
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        try:
            if mode == "slow":
                writer.write(b"POST /x HTTP/1.1\\r\\n")
            while True:
                try:
                    if not await asyncio.wait_for(reader.read(1024), 1.0):
                        break
                except TimeoutError:
                    if mode == "slow":
                        writer.write(b"X")  # one more byte of a header that never ends
        except OSError:
            pass
        writer.close()

async def main() -> None:
    await asyncio.gather(*(hold() for _ in range(count)))

asyncio.run(main())
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EngineProcess]:
    write_flow(tmp_path / "flows", "hooked.yml", FLOW)
    engine = start_server(tmp_path / "flows", tmp_path / "hostile.db")
    try:
        yield engine
    finally:
        engine.stop()


@contextlib.contextmanager
def hostile(port: int, mode: str) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOSTILE, str(port), str(IDLE_CONNECTIONS), mode],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)  # its connections are open (or refused and opened again)
        yield
    finally:
        proc.kill()
        proc.wait(timeout=10)


def second_loopback_address() -> str:
    """127.0.0.2, a different client address on the same machine (skips where it is not routed)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("127.0.0.2 is not a loopback address here")
    return "127.0.0.2"


async def one_request(port: int, source: str) -> tuple[int | str, float]:
    started = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 10
        )
        writer.write(REQUEST)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return int(head.split()[1]), time.monotonic() - started
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
        return type(error).__name__, time.monotonic() - started
    finally:
        if writer is not None:
            writer.close()


def measure(port: int, source: str, label: str) -> tuple[int, int, float]:
    """Requests one after another for MEASURE_SECONDS: (answered 200, sent, slowest seconds)."""

    async def run() -> list[tuple[int | str, float]]:
        results = []
        deadline = time.monotonic() + MEASURE_SECONDS
        while time.monotonic() < deadline:
            results.append(await one_request(port, source))
            await asyncio.sleep(0.2)
        return results

    results = asyncio.run(run())
    answered = sorted(seconds for status, seconds in results if status == 200)
    failures = [status for status, _ in results if status != 200]
    slowest = answered[-1] if answered else float("inf")
    median = statistics.median(answered) * 1000 if answered else float("nan")
    print(
        f"\n{label}: {len(answered)}/{len(results)} requests from {source} answered 200, "
        f"median {median:.0f} ms, slowest {slowest * 1000:.0f} ms, failures {failures} "
        "(shared, busy 2-core machine)"
    )
    return len(answered), len(results), slowest


def port_of(engine: EngineProcess) -> int:
    return int(urlsplit(engine.url).port or 0)


def test_300_idle_connections_from_the_same_address_do_not_lock_out_requests(
    server: EngineProcess,
) -> None:
    port = port_of(server)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE_CONNECTIONS)]
    try:
        time.sleep(0.5)
        answered, sent, slowest = measure(port, "127.0.0.1", "300 idle connections from 127.0.0.1")
        closed = sum(1 for sock in idle if _closed_by_server(sock))
        print(f"{closed} of the {len(idle)} idle connections closed by the server (for room, or idle 5 s)")
    finally:
        for sock in idle:
            sock.close()
    assert answered == sent and sent > 10
    assert slowest < 2.0


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False  # still open, nothing to read
    except OSError:
        return True


def test_a_client_reopening_300_idle_connections_does_not_lock_out_requests(
    server: EngineProcess,
) -> None:
    port = port_of(server)
    with hostile(port, "idle"):
        same = measure(port, "127.0.0.1", "300 idle connections from 127.0.0.1, reopened as closed")
        other = measure(port, second_loopback_address(), "the same, requests from another address")
    for answered, sent, slowest in (same, other):
        assert answered == sent and sent > 5
        assert slowest < 5.0


def test_300_slow_request_heads_do_not_lock_out_requests(server: EngineProcess) -> None:
    port = port_of(server)
    with hostile(port, "slow"):
        other = measure(port, second_loopback_address(), "300 never-ending request heads from 127.0.0.1")
        same = measure(port, "127.0.0.1", "the same, requests from 127.0.0.1 itself")
    answered, sent, slowest = other
    assert answered == sent and sent > 5
    assert slowest < 5.0
    # From the attacker's own address, requests compete with its reconnections for the address's
    # connections: the slowest heads give way to them, so some are answered (none were before).
    assert same[0] > 0
