"""Where a store lives: an SQLite file (a Path) or a PostgreSQL database (its `postgresql://` URL).

Commands name a store by either (`--db`, `TIERCEL_DB`); what the engine keeps on the local disk
beside a store (the control socket, the files of its executions) goes beside an SQLite file, and for
a PostgreSQL store in a folder of its own under `$XDG_DATA_HOME/tiercel/` (see `local_path`). The
files of executions go in the folder TIERCEL_STORAGE names instead, when it is set
(`internal_storage.storage_root`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import urlsplit

DbTarget = Path | str  # a str is always a postgresql:// URL: see `as_target`

_SCHEMES = ("postgresql://", "postgres://")


def is_url(target: object) -> bool:
    """True when `target` names a PostgreSQL database rather than an SQLite file."""
    return isinstance(target, str) and target.startswith(_SCHEMES)


def as_target(text: str | Path) -> DbTarget:
    """`--db`'s text as a store's location: a URL stays text, anything else is a file's path."""
    return str(text) if is_url(text) else Path(text)


def describe_target(target: DbTarget) -> str:
    """The store's location for messages: a file's path, or the URL without its password (in the
    user part or as a `password=` parameter)."""
    if not is_url(target):
        return str(target)
    parts = urlsplit(str(target))
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = "&".join(
        f"{key}=***" if key.lower() == "password" else f"{key}={value}"
        for key, value in (pair.partition("=")[::2] for pair in parts.query.split("&") if pair)
    )
    return parts._replace(netloc=netloc, query=query).geturl()


def _identity(target: str) -> str:
    """What names a PostgreSQL store apart from how its URL is spelled: user, host, port, database
    and options (the schema), without the password."""
    parts = urlsplit(target)
    options = sorted(
        pair for pair in parts.query.split("&") if pair and not pair.lower().startswith("password=")
    )
    host = (parts.hostname or "").lower()
    return f"{parts.username or ''}@{host}:{parts.port or 5432}/{parts.path.strip('/')}?{'&'.join(options)}"


def target_exists(target: DbTarget) -> bool:
    """False for a file that is not there; a database is there as far as this side can tell."""
    return is_url(target) or Path(target).exists()


def local_path(target: DbTarget) -> Path:
    """The path that the local files of a store are named after: the SQLite file itself, or for a
    PostgreSQL store `$XDG_DATA_HOME/tiercel/postgres-<digest of its URL>/store` (a name, not a
    file: its folder holds the store's `storage/` and `store.sock`)."""
    if not is_url(target):
        return Path(target)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    digest = hashlib.sha256(_identity(str(target)).encode()).hexdigest()[:16]
    return base / "tiercel" / f"postgres-{digest}" / "store"
