"""Secret values, found the way Kestra's open-source edition finds them, and their masking.

Kestra reads ``secret('NAME')`` from the environment variable ``SECRET_NAME``, whose value is the
secret encoded in base64 (the name is matched case-insensitively). Tiercel adds a plain
``KEY=VALUE`` file for local use, consulted when no such variable exists.

:class:`Masker` replaces every known secret value, and the encodings a program is likely to print it
in, with ``******``. It masks what is shown and logged (log lines, tables, outputs viewed, HTTP answers
and error texts); data keeps its real value, so a task reading another task's output gets the value
itself, as in Kestra.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

ENV_PREFIX = "SECRET_"
MASK = "******"
# Shorter secrets are not masked: a 1-3 character value ('a', 'on', '42') occurs in ordinary text
# all the time, so masking it would wreck every log line and, through the pattern of masks left
# behind, give the value away anyway.
MIN_SECRET_LENGTH = 4
MIN_LINE_LENGTH = 8
# Base64 fragments of a secret embedded in a longer encoded text (the password inside an HTTP Basic
# header) are masked only when this long, so that a short fragment cannot match ordinary words.
MIN_EMBEDDED_BASE64 = 6
MAX_FILE_BYTES = 1024 * 1024

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_DOUBLE_QUOTED_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class SecretError(Exception):
    """A secret is missing, badly encoded, or the secrets file is malformed; never holds the value."""


# --- finding secrets --------------------------------------------------------------------------------


def _closing_quote(text: str, quote_char: str) -> int:
    """Index of the closing quote in text, honouring backslash escapes inside double quotes."""
    if quote_char == "'":
        return text.find("'")
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            return index
        index += 1
    return -1


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda match: _DOUBLE_QUOTED_ESCAPES.get(match[1], match[0]), value)


def parse_env_file(path: Path) -> dict[str, str]:
    """Read a dotenv-like secrets file into a mapping of upper-cased keys to plain values.

    Accepted: blank lines, ``#`` comments, an optional ``export`` prefix, ``KEY=value`` with an
    inline `` #comment`` after an unquoted value, ``'single'`` quotes (literal) and ``"double"``
    quotes (``\\n``, ``\\t``, ``\\"`` and ``\\\\`` escapes); quoted values may span lines (PEM keys).
    A later key replaces an earlier one.

    Args:
        path: The file.

    Returns:
        The values by upper-cased key.

    Raises:
        SecretError: When the file is missing, too large, not UTF-8 or malformed (with file:line).
    """
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SecretError(f"Secrets file '{path}' is larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretError(f"Secrets file '{path}' does not exist") from None
    except UnicodeDecodeError:
        raise SecretError(f"Secrets file '{path}' is not UTF-8 text") from None
    except OSError as error:
        raise SecretError(f"Cannot read secrets file '{path}': {error.strerror}") from error
    lines = [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]
    values: dict[str, str] = {}
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith(("export ", "export\t")):
            line = line[len("export") :].lstrip()
        key, equals, rest = line.partition("=")
        key = key.strip()
        if not equals or not _KEY.fullmatch(key):
            raise SecretError(f"{path}:{number}: expected KEY=VALUE (KEY made of letters, digits and '_')")
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            quote_char, body = rest[0], rest[1:]
            end = _closing_quote(body, quote_char)
            while end == -1:
                if index >= len(lines):
                    raise SecretError(
                        f"{path}:{number}: the {quote_char} quote opened for {key} is never closed"
                    )
                body += "\n" + lines[index]
                index += 1
                end = _closing_quote(body, quote_char)
            tail = body[end + 1 :].strip()
            if tail and not tail.startswith("#"):
                raise SecretError(f"{path}:{number}: unexpected text after the closing quote of {key}")
            value = body[:end]
            if quote_char == '"':
                value = _unescape(value)
        else:
            comment = re.search(r"\s#", rest)
            value = (rest[: comment.start()] if comment else rest).strip()
        values[key.upper()] = value
    return values


class Secrets:
    """Looks secret values up: ``SECRET_<NAME>`` (base64) first, then the optional plain file."""

    def __init__(self, environ: Mapping[str, str] | None = None, file: Path | None = None) -> None:
        """Snapshot the ``SECRET_`` variables and read the file, as Kestra reads them at start.

        Args:
            environ: The environment (``os.environ`` by default).
            file: A dotenv-like file of plain values, or None.

        Raises:
            SecretError: When the file is missing or malformed.
        """
        source = os.environ if environ is None else environ
        self._encoded: dict[str, tuple[str, str]] = {
            name[len(ENV_PREFIX) :].upper(): (name, value)
            for name, value in source.items()
            if name.startswith(ENV_PREFIX)
        }
        self._plain: dict[str, str] = parse_env_file(file) if file is not None else {}

    def get(self, name: str) -> str:
        """The value of a secret.

        Args:
            name: The key used in ``secret('...')``; matched case-insensitively, as Kestra does.

        Returns:
            The decoded value.

        Raises:
            SecretError: When the key is unknown (Kestra's message), or the variable holding it is not
                valid base64 or not UTF-8 once decoded.
        """
        key = name.upper() if isinstance(name, str) else ""
        if not key:
            raise SecretError(f"Cannot find secret for key '{name}'.")
        encoded = self._encoded.get(key)
        if encoded is not None:
            return _decode(name, *encoded)
        value = self._plain.get(key)
        if value is None:
            raise SecretError(f"Cannot find secret for key '{name}'.")
        return value

    def values(self) -> list[str]:
        """Every secret value that can be read, for masking what is shown before any is used.

        Values whose variable does not decode are left out: using them fails with its own message.

        Returns:
            The decoded values of the ``SECRET_`` variables and of the file's keys they do not hide.
        """
        found: list[str] = []
        for name, (variable, encoded) in self._encoded.items():
            try:
                found.append(_decode(name, variable, encoded))
            except SecretError:
                continue
        found.extend(value for key, value in self._plain.items() if key not in self._encoded)
        return found


def _decode(name: str, variable: str, encoded: str) -> str:
    # Kestra strips line breaks before decoding; other whitespace is dropped too, and missing
    # padding is accepted as Java's decoder accepts it. The alphabet stays strict (no '-', '_'),
    # so a value that works here works on Kestra.
    compact = "".join(encoded.split())
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretError(
            f"Secret '{name}': environment variable {variable} is not valid base64; Kestra expects "
            f"the value base64-encoded (for example: {variable}=$(printf %s 'value' | base64 -w0))"
        ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(
            f"Secret '{name}': environment variable {variable} does not decode to UTF-8 text"
        ) from None


# --- masking ----------------------------------------------------------------------------------------


def _base64_forms(raw: bytes) -> set[str]:
    """Standard and URL-safe base64, padded and not, and the stable fragments at byte offsets 0-2."""
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        full = encode(raw).decode("ascii")
        forms.update((full, full.rstrip("=")))
        for offset in range(3):
            # Inside a longer encoded text the secret starts at some byte offset; only the
            # characters made of its own bits alone are stable, whatever surrounds it.
            shifted = encode(b"\0" * offset + raw).decode("ascii")
            start = -(-8 * offset // 6)
            end = 8 * (offset + len(raw)) // 6
            core = shifted[start:end]
            if len(core) >= MIN_EMBEDDED_BASE64:
                forms.add(core)
    return forms


def encodings(secret: str) -> set[str]:
    """The forms of a secret that are masked: itself, cases, base64, URL, JSON, hex, long lines."""
    raw = secret.encode("utf-8")
    forms = {secret, secret.upper(), secret.lower(), raw.hex()}
    forms |= _base64_forms(raw)
    forms.update((quote(secret, safe=""), quote(secret), quote_plus(secret)))
    forms.update((json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]))
    if "\n" in secret or "\r" in secret:
        forms.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= MIN_LINE_LENGTH)
    return forms


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of the words, factored as a prefix tree.

    ``re`` tries alternatives one by one, so a flat alternation of n words costs n checks at every
    position; the tree costs one check per distinct next character. At each node only one child can
    match, and ending at a word is optional and tried last, so the longest word always wins.
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = True

    def build(node: dict[str, Any]) -> str:
        chain: list[str] = []
        # Follow single-child chains without nesting groups, so long words do not nest deeply.
        while len(node) == 1 and "" not in node:
            char, node = next(iter(node.items()))
            chain.append(re.escape(char))
        children = sorted(char for char in node if char)
        if not children:
            return "".join(chain)
        branches = "|".join(re.escape(char) + build(node[char]) for char in children)
        optional = "?" if "" in node else ""
        return "".join(chain) + f"(?:{branches}){optional}"

    return build(trie)


@dataclass(frozen=True)
class _Patterns:
    """Compiled patterns for one set of secrets; replaced as a whole when a secret is added."""

    needles: frozenset[str]
    shortest: int
    search: re.Pattern[str]
    starts: re.Pattern[str]
    # For text whose lower() changes length (a few scripts), matched on the original text instead.
    starts_ignorecase: re.Pattern[str]


class Masker:
    """Replaces every known secret value, and its common encodings, with '******'.

    Each secret is masked as itself in any letter case, base64 (standard and URL-safe, with and
    without padding, also inside a longer encoded text), URL-encoded (``quote`` and
    ``quote_plus``), JSON-escaped, hex, and, for multi-line secrets, each line of 8+ characters.
    Values shorter than :data:`MIN_SECRET_LENGTH` are ignored (see there for why).

    Matching runs on ``text.lower()`` against lower-cased forms with one compiled prefix-tree
    regex, so a line without a secret costs a ``lower()`` and one regex scan.

    A value added with an ``owner`` (an execution's SECRET input) is held only until
    :meth:`release` of that owner, so values that arrive with every execution do not pile up; a
    value added without one (a resolved secret) is kept for good.
    """

    def __init__(self, min_length: int = MIN_SECRET_LENGTH) -> None:
        """Create an empty masker.

        Args:
            min_length: Values shorter than this are not masked.
        """
        self._min_length = max(1, min_length)
        # Each value with its lower-cased forms, and who holds it (None: kept for good).
        self._secrets: dict[str, frozenset[str]] = {}
        self._holders: dict[str, set[str | None]] = {}
        self._owned: dict[str, set[str]] = {}
        self._patterns: _Patterns | None = None

    def add(self, secret: str, owner: str | None = None) -> None:
        """Mask this value from now on (until `owner` is released); short values are ignored.

        Args:
            secret: The value to mask.
            owner: Who needs it masked (an execution id); None keeps it masked for good.
        """
        forms = self._hold(secret, owner)
        if forms:
            needles = set(forms)
            if self._patterns is not None:
                needles |= self._patterns.needles
            self._compile(needles)

    def add_all(self, secrets: Iterable[str]) -> None:
        """Mask all these values for good, compiling the patterns once for all of them.

        Args:
            secrets: The values to mask; short ones are ignored.
        """
        added = False
        for secret in secrets:
            added = bool(self._hold(secret, None)) or added
        if added:
            self._compile(set().union(*self._secrets.values()))

    def _hold(self, secret: str, owner: str | None) -> frozenset[str]:
        """Record who holds a value; its lower-cased forms when it is new, else nothing."""
        if not isinstance(secret, str) or len(secret) < self._min_length:
            return frozenset()
        holders = self._holders.setdefault(secret, set())
        holders.add(owner)
        if owner is not None:
            self._owned.setdefault(owner, set()).add(secret)
        if secret in self._secrets:
            return frozenset()
        forms = frozenset(form.lower() for form in encodings(secret) if len(form) >= self._min_length)
        self._secrets[secret] = forms
        return forms

    def release(self, owner: str) -> None:
        """Forget the values `owner` added, unless something else still holds them."""
        owned = self._owned.pop(owner, None)
        if not owned:
            return
        dropped = False
        for secret in owned:
            holders = self._holders.get(secret)
            if holders is None:
                continue
            holders.discard(owner)
            if not holders:
                del self._holders[secret]
                del self._secrets[secret]
                dropped = True
        if dropped:
            self._compile(set().union(*self._secrets.values()))

    def _compile(self, needles: set[str]) -> None:
        if not needles:
            self._patterns = None
            return
        pattern = _trie_pattern(needles)
        # Swapped in one assignment, so a concurrent mask() sees the old or the new set, never half.
        self._patterns = _Patterns(
            needles=frozenset(needles),
            shortest=min(len(needle) for needle in needles),
            search=re.compile(pattern),
            starts=re.compile(f"(?=({pattern}))"),
            starts_ignorecase=re.compile(f"(?=({pattern}))", re.IGNORECASE),
        )

    def __bool__(self) -> bool:
        """Whether any value is masked."""
        return self._patterns is not None

    def __len__(self) -> int:
        """How many distinct secret values are masked."""
        return len(self._secrets)

    def mask(self, text: str) -> str:
        """Return text with every occurrence of a secret form replaced by ``******``.

        Overlapping or adjacent occurrences (of one or several secrets) become one mask, so no part of
        either value is left in clear.
        """
        patterns = self._patterns
        if patterns is None or len(text) < patterns.shortest:
            return text
        lowered = text.lower()
        if len(lowered) == len(text):
            first = patterns.search.search(lowered)
            if first is None:
                return text
            subject, starts, position = lowered, patterns.starts, first.start()
        else:
            subject, starts, position = text, patterns.starts_ignorecase, 0
        pieces: list[str] = []
        kept = 0  # end of the text already copied or masked
        span_start = span_end = -1
        for match in starts.finditer(subject, position):
            start, end = match.span(1)
            if start <= span_end:
                span_end = max(span_end, end)
                continue
            if span_end >= 0:
                pieces.append(text[kept:span_start])
                pieces.append(MASK)
                kept = span_end
            span_start, span_end = start, end
        if span_end < 0:
            return text
        pieces.append(text[kept:span_start])
        pieces.append(MASK)
        pieces.append(text[span_end:])
        return "".join(pieces)

    def mask_value(self, value: Any) -> Any:
        """Mask secrets through dicts (keys and values), lists, tuples and strings.

        A number whose text holds a secret becomes the masked text; booleans, None and other types are
        returned unchanged. Two keys masking to the same text keep the later value.
        """
        if self._patterns is None:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {self.mask_value(key): self.mask_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.mask_value(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.mask_value(item) for item in value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = str(value)
            masked = self.mask(text)
            return value if masked == text else masked
        return value


def configured_secrets() -> Secrets:
    """SECRET_* variables, and the KEY=VALUE file of plain secrets TIERCEL_SECRETS_FILE names."""
    name = os.environ.get("TIERCEL_SECRETS_FILE")
    return Secrets(file=Path(name) if name else None)


def masking(secrets: Secrets) -> Masker:
    """A masker that knows every configured secret, even one no task of this process used."""
    masker = Masker()
    masker.add_all(secrets.values())
    return masker
