"""The files of executions shared through a real PostgreSQL store by two machines, each with its own
storage folder: what one writes, overwrites or deletes, the other reads as it now is; and the
namespace files kept there, published from a flows folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests.postgres import shared_files
from tiercel.engine.flows.publish import NamespaceFilesPublisher
from tiercel.engine.internal_storage import STORAGE_VARIABLE, Storage, StorageError, open_storage
from tiercel.engine.store.postgres.files import CHUNK, PostgresFiles
from tiercel.engine.tasks.namespace_store import StoredNamespaceFiles
from tiercel.engine.tasks.services import Conflict

NS, FLOW = "company.team", "load"
FIRST, SECOND = "4wjtkzwVGBM9yKnjm3yv8r", "5xkulaxWHCN0zLokn4zw9s"


@pytest.fixture
def files(pg_url: str) -> Iterator[PostgresFiles]:
    with shared_files(pg_url) as shared:
        yield shared


@pytest.fixture
def machines(tmp_path: Path, files: PostgresFiles) -> tuple[Storage, Storage]:
    """Two machines' storages: their own folders, one store."""
    return Storage(tmp_path / "a", shared=files), Storage(tmp_path / "b", shared=files)


def task_uri(storage: Storage, execution_id: str = FIRST) -> str:
    return storage.task_uri(NS, FLOW, execution_id, "extract", "run1")


def test_a_file_written_on_one_machine_is_read_on_the_other(machines: tuple[Storage, Storage]) -> None:
    a, b = machines
    uri = a.put_bytes(task_uri(a), "out.csv", b"id,name\n1,ada\n")
    assert not (b.root / "company").exists()
    assert b.exists(uri)
    assert b.read_text(uri) == "id,name\n1,ada\n"
    assert b.size(uri) == 14
    assert b.list(task_uri(b)) == [uri]
    # the copy on b carries the stored file's stamp, as the original on a does
    assert b.path(uri).stat().st_mtime_ns == a.path(uri).stat().st_mtime_ns


def test_an_overwritten_file_is_fetched_again_and_a_deleted_one_is_gone(
    machines: tuple[Storage, Storage],
) -> None:
    a, b = machines
    uri = a.put_bytes(task_uri(a), "cache.zip", b"first")
    assert b.read_bytes(uri) == b"first"
    a.put_bytes(task_uri(a), "cache.zip", b"second, longer")
    assert b.read_bytes(uri) == b"second, longer"
    assert a.delete(uri)
    assert not b.exists(uri)
    with pytest.raises(StorageError, match="does not exist"):
        b.read_bytes(uri)
    assert not b.path(uri).exists()  # b's stale copy went with it
    assert b.list(task_uri(b)) == []


def test_deleting_an_execution_deletes_its_files_for_every_machine(machines: tuple[Storage, Storage]) -> None:
    a, b = machines
    kept = a.put_bytes(task_uri(a, SECOND), "kept.txt", b"kept")
    for name in ("one.txt", "two/three.txt"):
        a.put_bytes(task_uri(a), name, b"x")
    assert len(b.list(a.execution_uri(NS, FLOW, FIRST))) == 2
    assert b.delete_execution(NS, FLOW, FIRST) == 2
    assert a.list(a.execution_uri(NS, FLOW, FIRST)) == []
    assert a.list("kestra:///") == [kept]


def test_a_file_larger_than_a_chunk_goes_in_chunks_and_comes_back_whole(
    machines: tuple[Storage, Storage], tmp_path: Path, pg_url: str
) -> None:
    a, b = machines
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(2 * CHUNK + 12345))
    uri = a.put_file(task_uri(a), "big.bin", source)
    assert b.read_bytes(uri) == source.read_bytes()
    with psycopg.connect(pg_url) as conn:
        chunks = conn.execute("SELECT seq, length(data) FROM file_chunks ORDER BY seq").fetchall()
    assert chunks == [(0, CHUNK), (1, CHUNK), (2, 12345)]


def test_files_are_reached_again_after_the_servers_connections_are_cut(
    machines: tuple[Storage, Storage], pg_url: str
) -> None:
    a, b = machines
    uri = a.put_bytes(task_uri(a), "out.txt", b"before")
    assert b.read_bytes(uri) == b"before"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        cut = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tiercel tests'"
        ).fetchall()
    assert cut
    uri = a.put_bytes(task_uri(a), "out.txt", b"after")
    assert b.read_bytes(uri) == b"after"


def test_an_unreachable_store_is_a_clear_storage_error(tmp_path: Path) -> None:
    gone = PostgresFiles("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2", "tiercel tests")
    storage = Storage(tmp_path / "storage", shared=gone)
    with pytest.raises(
        StorageError, match=r"Cannot store 'kestra:///.*out.txt': the store's database answered"
    ):
        storage.put_bytes(task_uri(storage), "out.txt", b"x")
    with pytest.raises(StorageError, match="Cannot read"):
        storage.read_bytes(task_uri(storage) + "/out.txt")


