"""Where the scheduler reads the time and sleeps: the system clock, or one a test drives."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Protocol

from ..model import utcnow


class Clock(Protocol):
    """Where the scheduler reads the time and sleeps; tests drive their own."""

    def now(self) -> datetime:
        """The current time, aware UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return at `when` (or later)."""
        ...


class RealClock:
    """The system clock."""

    def now(self) -> datetime:
        return utcnow()

    async def sleep_until(self, when: datetime) -> None:
        # Bounded steps, so that a clock jump (suspend, NTP) is noticed within half a minute.
        while (delay := (when - utcnow()).total_seconds()) > 0:
            await asyncio.sleep(min(delay, 30.0))


__all__ = ["Clock", "RealClock"]
