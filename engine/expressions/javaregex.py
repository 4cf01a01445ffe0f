"""Java's regular expressions (``java.util.regex.Pattern``) on Python's :mod:`re`.

Kestra's filters compile their patterns with Java, whose dialect differs from Python's where flows notice:
``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII unless ``(?U)``; ``(?<name>...)`` and ``\\k<name>`` name
groups; ``\\p{Alpha}``, ``\\p{L}`` and ``\\p{IsDigit}`` are classes; ``\\Q...\\E`` quotes; ``\\h``,
``\\v``, ``\\R``, ``\\z``, ``\\e``, ``\\cX``, ``\\x{...}`` and ``\\0nn`` are escapes; ``[a-z[A-Z]]`` is a
union; ``(?i)`` may stand anywhere and holds to the end of its group. :func:`translate` rewrites a Java
pattern into an equivalent Python one, and refuses (with :class:`JavaRegexError`) what Python cannot
express: class intersections (``&&``), scripts and blocks, ``\\G``, ``\\X``.

:func:`java_replacement` reads a replacement the way ``Matcher.replaceAll`` does (``$1``, ``$12`` only
when that group exists, ``${name}``, ``\\$``).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from typing import Final

__all__ = ["JavaRegexError", "compile_java", "java_replacement", "translate"]


class JavaRegexError(ValueError):
    """A pattern Java would refuse, or one that uses what Python's re cannot express."""


# Java's POSIX classes are US-ASCII unless UNICODE_CHARACTER_CLASS.
_PUNCT: Final = r"!-/:-@\[-`{-~"
_POSIX: Final = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": r"\x00-\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": _PUNCT,
    "Graph": "a-zA-Z0-9" + _PUNCT,
    "Print": r"\x20-\x7e",
    "Blank": r" \t",
    "Cntrl": r"\x00-\x1f\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": r" \t\n\x0b\f\r",
}
# java.lang.Character properties, by the general categories that define them.
_JAVA_PROPERTIES: Final = {
    "javaLowerCase": ("Ll",),
    "javaUpperCase": ("Lu",),
    "javaTitleCase": ("Lt",),
    "javaDigit": ("Nd",),
    "javaLetter": ("Lu", "Ll", "Lt", "Lm", "Lo"),
    "javaLetterOrDigit": ("Lu", "Ll", "Lt", "Lm", "Lo", "Nd"),
    "javaSpaceChar": ("Zs", "Zl", "Zp"),
}
# Unicode binary properties Java names with Is..., by general categories (close to Java's definitions).
_BINARY_PROPERTIES: Final = {
    "alphabetic": ("Lu", "Ll", "Lt", "Lm", "Lo", "Nl"),
    "letter": ("Lu", "Ll", "Lt", "Lm", "Lo"),
    "digit": ("Nd",),
    "uppercase": ("Lu",),
    "lowercase": ("Ll",),
    "titlecase": ("Lt",),
    "punctuation": ("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"),
    "control": ("Cc",),
    "assigned": (
        *(f"L{c}" for c in "ultmo"),
        *(f"M{c}" for c in "nce"),
        *(f"N{c}" for c in "dlo"),
        *(f"P{c}" for c in "cdseifo"),
        *(f"S{c}" for c in "mcko"),
        *("Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cs"),
    ),
}
_CATEGORIES: Final = frozenset(
    ["L", "M", "N", "P", "S", "Z", "C", "LC"]
    + [f"L{c}" for c in "ultmo"]
    + [f"M{c}" for c in "nce"]
    + [f"N{c}" for c in "dlo"]
    + [f"P{c}" for c in "cdseifo"]
    + [f"S{c}" for c in "mcko"]
    + [f"Z{c}" for c in "slp"]
    + [f"C{c}" for c in "cfosn"]
)
_HORIZONTAL: Final = r" \t\xa0\u1680\u180e\u2000-\u200a\u202f\u205f\u3000"
_VERTICAL: Final = r"\n\x0b\f\r\x85\u2028\u2029"
_LINE_BREAK: Final = r"(?>\r\n|[\n\x0b\f\r\x85\u2028\u2029])"
_CLASS_SPECIALS: Final = frozenset("[]\\^-&~|")


