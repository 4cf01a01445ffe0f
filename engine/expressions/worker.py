"""Entry point of an expression worker process: ``python -m tiercel.engine.expressions.worker FD``.

FD is the worker's end of a socket pair; jobs arrive on it and outcomes leave on it (see
:mod:`.offload` and :func:`.costly.serve`).
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

from .costly import serve

if __name__ == "__main__":
    serve(Connection(int(sys.argv[1])))
