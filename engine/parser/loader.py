"""Safe YAML loading that remembers where every value came from.

The text is composed into YAML nodes (libyaml when available), then turned into plain Python values
(str, int, float, bool, None, list, dict with string keys) by hand, so that every value and every key
keeps its line and column, and so that the rules a flow file must follow are enforced on the way:
no tags beyond the plain ones, no duplicate keys, no alias bombs, a bounded nesting depth.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

YamlPath = tuple[str | int, ...]

MAX_DEPTH = 100
MAX_ALIAS_NODES = 100_000

# libyaml is ~6x faster on large flows; the pure Python loader behaves the same.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE = SafeConstructor()

_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = (_TAG + name for name in ("str", "null", "bool", "int", "float"))
_TIMESTAMP, _SEQ, _MAP, _MERGE, _VALUE = (
    _TAG + name for name in ("timestamp", "seq", "map", "merge", "value")
)
_SCALAR_TAGS = frozenset({_STR, _NULL, _BOOL, _INT, _FLOAT, _TIMESTAMP, _VALUE})

_BOMB = (
    f"YAML aliases (`*name`) expand to more than {MAX_ALIAS_NODES:,} values: this looks like an alias bomb; "
    "write the values out instead of repeating aliases"
)

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def format_path(path: YamlPath) -> str:
    """`("tasks", 2, "retry")` -> `tasks[2].retry`; keys that are not plain names are quoted."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{json.dumps(part)}]")
    return "".join(out)


