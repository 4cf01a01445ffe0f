"""Kestra's REST API on `tiercel server`: the subset Kestra's own tools use, with Kestra's paths and
JSON shapes, under `/api/v1/` and Kestra 1.x's `/api/v1/main/` alike.

A Starlette application (app.py) over the engine's commands and queries, one module per resource
(flows, executions and logs, namespace files and KV, the rest), hosted by the engine's hardened
HTTP server (asgi.py) beside the webhooks, `/metrics` and `/health`. Basic authentication guards it
(auth.py), required when the server listens beyond the loopback interface.
"""

from __future__ import annotations

from .app import api_app
from .auth import Credentials

__all__ = ["Credentials", "api_app"]
