"""The people who may use the server's API: a users file, and how their passwords are kept.

    users:
      - name: erin
        password: scrypt$16384$8$1$<salt, hex>$<hash, hex>   # `tiercel users hash`
        groups: [data-engineers]
      - name: root
        password: scrypt$...
        owner: true          # every permission on every namespace

A user's groups and name are what `_namespace.yaml` permissions grant to (tiercel.engine.access).
Passwords are kept as scrypt hashes; an accepted `Authorization` header is remembered (by its SHA-256)
so that a client sending the same credentials on every request pays the hash once. A hash takes
about a tenth of a second of CPU: it runs in a thread, two at a time, so that a client sending wrong
passwords slows only the checks of new credentials, never the engine's loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tiercel.engine import Principal

__all__ = ["User", "Users", "UsersFileError", "hash_password"]

_N, _R, _P = 1 << 14, 8, 1
_REMEMBERED = 256


class UsersFileError(ValueError):
    """The users file cannot be used: it says where and why."""


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash`, the form the users file keeps."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=1 << 26)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def _matches(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        expected = bytes.fromhex(digest)
        found = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), maxmem=1 << 26
        )
    except ValueError:
        return False
    return kind == "scrypt" and hmac.compare_digest(found, expected)


@dataclass(frozen=True)
class User:
    name: str
    password: str  # the scrypt hash
    groups: frozenset[str] = field(default_factory=frozenset)
    owner: bool = False

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.groups, self.owner)


class Users:
    """The users of a users file; `authenticate` turns an Authorization header into one of them."""

    def __init__(self, users: list[User]) -> None:
        self.by_name = {user.name: user for user in users}
        self._accepted: OrderedDict[bytes, Principal] = OrderedDict()
        # A hash to spend time on for an unknown name, so that a name's existence does not show.
        self._decoy = hash_password(secrets.token_hex(8))
        self._hashing = asyncio.Semaphore(2)

    @classmethod
    def load(cls, path: Path) -> Users:
        """Read a users file.

        Raises:
            UsersFileError: It cannot be read, or an entry is not a user with a name and a hash.
        """
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise UsersFileError(f"{path}: {error}") from None
        entries = data.get("users") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise UsersFileError(f"{path}: a users file holds `users:`, a list of users")
        found: list[User] = []
        for index, entry in enumerate(entries):
            found.append(_user(entry, f"{path}: users[{index}]"))
        names = [user.name for user in found]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise UsersFileError(f"{path}: user `{twice[0]}` is listed twice")
        return cls(found)

    async def authenticate(self, header: str | None) -> Principal | None:
        """The user an `Authorization: Basic` header names, if its password is theirs."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        key = hashlib.sha256(token.strip().encode()).digest()
        known = self._accepted.get(key)
        if known is not None:
            self._accepted.move_to_end(key)
            return known
        try:
            name, colon, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (binascii.Error, ValueError):
            return None
        user = self.by_name.get(name) if colon else None
        async with self._hashing:
            matched = await asyncio.to_thread(_matches, password, user.password if user else self._decoy)
        if user is None or not matched:
            return None
        self._accepted[key] = user.principal
        if len(self._accepted) > _REMEMBERED:
            self._accepted.popitem(last=False)
        return user.principal

    def login(self, name: str, password: str) -> Principal | None:
        """The user `name`, if `password` is theirs (an unknown name costs a hash all the same)."""
        user = self.by_name.get(name)
        matched = _matches(password, user.password if user else self._decoy)
        return user.principal if user is not None and matched else None


def _user(entry: Any, where: str) -> User:
    if not isinstance(entry, dict):
        raise UsersFileError(f"{where}: a user is a map with `name` and `password`")
    unknown = sorted(set(entry) - {"name", "password", "groups", "owner"})
    if unknown:
        raise UsersFileError(f"{where}: unknown key `{unknown[0]}` (name, password, groups, owner)")
    name, password = entry.get("name"), entry.get("password")
    if not isinstance(name, str) or not name or ":" in name:
        raise UsersFileError(f"{where}: `name` must be a non-empty text without a colon")
    if not isinstance(password, str) or not password.startswith("scrypt$") or password.count("$") != 5:
        raise UsersFileError(
            f"{where}: `password` of `{name}` must be a hash from `tiercel users hash`, never the password"
        )
    groups = entry.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(group, str) and group for group in groups):
        raise UsersFileError(f"{where}: `groups` of `{name}` must be a list of names")
    owner = entry.get("owner", False)
    if not isinstance(owner, bool):
        raise UsersFileError(f"{where}: `owner` of `{name}` must be true or false")
    return User(name, password, frozenset(groups), owner)
