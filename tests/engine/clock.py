"""A clock that tests move by hand, for the scheduler."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class ManualClock:
    """Time stands still until the test moves it; sleepers wake once it reaches their date."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        while self._now < when:
            moved = self._moved
            await moved.wait()

    def set(self, moment: datetime) -> None:
        """Move to `moment` (never backwards)."""
        self._now = max(self._now, moment)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)