def _char(code: int) -> str:
    """A character written so that it means itself, in and out of a class."""
    if code < 0x80 and not chr(code).isalnum():
        return "\\" + chr(code) if chr(code) in "\\^$.|?*+()[]{}-&~#" or chr(code).isspace() else chr(code)
    if code < 0x80:
        return chr(code)
    return f"\\U{code:08x}"


@functools.lru_cache(maxsize=64)
def _category_ranges(categories: tuple[str, ...]) -> str:
    """The code points of some general categories, as the ranges of a Python class."""
    wanted = set(categories)
    parts: list[str] = []
    start = -1
    for code in range(sys.maxunicode + 2):
        inside = code <= sys.maxunicode and unicodedata.category(chr(code)) in wanted
        if inside and start < 0:
            start = code
        elif not inside and start >= 0:
            parts.append(_char(start) if start == code - 1 else f"{_char(start)}-{_char(code - 1)}")
            start = -1
    return "".join(parts)


def _categories(name: str) -> tuple[str, ...]:
    if name == "LC":
        return ("Lu", "Ll", "Lt")
    if len(name) == 1:
        return tuple(sorted(found for found in _CATEGORIES if len(found) == 2 and found[0] == name))
    return (name,)


def _property(name: str) -> str:
    """The ranges (for a Python class) of ``\\p{name}``."""
    if name in _POSIX:
        return _POSIX[name]
    if name in _JAVA_PROPERTIES:
        return _category_ranges(_JAVA_PROPERTIES[name])
    bare = name
    for prefix in ("general_category=", "gc=", "Is"):
        if bare.startswith(prefix):
            bare = bare[len(prefix) :]
            break
    if bare in _CATEGORIES:
        return _category_ranges(_categories(bare))
    if bare.lower().replace("_", "") in ("whitespace",):
        return r" \t\n\x0b\f\r\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    if bare.lower() in _BINARY_PROPERTIES:
        return _category_ranges(_BINARY_PROPERTIES[bare.lower()])
    if bare.lower() in ("hexdigit", "hex_digit"):
        return "0-9a-fA-F\uff10-\uff19\uff21-\uff26\uff41-\uff46"
    raise JavaRegexError(f"Unsupported character property '{name}' (scripts and blocks are not supported)")


