"""Kestra expressions: Pebble templates rendered by a Jinja2 immutable sandbox.

Flows hold Pebble templates (``{{ outputs.task.value ?? 'none' | upper }}``). Each template is translated
into Jinja once (see :mod:`engine.expressions.syntax`), compiled, cached by its source text, and rendered
in an :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` whose operators, attribute access and calls
are hooked to follow Pebble's semantics and to enforce size, count and time limits.

Example:
    >>> renderer = Renderer()
    >>> renderer.render("{{ inputs.name ?? 'world' | upper }}", {"inputs": {}})
    'WORLD'
"""

from __future__ import annotations

import functools
import re
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, NamedTuple

from jinja2 import Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from . import fastpath, offload
from .core import (
    DEFAULT_MAX_OUTPUT_CHARS,
    ExpressionError,
    ExpressionSecurityError,
    KestraUndefined,
    LimitExceeded,
    MissingVariable,
    RenderFailure,
    RenderState,
    current_state,
    is_truthy,
    state_var,
    to_text,
)
from .library import FILTERS, FUNCTIONS, HELPERS, TESTS, binop
from .syntax import TemplateProblem, translate

__all__ = [
    "CacheInfo",
    "ExpressionError",
    "ExpressionSecurityError",
    "Renderer",
    "is_truthy",
    "to_text",
]

# Longest template text quoted in an error message.
_QUOTE_CHARS: Final = 200
# render() inside render() ...
_MAX_RENDER_DEPTH: Final = 10
# Kestra's VariableRenderer.MAX_RENDERING_AMOUNT for recursive rendering.
_MAX_RENDERING_ATTEMPTS: Final = 100

# Methods of plain values a template may call: none of them mutates or can build huge values.
_STR_METHODS: Final = frozenset(
    {"upper", "lower", "strip", "lstrip", "rstrip", "startswith", "endswith", "split", "rsplit",
     "splitlines", "title", "capitalize", "casefold", "find", "rfind", "count", "isdigit", "isalpha",
     "isalnum", "isspace", "islower", "isupper", "isnumeric", "isdecimal"}
)  # fmt: skip
_MAP_METHODS: Final = frozenset({"get", "keys", "values", "items"})
_SEQUENCE_METHODS: Final = frozenset({"index", "count"})
_PLAIN_TYPES: Final = (str, bytes, int, float, bool, list, tuple, dict, set, frozenset, Decimal, type(None))


# Filters and functions that may hand work to a worker process (jq, regular expressions, parsing,
# http()), and render(), whose template is known only when it runs.
_COSTLY_NAMES: Final = re.compile(r"\b(?:jq|replace|split|fromJson|json|yaml|render|renderOnce|http)\b")


@functools.lru_cache(maxsize=4096)
def _may_be_costly(template: str) -> bool:
    return ("{{" in template or "{%" in template) and _COSTLY_NAMES.search(template) is not None


