"""The compress family (io.kestra.plugin.compress), loaded through its `tiercel.tasks` entry point:
Kestra's documented examples run through a real engine, their archives and files read back with
the standard library's own readers."""

from __future__ import annotations

import asyncio
import bz2
import gzip
import io
import lzma
import tarfile
import textwrap
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from tiercel.engine.engine import Engine
from tiercel.engine.model import Execution, StateType
from tiercel.engine.tasks.registry import registry

from .helpers import logs_of, messages, one_run, running_engine

pytestmark = pytest.mark.asyncio

ARCHIVE_COMPRESS = """
id: archive_compress
namespace: company.team
inputs:
  - id: file
    type: FILE
tasks:
  - id: "archive_compress"
    type: "io.kestra.plugin.compress.ArchiveCompress"
    from:
      myfile.txt: "{{ inputs.file }}"
    algorithm: ZIP
"""
ARCHIVE_DECOMPRESS = """
id: archive_decompress
namespace: company.team
inputs:
  - id: file
    description: Compressed file
    type: FILE
tasks:
  - id: archive_decompress
    type: io.kestra.plugin.compress.ArchiveDecompress
    from: "{{ inputs.file }}"
    algorithm: ZIP
    compression: GZIP
"""
FILE_COMPRESS = """
id: file_compress
namespace: company.team
inputs:
  - id: file
    description: File to be compressed
    type: FILE
  - id: compression
    type: STRING
tasks:
  - id: compress
    type: io.kestra.plugin.compress.FileCompress
    from: "{{ inputs.file }}"
    compression: "{{ inputs.compression }}"
  - id: decompress
    type: io.kestra.plugin.compress.FileDecompress
    from: "{{ outputs.compress.uri }}"
    compression: "{{ inputs.compression }}"
"""
TWO_FILES = """
id: two_files
namespace: company.team
inputs:
  - id: products
    type: FILE
  - id: orders
    type: FILE
tasks:
  - id: archive_compress
    type: io.kestra.plugin.compress.ArchiveCompress
    from:
      products.csv: "{{ inputs.products }}"
      reports/orders.csv: "{{ inputs.orders }}"
    algorithm: TAR
    compression: GZIP
  - id: archive_decompress
    type: io.kestra.plugin.compress.ArchiveDecompress
    from: "{{ outputs.archive_compress.uri }}"
    algorithm: TAR
    compression: GZIP
"""


async def run_with_files(engine: Engine, flow_id: str, inputs: dict[str, Any]) -> Execution:
    execution_id = await engine.trigger("company.team", flow_id, inputs, [], local_files=True)
    return await asyncio.wait_for(engine.wait(execution_id), 20)


def stored(engine: Engine, uri: str) -> bytes:
    return engine.storage.read_bytes(uri)


async def test_the_family_comes_through_its_entry_point() -> None:
    assert registry().source("io.kestra.plugin.compress.ArchiveCompress").startswith("tiercel ")
    assert not registry().failures