class _Translator:
    """One pass over a Java pattern, writing the Python pattern."""

    def __init__(self, pattern: str) -> None:
        self.src = pattern
        self.i = 0
        self.out: list[str] = []
        # Per open group: the scoped flag groups opened in it by (?flags), to close at '|' and ')'.
        self.frames: list[list[str]] = [[]]
        self.unicode_classes = False

    def fail(self, message: str) -> JavaRegexError:
        return JavaRegexError(f"{message} near index {self.i}")

    def peek(self, offset: int = 0) -> str:
        index = self.i + offset
        return self.src[index] if index < len(self.src) else ""

    def run(self) -> str:
        while self.i < len(self.src):
            char = self.src[self.i]
            if char == "\\":
                self.out.append(self.escape(in_class=False))
            elif char == "[":
                self.out.append(self.char_class())
            elif char == "(":
                self.group()
            elif char == ")":
                if len(self.frames) == 1:
                    raise self.fail("Unmatched closing ')'")
                self.out.append(")" * len(self.frames.pop()))
                self.out.append(")")
                self.i += 1
            elif char == "|":
                scoped = self.frames[-1]
                self.out.append(")" * len(scoped) + "|" + "".join(scoped))
                self.i += 1
            else:
                self.out.append(char)
                self.i += 1
        if len(self.frames) > 1:
            raise self.fail("Unclosed group")
        self.out.append(")" * len(self.frames[0]))
        return "".join(self.out)

    # -- groups ------------------------------------------------------------------------------------

    def group(self) -> None:
        rest = self.src[self.i :]
        if rest.startswith("(?<") and not rest.startswith(("(?<=", "(?<!")):
            match = re.match(r"\(\?<([A-Za-z][A-Za-z0-9]*)>", rest)
            if match is None:
                raise self.fail("named capturing group is missing trailing '>'")
            self.out.append(f"(?P<{match.group(1)}>")
            self.i += match.end()
            self.frames.append([])
            return
        flags = re.match(r"\(\?([idmsuxU]*)(?:-([idmsuxU]*))?([):])", rest)
        if flags is not None and (flags.group(1) or flags.group(2) is not None):
            on, off = flags.group(1), flags.group(2) or ""
            if "U" in on:
                self.unicode_classes = True
            on_py = "".join(flag for flag in on if flag in "imsx")
            off_py = "".join(flag for flag in off if flag in "imsx")
            spec = f"(?{on_py}{'-' + off_py if off_py else ''}:"
            self.i += flags.end()
            if flags.group(3) == ":":
                self.out.append(spec if on_py or off_py else "(?:")
                self.frames.append([])
            elif on_py or off_py:
                self.out.append(spec)
                self.frames[-1].append(spec)
            return
        self.out.append("(")
        self.i += 1
        self.frames.append([])

    # -- escapes -----------------------------------------------------------------------------------

    def escape(self, *, in_class: bool) -> str:
        """Translate the escape at ``self.i`` (a backslash); in a class, return class content."""
        letter = self.peek(1)
        if not letter:
            raise self.fail("Unexpected internal error: a trailing backslash")
        self.i += 2
        if letter == "Q":
            end = self.src.find("\\E", self.i)
            text = self.src[self.i :] if end < 0 else self.src[self.i : end]
            self.i = len(self.src) if end < 0 else end + 2
            return "".join(_char(ord(char)) for char in text)
        if letter in "pP":
            return self.property(negated=letter == "P", in_class=in_class)
        simple = {"h": _HORIZONTAL, "v": _VERTICAL}
        if letter in simple:
            return simple[letter] if in_class else f"[{simple[letter]}]"
        if letter in "HV":
            if in_class:
                raise self.fail(f"\\{letter} inside a character class is not supported")
            return f"[^{simple[letter.lower()]}]"
        if letter == "e":
            return r"\x1b"
        if letter == "c":
            control = self.peek()
            if not control:
                raise self.fail("Illegal control escape sequence")
            self.i += 1
            return _char(ord(control) ^ 64)
        if letter == "0":
            digits = re.match(r"[0-3][0-7]{0,2}|[0-7]{1,2}", self.src[self.i :])
            if digits is None:
                raise self.fail("Illegal octal escape sequence")
            self.i += digits.end()
            return _char(int(digits.group(), 8))
        if letter == "x" and self.peek() == "{":
            end = self.src.find("}", self.i)
            hexadecimal = self.src[self.i + 1 : end] if end > 0 else ""
            if not re.fullmatch(r"[0-9a-fA-F]{1,6}", hexadecimal) or int(hexadecimal, 16) > sys.maxunicode:
                raise self.fail("Illegal hexadecimal escape sequence")
            self.i = end + 1
            return _char(int(hexadecimal, 16))
        if in_class:
            return "\\" + letter
        if letter == "z":
            return r"\Z"
        if letter == "Z":
            return r"(?=(?:\r\n|[\n\r\x85\u2028\u2029])?\Z)"
        if letter == "R":
            return _LINE_BREAK
        if letter == "k":
            name = re.match(r"<([A-Za-z][A-Za-z0-9]*)>", self.src[self.i :])
            if name is None:
                raise self.fail("\\k is not followed by '<' for named capturing group")
            self.i += name.end()
            return f"(?P={name.group(1)})"
        if letter in "GX" or (letter == "b" and self.peek() == "{"):
            raise self.fail(f"\\{letter} is not supported")
        return "\\" + letter

    def property(self, *, negated: bool, in_class: bool) -> str:
        if self.peek() == "{":
            end = self.src.find("}", self.i)
            if end < 0:
                raise self.fail("Unclosed character family")
            name = self.src[self.i + 1 : end]
            self.i = end + 1
        else:
            name = self.peek()
            if not name:
                raise self.fail("Illegal character family")
            self.i += 1
        if name.startswith("^"):
            negated, name = not negated, name[1:]
        ranges = _property(name)
        if not in_class:
            return f"[{'^' if negated else ''}{ranges}]"
        if negated:
            raise self.fail("a negated property (\\P) inside a character class is not supported")
        return ranges

    # -- classes -----------------------------------------------------------------------------------

    def char_class(self) -> str:
        negated, content = self.class_body()
        return f"[{'^' if negated else ''}{content}]"

    def class_body(self) -> tuple[bool, str]:
        """Read ``[...]`` from ``self.i``: whether it is negated, and its content for a Python class."""
        start = self.i
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        parts: list[str] = []
        first = True
        while True:
            char = self.peek()
            if not char:
                self.i = start
                raise self.fail("Unclosed character class")
            if char == "]" and not first:
                self.i += 1
                return negated, "".join(parts)
            first = False
            if char == "\\":
                parts.append(self.escape(in_class=True))
            elif char == "[":
                inner_negated, inner = self.class_body()
                if inner_negated:
                    raise self.fail("a negated class inside a character class is not supported")
                parts.append(inner)
            elif char == "&" and self.peek(1) == "&":
                raise self.fail("character class intersection (&&) is not supported")
            else:
                parts.append("\\" + char if char in _CLASS_SPECIALS - {"-", "^"} else char)
                self.i += 1


