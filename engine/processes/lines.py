"""A program's output, line by line: pipes read in bounded chunks and cut into lines.

Used by engine.processes.run for every program it follows.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import Awaitable, Callable

__all__ = ["MAX_PROTOCOL_LINE_CHARS", "READ_CHUNK", "LineSplitter", "Pump"]

READ_CHUNK = 64 * 1024

#: Lines of Kestra's output protocol (``::{"outputs": ...}::``) are data, not log text: they may be
#: this long before they are cut into pieces like any other long line.
MAX_PROTOCOL_LINE_CHARS = 16 * 1024 * 1024


class LineSplitter:
    """Bytes in, lines out, holding at most ``max_chars + 1`` characters of an unfinished line.

    A line that starts as Kestra's output protocol (``::{``) may grow to ``max_protocol_chars``.
    """

    def __init__(
        self, emit: Callable[[str], None], max_chars: int, max_protocol_chars: int = MAX_PROTOCOL_LINE_CHARS
    ) -> None:
        self._emit = emit
        self._max = max_chars
        self._max_protocol = max(max_chars, max_protocol_chars)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> None:
        self._push(self._decoder.decode(data))

    def close(self) -> None:
        """Deliver what is left: a final line without a newline, an incomplete UTF-8 sequence."""
        self._push(self._decoder.decode(b"", final=True))
        rest, self._pending = self._pending.removesuffix("\r"), ""
        if rest:
            self._emit_pieces(rest)

    def _push(self, text: str) -> None:
        if "\n" in text:
            parts = text.split("\n")
            self._emit_pieces((self._pending + parts[0]).removesuffix("\r"))
            for part in parts[1:-1]:
                self._emit_pieces(part.removesuffix("\r"))
            self._pending = parts[-1]
        else:
            self._pending += text
        size = len(self._pending)
        if self._pending.startswith("::{") and size <= self._max_protocol + 1:
            return
        # Keep one character more than a piece: a "\r" waiting for its "\n" must not become content.
        if size > self._max + 1:
            count = (size - 2) // self._max
            for start in range(0, count * self._max, self._max):
                self._emit(self._pending[start : start + self._max])
            self._pending = self._pending[count * self._max :]

    def _emit_pieces(self, line: str) -> None:
        if len(line) <= self._max or (line.startswith("::{") and len(line) <= self._max_protocol):
            self._emit(line)
            return
        for start in range(0, len(line), self._max):
            self._emit(line[start : start + self._max])


class Pump:
    """Reads one pipe in bounded chunks and delivers its lines."""

    def __init__(
        self,
        stream: asyncio.StreamReader,
        is_stderr: bool,
        on_line: Callable[[str, bool], None],
        drain: Callable[[], Awaitable[None]] | None,
        max_chars: int,
    ) -> None:
        self.stream = stream
        self.is_stderr = is_stderr
        self.lines = 0
        self._on_line = on_line
        self._drain = drain
        self._max_chars = max_chars
        # Since when the pump has been waiting on the pipe; None while it delivers or drains.
        self.waiting_since: float | None = None

    def idle_for(self, now: float) -> float:
        """Seconds the pump has been waiting on its pipe; 0 while it delivers lines or drains."""
        return 0.0 if self.waiting_since is None else now - self.waiting_since

    def _emit(self, line: str) -> None:
        self.lines += 1
        self._on_line(line, self.is_stderr)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        splitter = LineSplitter(self._emit, self._max_chars)
        try:
            while True:
                self.waiting_since = loop.time()
                data = await self.stream.read(READ_CHUNK)
                self.waiting_since = None
                if not data:
                    break
                before = self.lines
                splitter.feed(data)
                if self._drain is not None and self.lines != before:
                    await self._drain()
        except asyncio.CancelledError:
            # The pipe is abandoned: still deliver the unfinished last line.
            splitter.close()
            raise
        splitter.close()