def test_a_storage_folder_given_by_name_is_used_instead_of_the_store(
    tmp_path: Path, files: PostgresFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert open_storage(tmp_path / "store", files).shared is files
    monkeypatch.setenv(STORAGE_VARIABLE, str(tmp_path / "mnt"))
    given = open_storage(tmp_path / "store", files)
    assert given.shared is None
    assert given.root == tmp_path / "mnt"


def test_a_flows_folders_namespace_files_are_published_newer_first_then_as_they_change(
    machines: tuple[Storage, Storage], tmp_path: Path, files: PostgresFiles
) -> None:
    a, b = machines
    folder = tmp_path / "flows" / "_files"
    (folder / "company.team" / "sql").mkdir(parents=True)
    (folder / "company.team" / "sql" / "report.sql").write_text("SELECT 1")
    (folder / "company.team" / "old.txt").write_text("old")
    read_on_b = StoredNamespaceFiles(b)
    # A task uploaded a newer old.txt before the folder was published: that one stays.
    StoredNamespaceFiles(b).write_file("company.team", "old.txt", b"uploaded", Conflict.OVERWRITE)
    uploaded_only = StoredNamespaceFiles(b)
    uploaded_only.write_file("company.team", "by-task.txt", b"task", Conflict.OVERWRITE)
    publisher = NamespaceFilesPublisher(folder, a, files)

    assert publisher.step() == 1
    assert read_on_b.list_files("company.team") == ["by-task.txt", "old.txt", "sql/report.sql"]
    assert read_on_b.read_file("company.team", "old.txt") == b"uploaded"
    assert publisher.step() == 0  # nothing changed

    (folder / "company.team" / "sql" / "report.sql").write_text("SELECT 2, longer")
    (folder / "company.team" / "old.txt").unlink()
    assert publisher.step() == 2
    assert read_on_b.list_files("company.team") == ["by-task.txt", "sql/report.sql"]
    copies = read_on_b.local_folder("company.team")
    assert copies is not None and (copies / "sql" / "report.sql").read_text() == "SELECT 2, longer"


def test_a_machines_copy_of_a_namespace_drops_the_files_deleted_elsewhere(
    machines: tuple[Storage, Storage],
) -> None:
    a, b = machines
    on_a, on_b = StoredNamespaceFiles(a), StoredNamespaceFiles(b)
    for name in ("keep.txt", "sub/gone.txt"):
        on_a.write_file("team", name, name.encode(), Conflict.OVERWRITE)
    copies = on_b.local_folder("team")
    assert copies is not None and sorted(p.name for p in copies.rglob("*.txt")) == ["gone.txt", "keep.txt"]
    assert on_a.delete_file("team", "sub/gone.txt")
    assert on_a.delete_empty_folder("team", "sub")
    assert sorted(p.name for p in copies.rglob("*.txt")) == ["gone.txt", "keep.txt"]  # until b looks
    assert on_b.local_folder("team") == copies
    assert sorted(p.name for p in copies.rglob("*.txt")) == ["keep.txt"]
    assert on_a.delete_file("team", "keep.txt")
    assert on_b.local_folder("team") is None


def test_deleting_a_folder_of_another_machine_as_a_file_is_refused(machines: tuple[Storage, Storage]) -> None:
    a, b = machines
    uri = a.put_bytes(task_uri(a), "sub/kept.txt", b"kept")
    with pytest.raises(StorageError, match="is a folder, not a file"):
        b.delete(task_uri(b) + "/sub")
    assert b.read_bytes(uri) == b"kept"


def test_a_fetched_copy_is_as_private_as_the_files_written_there(machines: tuple[Storage, Storage]) -> None:
    a, b = machines
    uri = a.put_bytes(task_uri(a), "sub/out.txt", b"secret")
    previous = os.umask(0o022)
    try:
        assert b.read_bytes(uri) == b"secret"
    finally:
        os.umask(previous)
    copy = b.path(uri)
    folders = [copy.parent, *[parent for parent in copy.parents if parent.is_relative_to(b.root)]]
    assert {stat.S_IMODE(folder.stat().st_mode) for folder in folders} == {0o700}
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600


def test_two_machines_writing_one_file_at_once_leave_one_whole_version(
    machines: tuple[Storage, Storage],
) -> None:
    a, b = machines
    base = task_uri(a)
    versions = {machine: bytes([index]) * (CHUNK + 100) for index, machine in enumerate("ab")}

    def write(storage: Storage, data: bytes) -> None:
        for _ in range(15):
            storage.put_bytes(base, "cache.zip", data)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, (a, b), versions.values()))  # each write is whole, none fails
    final = a.read_bytes(f"{base}/cache.zip")
    assert final in versions.values()
    assert b.read_bytes(f"{base}/cache.zip") == final


def test_a_file_read_while_it_is_written_again_is_the_old_or_the_new_one_never_a_mix(
    machines: tuple[Storage, Storage],
) -> None:
    a, b = machines
    base = task_uri(a)
    uri = a.put_bytes(base, "out.bin", b"\0" * 65536)
    written = [bytes([index]) * 65536 for index in range(1, 30)]
    seen: list[bytes] = []

    def read(storage: Storage) -> None:
        for _ in range(60):
            seen.append(storage.read_bytes(uri))

    with ThreadPoolExecutor(3) as pool:
        readers = [pool.submit(read, a), pool.submit(read, b)]
        for data in written:
            a.put_bytes(base, "out.bin", data)
        for reader in readers:
            reader.result()
    assert {data[:1] * 65536 for data in seen} == set(seen)  # each one version, whole
    assert a.read_bytes(uri) == b.read_bytes(uri) == written[-1]
    assert a.path(uri).read_bytes() == written[-1]  # the local copy is the stored one


def test_the_storage_folder_itself_is_never_deleted_from_the_store(files: PostgresFiles) -> None:
    with pytest.raises(StorageError, match="cannot delete the storage folder"):
        files.delete("kestra:///")
