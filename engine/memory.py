"""Handing memory back to the system once a large execution has ended.

Python keeps freed objects in its own pools, and the C allocator keeps freed pages, so a process
that held a 100,000-task-run execution stays as large afterwards unless asked to give them back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Callable
from functools import cache

# An execution with this many task runs or more asks for its memory back when it ends.
LARGE_EXECUTION_RUNS = 10_000


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, which returns free heap pages to the system; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def give_back() -> None:
    """Collect unreachable objects, then return the allocator's free pages to the system."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