def _strings(value: Any) -> list[str]:
    """Every string inside nested dicts (keys too), lists and tuples."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return found


def _allowed_method(owner: Any, name: str) -> bool:
    if isinstance(owner, str):
        return name in _STR_METHODS
    if isinstance(owner, Mapping):
        return name in _MAP_METHODS
    if isinstance(owner, list | tuple):
        return name in _SEQUENCE_METHODS
    return False


def _quote(template: str) -> str:
    return template if len(template) <= _QUOTE_CHARS else template[:_QUOTE_CHARS] + "..."


class _KestraEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with Pebble's operators and attribute rules and the render limits."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return binop(operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, Mapping):
            # Map keys win over methods, so outputs.task.values and outputs.x.items read data.
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
            if attribute in _MAP_METHODS:
                return getattr(obj, attribute)
        if attribute.startswith("_"):
            raise SecurityError(f"access to attribute '{attribute}' is not allowed")
        if isinstance(obj, (Mapping, *_PLAIN_TYPES)):
            if not isinstance(obj, Mapping) and _allowed_method(obj, attribute):
                return getattr(obj, attribute)
            if hasattr(obj, attribute):
                # Methods such as update, pop or format: mutation and format-string tricks.
                raise SecurityError(f"access to '{attribute}' on {type(obj).__name__} values is not allowed")
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, str) and argument.startswith("__"):
            raise SecurityError(f"access to item '{argument}' is not allowed")
        if isinstance(obj, Undefined):
            return obj
        if isinstance(obj, Mapping):
            try:
                return obj[argument]
            except (KeyError, TypeError):
                return self.undefined(obj=obj, name=str(argument))
        if isinstance(obj, _PLAIN_TYPES):
            if (
                isinstance(obj, list | tuple | str)
                and isinstance(argument, int)
                and not isinstance(argument, bool)
            ):
                try:
                    return obj[argument]
                except IndexError:
                    pass
            return self.undefined(obj=obj, name=str(argument))
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        raise SecurityError(f"access to attribute '{attribute}' of a {type(obj).__name__} is not allowed")

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, Undefined):
            obj._fail_with_undefined_error()
        if isinstance(obj, types.BuiltinMethodType | types.MethodWrapperType | types.MethodType):
            owner = getattr(obj, "__self__", None)
            if isinstance(owner, (*_PLAIN_TYPES, types.ModuleType)) and not _allowed_method(
                owner, obj.__name__
            ):
                raise SecurityError(f"calling '{obj.__name__}' is not allowed")
        current_state().check_time()
        return super().call(context, obj, *args, **kwargs)


def _create_environment() -> _KestraEnvironment:
    env = _KestraEnvironment(
        undefined=KestraUndefined,
        finalize=to_text,
        autoescape=False,
        keep_trailing_newline=True,  # Pebble keeps the final newline of a template
        cache_size=0,
        auto_reload=False,
    )
    # Only Kestra's names: Jinja's own filters and globals (cycler, joiner, namespace, lipsum...) go.
    env.filters = dict(FILTERS)
    env.tests = dict(TESTS)
    env.globals = {**FUNCTIONS, **HELPERS}
    return env


class CacheInfo(NamedTuple):
    """Statistics of the compiled-template cache."""

    hits: int
    misses: int
    size: int
    maxsize: int


@dataclass(frozen=True, slots=True)
class _CompileFailure:
    message: str
    security: bool

    def error(self) -> ExpressionError:
        return (ExpressionSecurityError if self.security else ExpressionError)(self.message)


class Renderer:
    """Renders Kestra expressions; thread-safe, with a bounded cache of compiled templates.

    Args:
        max_output_chars: Largest text an expression may print or build.
        timeout_s: Longest time one render may take.
        cache_size: How many compiled templates to keep (least recently used ones are dropped).
    """

    def __init__(
        self,
        *,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        timeout_s: float = 5.0,
        cache_size: int = 4096,
    ) -> None:
        self._max_output_chars = max_output_chars
        self._timeout_s = timeout_s
        self._cache_size = max(cache_size, 1)
        self._env = _create_environment()
        self._filter_names = frozenset(self._env.filters)
        self._test_names = frozenset(self._env.tests)
        self._cache: OrderedDict[str, Template | _CompileFailure] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    # -- public API ------------------------------------------------------------------------------------

    def render(self, template: str, context: Mapping[str, Any]) -> str:
        """Render one string once.

        Strings without ``{{`` or ``{%`` are returned unchanged without touching Jinja.

        Args:
            template: The Pebble template.
            context: The variables (``inputs``, ``outputs``, ``taskrun`` ...) and callables such as
                ``kv`` or ``errorLogs``.

        Returns:
            The rendered text.

        Raises:
            ExpressionError: The template is invalid, uses an undefined variable, or fails.
            ExpressionSecurityError: The template reaches for something the sandbox forbids.
        """
        if not isinstance(template, str) or ("{{" not in template and "{%" not in template):
            return template
        quick = fastpath.render(template, context)
        if quick is not None and len(quick) <= self._max_output_chars:
            return quick
        state = RenderState(
            deadline=time.monotonic() + self._timeout_s,
            timeout_s=self._timeout_s,
            max_output_chars=self._max_output_chars,
            renderer=self,
        )
        try:
            return self._run(self._template(template), context, state)
        except Exception as exc:
            raise self._convert(exc, template) from None

    def render_value(self, value: Any, context: Mapping[str, Any]) -> Any:
        """Render every string inside nested dicts and lists (keys too); other values stay as they are.

        Args:
            value: A string, a dict, a list, or any other value.
            context: The variables.

        Returns:
            The value with its strings rendered.

        Raises:
            ExpressionError: One of the strings failed to render.
        """
        if isinstance(value, str):
            return self.render(value, context)
        if isinstance(value, Mapping):
            return {
                (self.render(key, context) if isinstance(key, str) else key): self.render_value(item, context)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.render_value(item, context) for item in value]
        if isinstance(value, tuple):
            return tuple(self.render_value(item, context) for item in value)
        return value

    async def prefetch(self, value: Any, context: Mapping[str, Any]) -> None:
        """Run the costly filter calls of the templates in ``value`` off the event loop, ahead of rendering.

        jq programs, regular expressions and large parses run in worker processes under the time limit.
        A render on the event loop would wait for them there; after ``prefetch``, rendering the same
        templates with the same variables in the same asyncio task finds their results ready. Templates
        without such calls are skipped, and errors are left to the render proper.

        Args:
            value: A string, or dicts and lists of them (a task's properties).
            context: The variables the templates will be rendered with.
        """
        for template in _strings(value):
            if _may_be_costly(template):
                await offload.collect(functools.partial(self.render, template, context), self._timeout_s)

    def is_truthy(self, template: str, context: Mapping[str, Any]) -> bool:
        """Render a condition, then apply Kestra's truthiness rule (see :func:`is_truthy`).

        Args:
            template: The condition (``If``, ``runIf``, ``Fail.condition``).
            context: The variables.

        Returns:
            Whether the rendered condition is true.

        Raises:
            ExpressionError: The condition failed to render.
        """
        return is_truthy(self.render(template, context))

    def validate(self, template: str) -> None:
        """Check that a template compiles, without rendering it.

        Args:
            template: The Pebble template.

        Raises:
            ExpressionError: The template is invalid.
            ExpressionSecurityError: The template reaches for something the sandbox forbids.
        """
        if "{{" in template or "{%" in template:
            self._template(template)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the compiled-template cache."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self._cache_size)

    def render_nested(self, value: Any, variables: Mapping[str, Any], recursive: bool) -> Any:
        """Render a value from inside a render (the ``render()`` function), sharing its limits.

        Args:
            value: A string holding expressions, or a dict or list of them.
            variables: The variables of the calling template.
            recursive: Render again until the text stops changing (Kestra's default for ``render``).

        Returns:
            The rendered value.
        """
        state = current_state()
        if state.depth >= _MAX_RENDER_DEPTH:
            raise LimitExceeded(f"render() calls are nested deeper than the limit of {_MAX_RENDER_DEPTH}")
        state.depth += 1
        try:
            return self._render_nested_value(value, variables, state, recursive)
        finally:
            state.depth -= 1

    # -- internals -------------------------------------------------------------------------------------

    def _render_nested_value(
        self, value: Any, variables: Mapping[str, Any], state: RenderState, recursive: bool
    ) -> Any:
        if isinstance(value, str):
            text = value
            for _ in range(_MAX_RENDERING_ATTEMPTS):
                if "{{" not in text and "{%" not in text:
                    return text
                try:
                    result = self._run(self._template(text), variables, state)
                except Exception as exc:
                    raise self._convert(exc, text) from None
                if not recursive or result == text:
                    return result
                text = result
            raise RenderFailure("too many rendering attempts")
        if isinstance(value, Mapping):
            return {
                self._render_nested_value(key, variables, state, recursive): self._render_nested_value(
                    item, variables, state, recursive
                )
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._render_nested_value(item, variables, state, recursive) for item in value]
        return value

    def _template(self, source: str) -> Template:
        with self._lock:
            entry = self._cache.get(source)
            if entry is not None:
                self._cache.move_to_end(source)
                self._hits += 1
        if entry is None:
            entry = self._compile(source)
            with self._lock:
                self._misses += 1
                self._cache[source] = entry
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if isinstance(entry, _CompileFailure):
            raise entry.error()
        return entry

    def _compile(self, source: str) -> Template | _CompileFailure:
        quoted = _quote(source)
        try:
            jinja_source = translate(source, self._filter_names, self._test_names)
        except TemplateProblem as problem:
            line = source.count("\n", 0, problem.pos) + 1
            if problem.security:
                return _CompileFailure(
                    f"Forbidden in the expression `{quoted}`: {problem.reason} (line {line})", True
                )
            return _CompileFailure(f"Invalid expression `{quoted}`: {problem.reason} (line {line})", False)
        except RecursionError:
            return _CompileFailure(
                f"Invalid expression `{quoted}`: the expression is nested too deeply", False
            )
        try:
            return self._env.from_string(jinja_source)
        except TemplateSyntaxError as exc:
            return _CompileFailure(f"Invalid expression `{quoted}`: {exc.message} (line {exc.lineno})", False)
        except (RecursionError, MemoryError, SyntaxError, ValueError) as exc:
            return _CompileFailure(f"Invalid expression `{quoted}`: {exc}", False)

    def _run(self, template: Template, context: Mapping[str, Any], state: RenderState) -> str:
        var = state_var()
        token = var.set(state)
        try:
            jinja_context = template.new_context(dict(context))
            limit = state.max_output_chars
            total = 0
            chunks: list[str] = []
            for chunk in template.root_render_func(jinja_context):
                total += len(chunk)
                if total > limit:
                    raise LimitExceeded(f"the rendered text exceeds the limit of {limit} characters")
                chunks.append(chunk)
                if len(chunks) & 63 == 0:
                    state.check_time()
            return "".join(chunks)
        finally:
            var.reset(token)

    @staticmethod
    def _convert(exc: Exception, template: str) -> ExpressionError:
        quoted = _quote(template)
        if isinstance(exc, ExpressionError):
            return exc
        if isinstance(exc, MissingVariable):
            return ExpressionError(f"Unable to find `{exc.name}` used in the expression `{quoted}`")
        if isinstance(exc, SecurityError):
            return ExpressionSecurityError(f"Forbidden in the expression `{quoted}`: {exc}")
        if isinstance(exc, RenderFailure):
            return ExpressionError(f"Unable to render the expression `{quoted}`: {exc}")
        if isinstance(exc, RecursionError):
            return ExpressionError(
                f"Unable to render the expression `{quoted}`: the data is nested too deeply"
            )
        detail = str(exc) or type(exc).__name__
        return ExpressionError(f"Unable to render the expression `{quoted}`: {detail}")
