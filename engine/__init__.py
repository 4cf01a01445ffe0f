"""Tiercel's engine: a pure asyncio library that parses, stores and runs Kestra flows.

It never imports textual, rich or the app package, so headless commands start fast and the
engine can be embedded anywhere.
"""

from __future__ import annotations

from .text import visible

__all__: list[str] = ["visible"]
