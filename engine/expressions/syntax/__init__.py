"""Translate Kestra's Pebble templates into Jinja templates.

Pebble and Jinja share their delimiters but not their expressions: Pebble has ``??``/``???``,
``cond ? a : b``, ``contains``, ``equals``, ``a..b`` ranges, ``"#{interpolation}"``, zero-based
``loop.index``, maps iterated as entries and different operator precedences (``|`` binds looser than
``~`` and ``??``). Every expression is tokenized and parsed with Pebble's grammar, then written back as a
fully parenthesized Jinja expression that calls the ``_pb_*`` helpers for Pebble-only semantics.
"""

from __future__ import annotations

from .parser import HELPER_PREFIX
from .templates import translate
from .tokens import TemplateProblem

__all__ = ["HELPER_PREFIX", "TemplateProblem", "translate"]
