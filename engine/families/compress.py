"""Kestra's compress plugin (`io.kestra.plugin.compress`): archives and single compressed files.

ArchiveCompress packs stored files into a ZIP, JAR or TAR archive (optionally compressed, as a
.tar.gz); ArchiveDecompress unpacks one, each entry stored under its name (spaces as underscores,
as Kestra stores them) and counted in the `size` and `count` metrics; FileCompress and
FileDecompress compress one file. The standard library does the work: GZIP, BZIP2, XZ, LZMA and
DEFLATE (zlib's stream, as Apache Commons Compress writes it). The formats Kestra reads through
other libraries (AR, ARJ, CPIO and DUMP archives; BROTLI, LZ4, SNAPPY, Z and ZSTD compression) fail
the task with a message saying which ones are supported here.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, cast

from tiercel.engine.plugin import Kind, Registry, TaskContext, TaskFailure, TaskType

PACKAGE = "io.kestra.plugin.compress"
ARCHIVES = ("ZIP", "JAR", "TAR")
UNSUPPORTED_ARCHIVES = ("AR", "ARJ", "CPIO", "DUMP")
COMPRESSIONS = ("GZIP", "BZIP2", "XZ", "LZMA", "DEFLATE")
UNSUPPORTED_COMPRESSIONS = (
    "BROTLI",
    "DEFLATE64",
    "LZ4BLOCK",
    "LZ4FRAME",
    "SNAPPY",
    "SNAPPYFRAME",
    "Z",
    "ZSTD",
)
_CHUNK = 1 << 20


def _choice(
    context: TaskContext, name: str, supported: tuple[str, ...], unsupported: tuple[str, ...]
) -> str | None:
    value = context.prop(name)
    if value is None:
        return None
    text = str(value).strip().upper()
    if text in supported:
        return text
    known = "one Kestra reads that this engine does not" if text in unsupported else "not a known one"
    raise TaskFailure(f"`{name}` {text}: {known}; use {', '.join(supported)}")


# -- single-stream compressions --------------------------------------------------------------------


class _DeflateWriter(io.RawIOBase):
    """A zlib stream written as it comes (the `DEFLATE` of Commons Compress: zlib's header, the
    deflated data and its checksum)."""

    def __init__(self, target: BinaryIO) -> None:
        self._target = target
        self._deflate = zlib.compressobj()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._target.write(self._deflate.compress(bytes(data)))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._target.write(self._deflate.flush())
        super().close()


class _DeflateReader(io.RawIOBase):
    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._inflate = zlib.decompressobj()
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._inflate.eof:
            chunk = self._source.read(_CHUNK)
            if not chunk:
                break
            self._pending = self._inflate.decompress(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _compressed_writer(kind: str, target: BinaryIO) -> io.BufferedIOBase:
    """A file object compressing what is written to it into `target` (closed with it, not `target`)."""
    if kind == "GZIP":
        return gzip.GzipFile(fileobj=target, mode="wb", mtime=0)
    if kind == "BZIP2":
        return bz2.BZ2File(target, "wb")
    if kind in ("XZ", "LZMA"):
        return lzma.LZMAFile(target, "wb", format=lzma.FORMAT_XZ if kind == "XZ" else lzma.FORMAT_ALONE)
    return io.BufferedWriter(_DeflateWriter(target))


def _compressed_reader(kind: str, source: BinaryIO) -> io.BufferedIOBase:
    """A file object reading `source` decompressed."""
    if kind == "GZIP":
        return gzip.GzipFile(fileobj=source, mode="rb")
    if kind == "BZIP2":
        return bz2.BZ2File(source, "rb")
    if kind in ("XZ", "LZMA"):
        return lzma.LZMAFile(source, "rb", format=lzma.FORMAT_XZ if kind == "XZ" else lzma.FORMAT_ALONE)
    return io.BufferedReader(_DeflateReader(source))


def _source(context: TaskContext) -> Path:
    uri = context.prop("from")
    if not isinstance(uri, str) or not uri.startswith("kestra://"):
        raise TaskFailure(f"`from` must be the kestra:// URI of a stored file, not `{str(uri)[:200]}`")
    return context.stored_file(uri)


async def file_compress(context: TaskContext) -> Mapping[str, Any]:
    kind = _choice(context, "compression", COMPRESSIONS, UNSUPPORTED_COMPRESSIONS)
    if kind is None:
        raise TaskFailure("`compression` is required")
    source = _source(context)
    with tempfile.TemporaryDirectory(prefix="tiercel-compress-") as folder:
        target = Path(folder) / f"{source.name}.{kind.lower()}"
        with source.open("rb") as reading, target.open("wb") as raw, _compressed_writer(kind, raw) as writing:
            shutil.copyfileobj(reading, writing, _CHUNK)
        return {"uri": context.put_file(target.name, target)}


async def file_decompress(context: TaskContext) -> Mapping[str, Any]:
    kind = _choice(context, "compression", COMPRESSIONS, UNSUPPORTED_COMPRESSIONS)
    if kind is None:
        raise TaskFailure("`compression` is required")
    source = _source(context)
    with tempfile.TemporaryDirectory(prefix="tiercel-compress-") as folder:
        target = Path(folder) / (Path(source.name).stem or "file")
        try:
            with (
                source.open("rb") as raw,
                _compressed_reader(kind, raw) as reading,
                target.open("wb") as writing,
            ):
                shutil.copyfileobj(reading, writing, _CHUNK)
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as error:
            raise TaskFailure(f"`from` is not {kind} data: {error}") from None
        return {"uri": context.put_file(target.name, target)}


# -- archives ----------------------------------------------------------------------------------------


def _members(context: TaskContext) -> Iterator[tuple[str, Path]]:
    """(name in the archive, local file) of each file of `from`: a map of names to URIs, or a list
    of such maps (Kestra's `Data.From` of maps)."""
    given = context.prop("from")
    maps = given if isinstance(given, list) else [given]
    for entry in maps:
        if not isinstance(entry, Mapping):
            raise TaskFailure("`from` must map each file's name in the archive to its kestra:// URI")
        for name, uri in entry.items():
            if not isinstance(uri, str) or not uri.startswith("kestra://"):
                raise TaskFailure(
                    f"`from.{name}` must be the kestra:// URI of a stored file, not `{str(uri)[:200]}`"
                )
            path = str(name).strip("/")
            if not path or any(part in ("", ".", "..") for part in path.split("/")):
                raise TaskFailure(f"`from`: `{name}` cannot be a name in an archive")
            yield path, context.stored_file(uri)


async def archive_compress(context: TaskContext) -> Mapping[str, Any]:
    kind = _choice(context, "algorithm", ARCHIVES, UNSUPPORTED_ARCHIVES)
    if kind is None:
        raise TaskFailure("`algorithm` is required")
    compression = _choice(context, "compression", COMPRESSIONS, UNSUPPORTED_COMPRESSIONS)
    members = list(_members(context))
    with tempfile.TemporaryDirectory(prefix="tiercel-compress-") as folder:
        suffix = {"ZIP": "zip", "JAR": "jar", "TAR": "tar"}[kind] + (
            f".{compression.lower()}" if compression else ""
        )
        target = Path(folder) / f"archive.{suffix}"
        with target.open("wb") as raw:
            stream = cast(BinaryIO, _compressed_writer(compression, raw) if compression else raw)
            with stream:
                if kind == "TAR":
                    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as archive:
                        for name, path in members:
                            archive.add(path, arcname=name, recursive=False)
                else:
                    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                        for name, path in members:
                            archive.write(path, arcname=name)
        return {"uri": context.put_file(target.name, target)}


def _zip_entries(stream: BinaryIO, folder: Path) -> Iterator[tuple[str, Path, int]]:
    spooled = folder / ".archive"
    with spooled.open("wb") as copy:  # a ZIP is read from its end: a seekable copy
        shutil.copyfileobj(stream, copy, _CHUNK)
    try:
        archive = zipfile.ZipFile(spooled)
    except zipfile.BadZipFile as error:
        raise TaskFailure(f"`from` is not a ZIP archive: {error}") from None
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            target = folder / "entry"
            with archive.open(info) as reading, target.open("wb") as writing:
                shutil.copyfileobj(reading, writing, _CHUNK)
            yield info.filename, target, info.file_size


def _tar_entries(stream: BinaryIO, folder: Path) -> Iterator[tuple[str, Path, int]]:
    try:
        archive = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115 - closed by the `with` below
    except tarfile.TarError as error:
        raise TaskFailure(f"`from` is not a TAR archive: {error}") from None
    with archive:
        for member in archive:
            if not member.isfile():  # folders, and links that could point anywhere
                continue
            reading = archive.extractfile(member)
            if reading is None:
                continue
            target = folder / "entry"
            with reading, target.open("wb") as writing:
                shutil.copyfileobj(reading, writing, _CHUNK)
            yield member.name, target, member.size


async def archive_decompress(context: TaskContext) -> Mapping[str, Any]:
    kind = _choice(context, "algorithm", ARCHIVES, UNSUPPORTED_ARCHIVES)
    if kind is None:
        raise TaskFailure("`algorithm` is required")
    compression = _choice(context, "compression", COMPRESSIONS, UNSUPPORTED_COMPRESSIONS)
    source = _source(context)
    files: dict[str, str] = {}
    size = 0
    with tempfile.TemporaryDirectory(prefix="tiercel-compress-") as folder, source.open("rb") as raw:
        stream = cast(BinaryIO, _compressed_reader(compression, raw) if compression else raw)
        entries = _tar_entries if kind == "TAR" else _zip_entries
        try:
            with stream:
                for name, path, length in entries(stream, Path(folder)):
                    stored = name.replace(" ", "_")
                    if any(
                        part in ("", ".", "..") for part in stored.strip("/").split("/")
                    ) or stored.startswith("/"):
                        raise TaskFailure(f"Path traversal attempt detected in archive entry: {name}")
                    files[name] = context.put_file(stored, path)
                    size += length
        except (OSError, EOFError, lzma.LZMAError, zlib.error, tarfile.TarError) as error:
            raise TaskFailure(
                f"`from` cannot be read as {compression or ''} {kind}: {error}".replace("  ", " ")
            ) from None
    context.metric("counter", "size", size)
    context.metric("counter", "count", len(files))
    return {"files": files}


def _type(name: str, handler: Any, properties: set[str], required: set[str]) -> TaskType:
    return TaskType(
        f"{PACKAGE}.{name}",
        Kind.RUNNABLE,
        properties=frozenset(properties),
        required=frozenset(required),
        handler=handler,
    )


def register(registry: Registry) -> None:
    """The `tiercel.tasks` entry point of the compress family."""
    registry.add(
        _type(
            "ArchiveCompress", archive_compress, {"from", "algorithm", "compression"}, {"from", "algorithm"}
        )
    )
    registry.add(
        _type(
            "ArchiveDecompress",
            archive_decompress,
            {"from", "algorithm", "compression"},
            {"from", "algorithm"},
        )
    )
    registry.add(_type("FileCompress", file_compress, {"from", "compression"}, {"from", "compression"}))
    registry.add(_type("FileDecompress", file_decompress, {"from", "compression"}, {"from", "compression"}))
