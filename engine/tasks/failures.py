"""What kind of error ended a task's attempt, and whether a task's `fatalError` names it.

A task's `fatalError` (the founding article's property, a Tiercel extension) lists errors that fail
the flow even under `allowFailure`, and are not retried. An entry names an error code, or text the
error message contains (case is ignored):

- `TIMEOUT`: the task ran longer than its `timeout`, or a server sent nothing in time;
- `CONNECTION_ERROR`: a server could not be reached, or broke the connection (HTTP, databases,
  brokers);
- `EXIT_CODE`: a script's or command's process ended with a non-zero exit code;
- `EXPRESSION_ERROR`: an expression of the task could not be rendered;
- `TASK_FAILED`: any other failure the task reported;
- `INTERNAL_ERROR`: an unexpected error in the task's code.
"""

from __future__ import annotations

from collections.abc import Iterable

TIMEOUT = "TIMEOUT"
CONNECTION_ERROR = "CONNECTION_ERROR"
EXIT_CODE = "EXIT_CODE"
EXPRESSION_ERROR = "EXPRESSION_ERROR"
TASK_FAILED = "TASK_FAILED"
INTERNAL_ERROR = "INTERNAL_ERROR"
ERROR_CODES = (TIMEOUT, CONNECTION_ERROR, EXIT_CODE, EXPRESSION_ERROR, TASK_FAILED, INTERNAL_ERROR)

# Words of drivers' messages when a server cannot be reached (their exception classes vary).
_UNREACHABLE = (
    "connection refused",
    "could not connect",
    "can't connect",
    "cannot connect",
    "connection reset",
    "name or service not known",
    "no route to host",
    "network is unreachable",
)


def connection_trouble(error: BaseException) -> bool:
    """Whether `error`, or one it was raised from, says a server could not be reached."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError) or "Connect" in type(current).__name__:
            return True
        if any(words in str(current).lower() for words in _UNREACHABLE):
            return True
        current = current.__cause__ or current.__context__
    return False


def unexpected_error_code(error: BaseException) -> str:
    """The code of an error a task's code did not turn into a failure of its own."""
    if isinstance(error, TimeoutError):
        return TIMEOUT
    return CONNECTION_ERROR if connection_trouble(error) else INTERNAL_ERROR


def fatal_entry(entries: Iterable[str], code: str, message: str) -> str | None:
    """The first of `entries` naming this error (its code, or text of its message), if any."""
    lowered = message.lower()
    for entry in entries:
        if entry.upper() == code or entry.lower() in lowered:
            return entry
    return None