@functools.lru_cache(maxsize=256)
def translate(pattern: str) -> tuple[str, int]:
    """The Python pattern and flags that match what the Java pattern matches.

    Raises:
        JavaRegexError: Java would refuse the pattern, or Python cannot express it.
    """
    translator = _Translator(pattern)
    python = translator.run()
    return python, (0 if translator.unicode_classes else re.ASCII)


@functools.lru_cache(maxsize=256)
def compile_java(pattern: str) -> re.Pattern[str]:
    """The compiled Python equivalent of a Java pattern.

    Raises:
        JavaRegexError: The pattern is invalid, or uses what Python cannot express.
    """
    python, flags = translate(pattern)
    try:
        return re.compile(python, flags)
    except re.error as exc:
        raise JavaRegexError(str(exc)) from None


# A replacement is literal text and group references: an int (number) or a str (name).
Replacement = tuple[str | int | tuple[str], ...]


def java_replacement(replacement: str, compiled: re.Pattern[str]) -> Replacement:
    """The parts of a ``Matcher.replaceAll`` replacement: texts, group numbers, and ``(name,)`` groups.

    ``$`` then digits names the longest group number that exists (``$12`` is group 1 then ``2`` when the
    pattern has fewer than 12 groups), ``${name}`` a named group, and a backslash quotes the next
    character.

    Raises:
        JavaRegexError: An illegal or missing group reference, or a trailing backslash.
    """
    parts: list[str | int | tuple[str]] = []
    text: list[str] = []
    i = 0
    while i < len(replacement):
        char = replacement[i]
        if char == "\\":
            if i + 1 >= len(replacement):
                raise JavaRegexError("character to be escaped is missing")
            text.append(replacement[i + 1])
            i += 2
            continue
        if char != "$":
            text.append(char)
            i += 1
            continue
        i += 1
        if i >= len(replacement):
            raise JavaRegexError("Illegal group reference: group index is missing")
        if replacement[i] == "{":
            end = replacement.find("}", i)
            name = replacement[i + 1 : end] if end > 0 else ""
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
                raise JavaRegexError("named capturing group is missing trailing '}'")
            if name not in compiled.groupindex:
                raise JavaRegexError(f"No group with name {{{name}}}")
            reference: int | tuple[str] = (name,)
            i = end + 1
        elif replacement[i].isdigit() and replacement[i].isascii():
            number = int(replacement[i])
            if number > compiled.groups:
                raise JavaRegexError(f"No group {number}")
            i += 1
            while i < len(replacement) and replacement[i] in "0123456789":
                longer = number * 10 + int(replacement[i])
                if longer > compiled.groups:
                    break
                number, i = longer, i + 1
            reference = number
        else:
            raise JavaRegexError("Illegal group reference")
        if text:
            parts.append("".join(text))
            text = []
        parts.append(reference)
    if text:
        parts.append("".join(text))
    return tuple(parts)


def expand(parts: Replacement, match: re.Match[str]) -> str:
    """The replacement of one match (a group that did not take part gives nothing, as in Java)."""
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        else:
            pieces.append(match.group(part if isinstance(part, int) else part[0]) or "")
    return "".join(pieces)
