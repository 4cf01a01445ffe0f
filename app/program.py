"""The `tiercel` executable (its console script): the command line, quick to start and to end.

Apart from the `cli` package, which takes a while to import: a Ctrl-C while the command still loads
ends it as one while it runs does, with status 130 and no traceback.
"""

from __future__ import annotations

import gc

__all__ = ["program"]


def program() -> int:
    try:
        from .cli.main import main

        code = main()
    except KeyboardInterrupt:
        return 130
    # At exit the interpreter collects garbage while it tears its modules down, scanning every object
    # the command made (40 ms after a `tiercel run` here) for memory the exit frees anyway. Frozen,
    # they are left out of that scan; modules are still torn down and their objects finalized.
    gc.freeze()
    return code