async def test_archive_compress_as_kestra_documents_it(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("hello archive\n")
    async with running_engine(tmp_path, ARCHIVE_COMPRESS) as engine:
        execution = await run_with_files(engine, "archive_compress", {"file": str(data)})
        assert execution.state.current is StateType.SUCCESS
        uri = one_run(execution, "archive_compress").outputs["uri"]  # type: ignore[index]
        with zipfile.ZipFile(io.BytesIO(stored(engine, uri))) as archive:
            assert archive.namelist() == ["myfile.txt"]
            assert archive.read("myfile.txt") == b"hello archive\n"


async def test_archive_decompress_as_kestra_documents_it(tmp_path: Path) -> None:
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("a.txt", "first\n")
        archive.writestr("sub dir/b c.txt", "second one\n")
        archive.writestr("empty/", "")
    given = tmp_path / "archive.zip.gz"
    given.write_bytes(gzip.compress(packed.getvalue()))
    async with running_engine(tmp_path, ARCHIVE_DECOMPRESS) as engine:
        execution = await run_with_files(engine, "archive_decompress", {"file": str(given)})
        assert execution.state.current is StateType.SUCCESS
        files = one_run(execution, "archive_decompress").outputs["files"]  # type: ignore[index]
        assert sorted(files) == ["a.txt", "sub dir/b c.txt"]
        assert stored(engine, files["a.txt"]) == b"first\n"
        assert files["sub dir/b c.txt"].endswith("/sub_dir/b_c.txt")  # spaces stored as underscores
        assert stored(engine, files["sub dir/b c.txt"]) == b"second one\n"
        counted = {m.name: m.value for m in await engine.metrics(execution.id)}
        assert counted == {"size": 17.0, "count": 2.0}


@pytest.mark.parametrize(
    ("compression", "reader"),
    [
        ("GZIP", gzip.decompress),
        ("BZIP2", bz2.decompress),
        ("XZ", lzma.decompress),
        ("LZMA", lambda data: lzma.decompress(data, format=lzma.FORMAT_ALONE)),
        ("DEFLATE", zlib.decompress),
    ],
)
async def test_file_compress_and_decompress_round_trip(tmp_path: Path, compression: str, reader: Any) -> None:
    data = tmp_path / "big.csv"
    content = b"".join(f"{n},{n * n}\n".encode() for n in range(100_000))  # several chunks
    data.write_bytes(content)
    async with running_engine(tmp_path, FILE_COMPRESS) as engine:
        inputs = {"file": str(data), "compression": compression}
        execution = await run_with_files(engine, "file_compress", inputs)
        assert execution.state.current is StateType.SUCCESS
        packed = stored(engine, one_run(execution, "compress").outputs["uri"])  # type: ignore[index]
        assert len(packed) < len(content) and reader(packed) == content
        back = one_run(execution, "decompress").outputs["uri"]  # type: ignore[index]
        assert stored(engine, back) == content


async def test_a_tar_gz_of_two_files_round_trips(tmp_path: Path) -> None:
    products, orders = tmp_path / "p.csv", tmp_path / "o.csv"
    products.write_text("id,name\n1,tea\n")
    orders.write_text("id,product\n7,1\n")
    async with running_engine(tmp_path, TWO_FILES) as engine:
        inputs = {"products": str(products), "orders": str(orders)}
        execution = await run_with_files(engine, "two_files", inputs)
        assert execution.state.current is StateType.SUCCESS
        uri = one_run(execution, "archive_compress").outputs["uri"]  # type: ignore[index]
        with tarfile.open(fileobj=io.BytesIO(stored(engine, uri)), mode="r:gz") as archive:
            assert archive.getnames() == ["products.csv", "reports/orders.csv"]
        files = one_run(execution, "archive_decompress").outputs["files"]  # type: ignore[index]
        assert stored(engine, files["reports/orders.csv"]) == orders.read_bytes()


async def test_what_cannot_be_done_here_fails_with_what_can(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("x\n")
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as archive:
        entry = tarfile.TarInfo("../../escape.txt")
        entry.size = 2
        archive.addfile(entry, io.BytesIO(b"x\n"))
    escaping = tmp_path / "escaping.tar"
    escaping.write_bytes(hostile.getvalue())
    flows = textwrap.dedent(
        """
        id: cannot
        namespace: company.team
        inputs:
          - id: file
            type: FILE
        tasks:
          - id: z
            type: io.kestra.plugin.compress.FileCompress
            from: "{{ inputs.file }}"
            compression: Z
        """
    )
    escape = textwrap.dedent(
        """
        id: escape
        namespace: company.team
        inputs:
          - id: file
            type: FILE
        tasks:
          - id: untar
            type: io.kestra.plugin.compress.ArchiveDecompress
            from: "{{ inputs.file }}"
            algorithm: TAR
        """
    )
    async with running_engine(tmp_path, flows, escape) as engine:
        failed = await run_with_files(engine, "cannot", {"file": str(data)})
        assert failed.state.current is StateType.FAILED
        said = messages(await logs_of(engine, failed.id))
        assert (
            "`compression` Z: one Kestra reads that this engine does not; use GZIP, BZIP2, XZ, LZMA, DEFLATE"
            in said
        )
        refused = await run_with_files(engine, "escape", {"file": str(escaping)})
        assert refused.state.current is StateType.FAILED
        assert any("Path traversal" in line for line in messages(await logs_of(engine, refused.id)))
        assert not (tmp_path / "escape.txt").exists()
