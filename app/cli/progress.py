"""What `tiercel run` shows while its execution runs: log lines, a line as each task run starts and
ends, and on a terminal a progress line kept below them.

Log lines go to stdout as they always did (stderr with --json); task run lines and the execution's
start and end go to stderr. When stdout is a terminal, a progress line (task runs done out of those
created so far, running, elapsed) stays at its bottom, redrawn in place and erased at the end; states
are coloured on a terminal unless NO_COLOR is set. Otherwise (pipes, CI) only plain lines are written:
no escape sequence ever reaches a file or a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from tiercel.engine import visible

from .colour import coloured_log, colours, is_terminal, paint
from .common import format_log

if TYPE_CHECKING:
    from tiercel.engine import Execution, LogEntry, StateType, TaskRun

ERASE = "\r\x1b[K"
REDRAW_SECONDS = 0.2


def state_text(state: StateType, stream: TextIO) -> str:
    """A state's name, coloured for `stream` when it may be."""
    return paint(state.value, state.value, stream)


def seconds_text(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


class RunView:
    """The output of one `tiercel run`, fed with log lines and task run snapshots.

    Args:
        json_output: --json: log lines go to stderr and nothing else is shown (stdout holds only the
            final execution).
    """

    def __init__(self, *, json_output: bool = False) -> None:
        self.json_output = json_output
        self.live = not json_output and is_terminal(sys.stdout)
        self._runs: dict[str, TaskRun] = {}
        self._seen: dict[str, tuple[int, int]] = {}  # task run id: (starts shown, ends shown)
        self._started_at: datetime | None = None
        self._clock_start = time.monotonic()
        self._drawn = False
        self._redraws: asyncio.Task[None] | None = None

    # -- what happens ------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin redrawing the progress line (on a terminal), so elapsed time moves on its own."""
        if self.live and self._redraws is None:
            self._redraws = asyncio.get_running_loop().create_task(self._redraw_forever())

    def logs(self, entries: Iterable[LogEntry]) -> None:
        """A batch of log lines, written at once."""
        stream = sys.stderr if self.json_output else sys.stdout
        if colours(stream):
            self._write(stream, [coloured_log(entry, stream) for entry in entries])
            return
        lines = [format_log(entry) for entry in entries]
        if not lines:
            return
        text = "\n".join(lines)
        # One scan of the batch finds no control character in the common case; otherwise each line is
        # made visible alone (a carriage return ending a line is shown, not taken for a CRLF).
        if visible(text) is not text:
            text = "\n".join(visible(line) for line in lines)
        self._write(stream, [text])

    def execution(self, execution: Execution, *, task_runs: bool = True) -> None:
        """A snapshot of the execution: its task runs that changed are shown (unless they are
        announced one by one: comparing them all at every change would cost O(task runs))."""
        self._started_at = self._started_at or execution.state.start_date
        if not task_runs:
            return
        changed = [run for run in execution.task_runs if self._changed(run)]
        if changed:
            self.task_runs(changed)

    def task_runs(self, runs: Iterable[TaskRun]) -> None:
        """Task runs as they are now: a line for each start and each end not shown yet."""
        lines: list[tuple[tuple[datetime, int], str]] = []
        changed = False
        for run in runs:
            self._runs[run.id] = run
            lines += self._transitions(run)
            changed = True
        if not changed or self.json_output:
            return
        if lines:
            # In the order they happened; at the same instant, a loop starts before its task runs
            # and ends after them.
            self._write(sys.stderr, [line for _, line in sorted(lines, key=lambda pair: pair[0])])
        else:
            self._draw()

    def say(self, text: str) -> None:
        """A message of the command's own, on stderr (none with --json)."""
        if not self.json_output:
            self._write(sys.stderr, [visible(text)])

    def ended(self, execution: Execution) -> None:
        """The execution's final line, on stderr, after the progress line is gone (none with --json)."""
        self.close()
        if self.json_output:
            return
        took = seconds_text(execution.state.duration().total_seconds())
        state = state_text(execution.state.current, sys.stderr)
        _print(f"Execution {visible(execution.id)} ended {state} in {took}", sys.stderr)

    def close(self) -> None:
        """Stop redrawing and erase the progress line."""
        if self._redraws is not None:
            self._redraws.cancel()
            self._redraws = None
        self._erase()

    # -- task run lines ----------------------------------------------------------------------------
    def _changed(self, run: TaskRun) -> bool:
        known = self._runs.get(run.id)
        return known is None or known.state.histories != run.state.histories

    def _transitions(self, run: TaskRun) -> list[tuple[tuple[datetime, int], str]]:
        """The lines of the starts and ends `run` went through since it was last shown, each with
        the key that orders it among others.

        Counted from its history, so a start or an end between two snapshots is not missed, and a
        retry or a restart shows again.
        """
        from tiercel.engine import StateType, iso

        starts = [h for h in run.state.histories if h.state is StateType.RUNNING]
        ends = [h for h in run.state.histories if h.state.is_terminated]
        shown_starts, shown_ends = self._seen.get(run.id, (0, 0))
        self._seen[run.id] = (len(starts), len(ends))
        label = run.task_id if run.value is None else f"{run.task_id}[{run.value}]"
        name, depth = f"{visible(label):<20}", self._depth(run)
        lines = [((h.date, depth), f"{iso(h.date)} TASK  {name} started") for h in starts[shown_starts:]]
        for end in ends[shown_ends:]:
            took = seconds_text((end.date - run.state.start_date).total_seconds())
            state = state_text(end.state, sys.stderr)
            line = f"{iso(end.date)} TASK  {name} {state} in {took}"
            if end is ends[-1] and run.usage is not None:  # what its programs used, all attempts
                line += f" ({run.usage.described()})"
            lines.append(((end.date, -depth), line))
        return lines

    def _depth(self, run: TaskRun) -> int:
        """How many parent task runs `run` has (as far as they are known)."""
        depth, parent = 0, run.parent_task_run_id
        while parent is not None and parent in self._runs and depth < len(self._runs):
            depth, parent = depth + 1, self._runs[parent].parent_task_run_id
        return depth

    # -- the progress line -------------------------------------------------------------------------
    def progress(self) -> str:
        """Task runs done out of those created so far, running, and the time since the start."""
        from tiercel.engine import StateType, utcnow

        runs = self._runs.values()
        done = sum(run.state.current.is_terminated for run in runs)
        running = sum(run.state.current is StateType.RUNNING for run in runs)
        if self._started_at is not None:
            elapsed = (utcnow() - self._started_at).total_seconds()
        else:
            elapsed = time.monotonic() - self._clock_start
        return f"[{done}/{len(self._runs)} task runs done, {running} running, {elapsed:.1f} s]"

    async def _redraw_forever(self) -> None:
        while True:
            await asyncio.sleep(REDRAW_SECONDS)
            with contextlib.suppress(BrokenPipeError):
                self._draw()

    def _write(self, stream: TextIO, lines: list[str]) -> None:
        """Print lines (already made visible) where the progress line was, then redraw it below."""
        if not lines:
            return
        self._erase()
        _print("\n".join(lines), stream)
        self._draw()

    def _draw(self) -> None:
        if not self.live:
            return
        columns = shutil.get_terminal_size().columns
        # Cut to the terminal's width: a wrapped line could not be erased in place.
        sys.stdout.write(ERASE + self.progress()[: max(columns - 1, 0)])
        sys.stdout.flush()
        self._drawn = True

    def _erase(self) -> None:
        if self._drawn:
            sys.stdout.write(ERASE)
            sys.stdout.flush()
            self._drawn = False


def _print(text: str, stream: TextIO) -> None:
    """Text already made visible (it may hold our own colours) on `stream`."""
    print(text, file=stream, flush=True)
