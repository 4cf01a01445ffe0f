"""Waiting for a condition in tests: the one place that polls.

Tests state what must happen, and wait for it with a timeout that only a hang reaches: on a busy
machine a condition takes longer to hold, and a tight timeout would fail a correct program.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

# Long enough that only a hang (or a deadlock) reaches it, however busy the machine.
HANG = 60.0

T = TypeVar("T")


class Pausing(Protocol):
    """What `until_drawn` needs of a Textual Pilot: a pause that lets the app run."""

    async def pause(self, delay: float | None = None) -> None: ...


async def until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = HANG,
    what: str = "the condition",
    interval: float = 0.02,
) -> T:
    """Poll `predicate` (plain or async) on the running loop until it returns something true; return that.

    Fails the test with `what` when `timeout` seconds pass first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s (last value: {value!r})")
        await asyncio.sleep(interval)


async def until_drawn(
    pilot: Pausing, predicate: Callable[[], object], timeout: float = HANG, what: str = ""
) -> None:
    """Let a Textual app run (through its Pilot) until `predicate` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what or 'the condition'} was not reached within {timeout} s")
        await pilot.pause(0.05)


def blocking_until(
    predicate: Callable[[], T], timeout: float = HANG, what: str = "the condition", interval: float = 0.05
) -> T:
    """`until` for tests without an event loop (subprocesses, files): sleeps between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s (last value: {value!r})")
        time.sleep(interval)