@dataclass
class SourceMap:
    """Line and column (1-based) of every value and every mapping key, by YAML path."""

    values: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[YamlPath, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: YamlPath, *, key: bool = False) -> tuple[int, int] | None:
        """Where `path` is written (its key when `key`), else where its nearest written parent is."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class Problem:
    """A problem found while loading, before it is tied to a file."""

    position: tuple[int, int] | None
    path: YamlPath
    message: str


@dataclass
class Document:
    """The loaded value, where its parts are, and what was wrong. `value` is None when loading failed."""

    value: Any
    source: SourceMap
    problems: list[Problem]
    complete: bool


class _Fatal(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def load_yaml(text: str) -> Document:
    """Load one YAML document safely, keeping the position of every node."""
    source = SourceMap()
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        return Document(None, source, [_syntax_problem(exc, text)], complete=False)
    except RecursionError:
        message = f"The document is nested too deeply (more than {MAX_DEPTH} levels)"
        return Document(None, source, [Problem(None, (), message)], complete=False)
    finally:
        loader.dispose()
    if node is None:
        message = "The file is empty: a flow needs at least `id`, `namespace` and `tasks`"
        return Document(None, source, [Problem((1, 1), (), message)], complete=False)
    builder = _Builder(source)
    try:
        builder.check_aliases(node)
        value = builder.build(node, (), 0)
    except _Fatal as fatal:
        return Document(None, source, [*builder.problems, fatal.problem], complete=False)
    return Document(value, source, builder.problems, complete=True)


def _position(node: Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _syntax_problem(exc: yaml.YAMLError, text: str) -> Problem:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        position = (mark.line + 1, mark.column + 1) if mark is not None else None
        problem = exc.problem or "the text is not valid YAML"
        if "expected a single document" in f"{exc.context} {problem}":
            message = "The file holds more than one YAML document (`---`): a flow file holds exactly one flow"
            return Problem(position, (), message)
        message = f"Invalid YAML: {problem}"
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        return Problem(position, (), message + _hint(problem, text, mark))
    if isinstance(exc, yaml.reader.ReaderError):
        offset = min(max(exc.position, 0), len(text))
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        message = f"Invalid character U+{code:04X} in the file: {exc.reason}; remove it"
        return Problem((line, column), (), message)
    return Problem(None, (), f"Invalid YAML: {exc}")


def _hint(problem: str, text: str, mark: Any) -> str:
    if "tab character" in problem:
        return ": YAML does not allow tabs for indentation, use spaces"
    if mark is not None and "cannot start any token" in problem:
        offset = mark.index if isinstance(mark.index, int) else -1
        if 0 <= offset < len(text) and text[offset] == "\t":
            return ": YAML does not allow tabs for indentation, use spaces"
    if "mapping values are not allowed" in problem:
        return ": check the indentation, or quote a value that contains `: `"
    if "could not find expected ':'" in problem:
        return ": a key is missing its `:`, or a quoted string is not closed"
    return ""


class _Builder:
    """Turns composed nodes into plain values, recording positions and problems."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self._seen: set[int] = set()
        self._sizes: dict[int, int] = {}
        self._expanded = 0

    def build(self, node: Node, path: YamlPath, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _Fatal(
                Problem(_position(node), path, f"The document is nested more than {MAX_DEPTH} levels deep")
            )
        self._visit(node, path)
        self.source.values[path] = _position(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                self._bad_tag(node, path)
            return [self.build(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        raise _Fatal(Problem(_position(node), path, "Unsupported YAML node"))

    def check_aliases(self, root: Node) -> None:
        """Refuse a document whose aliases expand to too many values, before building any of it.

        Every node reached again through an alias adds the whole size of its subtree; sizes are
        remembered per node, so an alias bomb is measured in the time it takes to read its text.
        """
        seen: set[int] = set()
        copies = 0

        def walk(node: Node, path: YamlPath, depth: int) -> None:
            nonlocal copies
            if id(node) in seen:
                copies += self._size(node, depth)
                if copies > MAX_ALIAS_NODES:
                    raise _Fatal(Problem(_position(node), path, _BOMB))
                return
            if depth > MAX_DEPTH:
                message = f"The document is nested more than {MAX_DEPTH} levels deep"
                raise _Fatal(Problem(_position(node), path, message))
            seen.add(id(node))
            if isinstance(node, SequenceNode):
                for index, item in enumerate(node.value):
                    walk(item, (*path, index), depth + 1)
            elif isinstance(node, MappingNode):
                for key_node, value_node in node.value:
                    walk(key_node, path, depth + 1)
                    key = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                    walk(value_node, (*path, key), depth + 1)

        walk(root, (), 0)

    def _size(self, node: Node, depth: int) -> int:
        """How many values `node` expands to (capped just over the limit), remembered per node."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        cap = MAX_ALIAS_NODES + 1
        if depth > MAX_DEPTH:
            return cap  # deeper than any document may go
        self._sizes[id(node)] = cap  # a node that holds itself expands forever
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += self._size(child, depth + 1)
            if total >= cap:
                break
        self._sizes[id(node)] = min(total, cap)
        return self._sizes[id(node)]

    def _visit(self, node: Node, path: YamlPath) -> None:
        # A node seen before is reached again through an alias: count the copies it expands to.
        if id(node) in self._seen:
            self._count(1, node, path)
        else:
            self._seen.add(id(node))

    def _count(self, nodes: int, node: Node, path: YamlPath) -> None:
        self._expanded += nodes
        if self._expanded > MAX_ALIAS_NODES:
            raise _Fatal(Problem(_position(node), path, _BOMB))

    def _mapping(self, node: MappingNode, path: YamlPath, depth: int) -> dict[str, Any]:
        if node.tag != _MAP:
            self._bad_tag(node, path)
        result: dict[str, Any] = {}
        for key_node, value_node, explicit in self._pairs(node, path, depth):
            if not isinstance(key_node, ScalarNode):
                message = "A mapping key must be a plain name, not a list or a mapping"
                self.problems.append(Problem(_position(key_node), path, message))
                continue
            if key_node.tag not in _SCALAR_TAGS:
                self._bad_tag(key_node, path)
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                if explicit:
                    first = self.source.keys.get(child)
                    where = f" on line {first[0]}" if first else ""
                    message = f"Duplicate key `{key}`: it is already set{where}; keep only one of them"
                    self.problems.append(Problem(_position(key_node), child, message))
                continue
            self.source.keys[child] = _position(key_node)
            result[key] = self.build(value_node, child, depth + 1)
        return result

    def _pairs(self, node: MappingNode, path: YamlPath, depth: int) -> list[tuple[Node, Node, bool]]:
        """The key/value pairs of a mapping, written ones first, then those merged in with `<<`."""
        explicit: list[tuple[Node, Node, bool]] = []
        merged: list[tuple[Node, Node, bool]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                explicit.append((key_node, value_node, True))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    message = "`<<` merges mappings only: give it an alias of a mapping, or a list of them"
                    self.problems.append(Problem(_position(source), path, message))
                    continue
                if depth > MAX_DEPTH:
                    raise _Fatal(Problem(_position(source), path, "Merge keys (`<<`) are nested too deeply"))
                merged.extend((key, value, False) for key, value, _ in self._pairs(source, path, depth + 1))
        if merged:
            self._count(len(merged), node, path)
        return explicit + merged

    def _scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        tag, text = node.tag, str(node.value)
        if tag in (_STR, _TIMESTAMP, _VALUE):
            # Dates stay text, as Kestra reads them.
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            # YAML 1.1's yes/no/on/off stay text: only true/false are booleans (YAML 1.2, Kestra).
            lowered = text.lower()
            return lowered == "true" if lowered in ("true", "false") else text
        if tag in (_INT, _FLOAT):
            if ":" in text:
                # YAML 1.1 base-60 numbers (1:30) stay text.
                return text
            try:
                return _SAFE.construct_yaml_int(node) if tag == _INT else _SAFE.construct_yaml_float(node)
            except (ValueError, yaml.YAMLError):
                kind = "an integer" if tag == _INT else "a number"
                self.problems.append(Problem(_position(node), path, f"`{text}` is not {kind}"))
                return text
        self._bad_tag(node, path)
        return text

    def _bad_tag(self, node: Node, path: YamlPath) -> None:
        tag = str(node.tag)
        shown = "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag
        if tag.startswith(_TAG + "python/"):
            # Refused outright: nothing after it is worth reading.
            message = f"Python tags (`{shown}`) are not allowed in flows: a flow holds plain values only"
            raise _Fatal(Problem(_position(node), path, message))
        message = (
            f"Unsupported YAML tag `{shown}`: flows hold plain values (text, numbers, booleans, lists, "
            "mappings); remove the tag"
        )
        self.problems.append(Problem(_position(node), path, message))
