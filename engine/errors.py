"""The error a refused command raises, apart from the command surface so components can raise it
without importing that surface (and the trigger state it lists)."""

from __future__ import annotations


class EngineCommandError(Exception):
    """A command cannot be carried out (unknown flow, bad inputs, wrong state ...)."""
