"""Internal storage on real files (alone, or shared through a real PostgreSQL store): URI layout,
round trips, and every way out of the folder refused."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from tests.postgres import shared_files
from tiercel.engine.internal_storage import Storage, StorageError, files_matching, safe_relative, write_into

NS, FLOW, EXEC = "company.team.data", "nightly_load", "4wjtkzwVGBM9yKnjm3yv8r"
TASK_URI = "kestra:///company/team/data/nightly_load/executions/4wjtkzwVGBM9yKnjm3yv8r/tasks/extract/run1"


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture(params=["folder", "shared"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A storage folder alone, or one machine's copy of files shared through a PostgreSQL store:
    every rule below holds for both."""
    if request.param == "folder":
        yield Storage(tmp_path / ".tiercel" / "storage")
        return
    with shared_files(request.getfixturevalue("pg_url")) as shared:
        yield Storage(tmp_path / ".tiercel" / "storage", shared=shared)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "passwd").write_text("root:x:0:0\n")
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- URI layout -------------------------------------------------------------------------------------


def test_uris_follow_kestra_layout(storage: Storage) -> None:
    base = "kestra:///company/team/data/nightly_load/executions/4wjtkzwVGBM9yKnjm3yv8r"
    assert storage.execution_uri(NS, FLOW, EXEC) == base
    assert storage.task_uri(NS, FLOW, EXEC, "extract", "run1") == base + "/tasks/extract/run1"
    assert storage.input_uri(NS, FLOW, EXEC, "data_file") == base + "/inputs/data_file"


def test_put_returns_uri_under_base_and_path_maps_into_root(storage: Storage) -> None:
    uri = storage.put_bytes(TASK_URI, "out.csv", b"a,b\n1,2\n")
    assert uri == TASK_URI + "/out.csv"
    expected = storage.root.joinpath(
        "company", "team", "data", "nightly_load", "executions", EXEC, "tasks", "extract", "run1", "out.csv"
    )
    assert storage.path(uri) == expected
    assert expected.read_bytes() == b"a,b\n1,2\n"


@pytest.mark.parametrize(
    ("namespace", "flow_id", "execution_id"),
    [
        ("company..team", FLOW, EXEC),
        (".company", FLOW, EXEC),
        ("company.team", "../other", EXEC),
        ("company.team", "..", EXEC),
        ("company.team", FLOW, "a/b"),
        ("company.team", FLOW, "a\\b"),
        ("company.team", FLOW, ""),
        ("company.team", "fl\x00ow", EXEC),
    ],
)
def test_namespace_and_ids_are_checked_as_segments(
    storage: Storage, namespace: str, flow_id: str, execution_id: str
) -> None:
    with pytest.raises(StorageError, match="refused"):
        storage.execution_uri(namespace, flow_id, execution_id)


def test_task_and_input_ids_are_checked(storage: Storage) -> None:
    with pytest.raises(StorageError, match=r"Task id '\.\.' refused: path traversal"):
        storage.task_uri(NS, FLOW, EXEC, "..", "run1")
    with pytest.raises(StorageError, match="Task run id"):
        storage.task_uri(NS, FLOW, EXEC, "t", "a/../b")
    with pytest.raises(StorageError, match="Input id"):
        storage.input_uri(NS, FLOW, EXEC, "../../x")


# --- round trips ------------------------------------------------------------------------------------


def test_round_trip_bytes_text_and_file(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "local.bin"
    source.write_bytes(bytes(range(256)) * 10)
    file_uri = storage.put_file(TASK_URI, "data/blob.bin", source)
    assert file_uri == TASK_URI + "/data/blob.bin"
    assert storage.read_bytes(file_uri) == source.read_bytes()
    text_uri = storage.put_bytes(TASK_URI, "hello.txt", "héllo wörld\n".encode())
    assert storage.read_text(text_uri) == "héllo wörld\n"


def test_names_with_spaces_percent_and_unicode_round_trip(storage: Storage) -> None:
    uri = storage.put_bytes(TASK_URI, "my report 100% (final) é.txt", b"x")
    assert uri == TASK_URI + "/my%20report%20100%25%20(final)%20%C3%A9.txt"
    assert storage.path(uri).name == "my report 100% (final) é.txt"
    assert storage.read_bytes(uri) == b"x"
    # The same file is reachable with the raw (unencoded) unicode spelling.
    assert storage.exists(TASK_URI + "/my%20report%20100%25%20(final)%20é.txt")


def test_overwrite_replaces_content(storage: Storage) -> None:
    uri = storage.put_bytes(TASK_URI, "a.txt", b"first, longer content")
    storage.put_bytes(TASK_URI, "a.txt", b"second")
    assert storage.read_bytes(uri) == b"second"


def test_sizes(storage: Storage) -> None:
    assert storage.size(storage.put_bytes(TASK_URI, "empty", b"")) == 0
    assert storage.size(storage.put_bytes(TASK_URI, "kb", b"x" * 1024)) == 1024
    with pytest.raises(StorageError, match="does not exist"):
        storage.size(TASK_URI + "/missing.txt")
    with pytest.raises(StorageError, match="is a folder"):
        storage.size(TASK_URI)


def test_read_cap_and_missing_file(storage: Storage) -> None:
    uri = storage.put_bytes(TASK_URI, "big.txt", b"x" * 101)
    assert storage.read_bytes(uri, max_bytes=101) == b"x" * 101
    with pytest.raises(StorageError, match="101 bytes, over the read limit of 100 bytes"):
        storage.read_bytes(uri, max_bytes=100)
    with pytest.raises(StorageError, match=f"'{TASK_URI}/nope' does not exist"):
        storage.read_bytes(TASK_URI + "/nope")
    with pytest.raises(StorageError, match="is a folder"):
        storage.read_bytes(TASK_URI)


def test_read_text_refuses_binary(storage: Storage) -> None:
    uri = storage.put_bytes(TASK_URI, "bin", b"\xff\xfe\x00")
    with pytest.raises(StorageError, match="not UTF-8"):
        storage.read_text(uri)


def test_put_file_missing_source(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="Cannot store"):
        storage.put_file(TASK_URI, "x", tmp_path / "absent.txt")


def test_exists_and_delete(storage: Storage) -> None:
    uri = storage.put_bytes(TASK_URI, "tmp.txt", b"x")
    assert storage.exists(uri)
    assert storage.delete(uri) is True
    assert not storage.exists(uri)
    assert storage.delete(uri) is False
    with pytest.raises(StorageError, match="is a folder"):
        storage.delete(TASK_URI)
    with pytest.raises(StorageError, match="cannot delete the storage folder"):
        storage.delete("kestra:///")


def test_list_is_sorted_and_scoped(storage: Storage) -> None:
    other = storage.task_uri(NS, FLOW, EXEC, "load", "run2")
    uris = [
        storage.put_bytes(TASK_URI, "b.txt", b"b"),
        storage.put_bytes(TASK_URI, "a.txt", b"a"),
        storage.put_bytes(TASK_URI, "sub/c.txt", b"c"),
        storage.put_bytes(other, "d.txt", b"d"),
    ]
    assert storage.list(TASK_URI) == sorted(uris[:3])
    assert storage.list(TASK_URI + "/") == sorted(uris[:3])
    assert storage.list(storage.execution_uri(NS, FLOW, EXEC)) == sorted(uris)
    assert storage.list(uris[0]) == [uris[0]]
    assert storage.list(TASK_URI + "/nothing-here") == []


def test_delete_execution_removes_only_that_execution(storage: Storage) -> None:
    storage.put_bytes(TASK_URI, "a.txt", b"a")
    storage.put_bytes(TASK_URI, "sub/b.txt", b"b")
    storage.put_bytes(storage.input_uri(NS, FLOW, EXEC, "file"), "in.csv", b"c")
    kept = storage.put_bytes(storage.task_uri(NS, FLOW, "otherExecution", "t", "r"), "keep.txt", b"k")
    assert storage.delete_execution(NS, FLOW, EXEC) == 3
    assert not storage.exists(storage.execution_uri(NS, FLOW, EXEC))
    assert storage.read_bytes(kept) == b"k"
    assert storage.delete_execution(NS, FLOW, EXEC) == 0


# --- traversal --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "kestra:///../x",
        "kestra:///company/../../x",
        "kestra:///company/..%2F..%2Fx",
        "kestra:///company/%2e%2e/%2E%2E/x",
        "kestra:///%2Fetc/passwd",
        "kestra:////etc/passwd",
        "kestra:///a//b",
        "kestra:///./a",
        "kestra:///a/.",
        "kestra:///a\\..\\b",
        "kestra:///a/%5C..%5Cb",
        "kestra:///a%00b",
    ],
)
def test_traversal_uris_are_refused(storage: Storage, uri: str) -> None:
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.path(uri)
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.read_bytes(uri)
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.put_bytes(uri, "x.txt", b"x")


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "http://example.com/x",
        "s3://bucket/key",
        "/etc/passwd",
        "../x",
        "kestra:/a/b",
        "kestra://company/team/x",
        "kestra:///a/b?x=1",
        "kestra:///a/b#frag",
    ],
)
def test_other_schemes_and_forms_are_refused(storage: Storage, uri: str) -> None:
    with pytest.raises(StorageError, match=re.escape(f"Storage URI '{uri}' refused")):
        storage.path(uri)


def test_two_slash_form_explains_the_fix(storage: Storage) -> None:
    with pytest.raises(StorageError, match=r"write three slashes \(kestra:///company/x\)"):
        storage.read_bytes("kestra://company/x")


def test_percent_decoding_happens_once(storage: Storage) -> None:
    # '%252e%252e' decodes to the literal name '%2e%2e', a file inside the root, never '..'.
    path = storage.path("kestra:///a/%252e%252e/x")
    assert path == storage.root / "a" / "%2e%2e" / "x"


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\..\\x", "", "./", "a\x00b"])
def test_unsafe_names_are_refused_on_put(storage: Storage, name: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="refused"):
        storage.put_bytes(TASK_URI, name, b"x")
    assert not (tmp_path / "x").exists()


def test_symlinked_folder_inside_root_pointing_outside(storage: Storage, outside: Path) -> None:
    (storage.root / "company").mkdir()
    (storage.root / "company" / "link").symlink_to(outside, target_is_directory=True)
    for uri in ("kestra:///company/link/passwd", "kestra:///company/link"):
        with pytest.raises(StorageError, match="refused: path traversal"):
            storage.read_bytes(uri)
        with pytest.raises(StorageError, match="refused: path traversal"):
            storage.exists(uri)
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.put_bytes("kestra:///company/link", "new.txt", b"pwned")
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.put_bytes("kestra:///company", "link/new.txt", b"pwned")
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.delete("kestra:///company/link/passwd")
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]
    assert (outside / "passwd").read_text() == "root:x:0:0\n"


def test_symlinked_file_inside_root_pointing_outside(storage: Storage, outside: Path) -> None:
    storage.put_bytes(TASK_URI, "real.txt", b"r")
    folder = storage.path(TASK_URI)
    (folder / "leak.txt").symlink_to(outside / "passwd")
    leak = TASK_URI + "/leak.txt"
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.read_bytes(leak)
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.size(leak)
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.put_bytes(TASK_URI, "leak.txt", b"overwrite")
    assert (outside / "passwd").read_text() == "root:x:0:0\n"
    assert storage.list(TASK_URI) == [TASK_URI + "/real.txt"]


def test_symlink_to_missing_outside_target_is_refused(storage: Storage, outside: Path) -> None:
    storage.put_bytes(TASK_URI, "real.txt", b"r")
    (storage.path(TASK_URI) / "dangling").symlink_to(outside / "created-by-write")
    with pytest.raises(StorageError, match="refused: path traversal"):
        storage.put_bytes(TASK_URI, "dangling", b"x")
    assert not (outside / "created-by-write").exists()


def test_symlink_inside_root_is_still_not_written_through(storage: Storage) -> None:
    target = storage.put_bytes(TASK_URI, "target.txt", b"original")
    (storage.path(TASK_URI) / "alias.txt").symlink_to(storage.path(target))
    with pytest.raises(StorageError, match="refusing to write through a symlink"):
        storage.put_bytes(TASK_URI, "alias.txt", b"changed")
    assert storage.read_bytes(target) == b"original"


# --- permissions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0o022, 0o000, 0o077])
def test_permissions_are_private_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    previous = os.umask(mask)
    try:
        storage = Storage(tmp_path / "storage")
        uri = storage.put_bytes(TASK_URI, "sub/out.txt", b"x")
    finally:
        os.umask(previous)
    assert mode(storage.root) == 0o700
    assert mode(storage.path(TASK_URI)) == 0o700
    assert mode(storage.path(TASK_URI + "/sub")) == 0o700
    assert mode(storage.path(uri)) == 0o600


def test_existing_root_is_made_private(tmp_path: Path, umask: None) -> None:
    root = tmp_path / "storage"
    root.mkdir(mode=0o755)
    Storage(root)
    assert mode(root) == 0o700


def test_put_file_does_not_copy_source_mode(storage: Storage, tmp_path: Path, umask: None) -> None:
    source = tmp_path / "script.sh"
    source.write_text("echo hi\n")
    source.chmod(0o755)
    assert mode(storage.path(storage.put_file(TASK_URI, "script.sh", source))) == 0o600


# --- safe_relative and write_into -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("./a", "a"), ("a//b/", "a/b"), ("a/./b", "a/b"), ("dir/file name é.txt", "dir/file name é.txt")],
)
def test_safe_relative_normalises(name: str, expected: str) -> None:
    assert safe_relative(name) == PurePosixPath(expected)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        (".", "folder itself"),
        ("/etc/passwd", "absolute"),
        ("C:\\Windows", "absolute"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/..", "'..'"),
        ("..\\x", "backslash"),
        ("a\x00b", "NUL"),
        ("a\nb", "control character"),
    ],
)
def test_safe_relative_refuses(name: str, reason: str) -> None:
    with pytest.raises(StorageError, match=reason):
        safe_relative(name)


def test_write_into_creates_parents(tmp_path: Path, umask: None) -> None:
    work = tmp_path / "work"
    work.mkdir()
    written = write_into(work, "./conf/app settings.json", '{"a": 1}')
    assert written == work / "conf" / "app settings.json"
    assert written.read_text() == '{"a": 1}'
    assert mode(written) == 0o600
    assert write_into(work, "bin.dat", b"\x00\x01").read_bytes() == b"\x00\x01"


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt", "/tmp/escape.txt", "a\\..\\..\\e"])
def test_write_into_refuses_escaping_names(tmp_path: Path, name: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(StorageError, match="refused"):
        write_into(work, name, "x")
    assert not (tmp_path / "escape.txt").exists()


def test_write_into_refuses_symlinked_parent_leaving(tmp_path: Path, outside: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "conf").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="refused: path traversal"):
        write_into(work, "conf/new.txt", "x")
    with pytest.raises(StorageError, match="refused: path traversal"):
        write_into(work, "conf/deeper/new.txt", "x")
    assert sorted(p.name for p in outside.iterdir()) == ["passwd"]


def test_write_into_allows_symlinked_parent_staying_inside(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "real").mkdir(parents=True)
    (work / "alias").symlink_to(work / "real", target_is_directory=True)
    write_into(work, "alias/f.txt", "ok")
    assert (work / "real" / "f.txt").read_text() == "ok"


def test_write_into_refuses_writing_through_a_symlink(tmp_path: Path, outside: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "inside.txt").write_text("keep")
    (work / "link_in.txt").symlink_to(work / "inside.txt")
    (work / "link_out.txt").symlink_to(outside / "passwd")
    with pytest.raises(StorageError, match="refusing to write through a symlink"):
        write_into(work, "link_in.txt", "changed")
    with pytest.raises(StorageError, match="refused: path traversal"):
        write_into(work, "link_out.txt", "changed")
    assert (work / "inside.txt").read_text() == "keep"
    assert (outside / "passwd").read_text() == "root:x:0:0\n"


def test_write_into_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        write_into(tmp_path / "absent", "a.txt", "x")


# --- files_matching ---------------------------------------------------------------------------------


@pytest.fixture
def workdir(tmp_path: Path, outside: Path) -> Path:
    work = tmp_path / "work"
    for name in [
        "a.csv",
        "b.txt",
        "report.txt",
        ".hidden.csv",
        "out/x.csv",
        "out/deep/y.csv",
        "out/deep/z.json",
    ]:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(name)
    (outside / "stolen.csv").write_text("secret")
    (work / "escape.csv").symlink_to(outside / "stolen.csv")
    (work / "alias.csv").symlink_to(work / "a.csv")
    (work / "linked_dir").symlink_to(outside, target_is_directory=True)
    (work / "folder.csv").mkdir()
    return work


def paths(*names: str) -> list[PurePosixPath]:
    return [PurePosixPath(name) for name in names]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        (["*.csv"], [".hidden.csv", "a.csv", "alias.csv"]),
        (["report.txt"], ["report.txt"]),
        (["./report.txt"], ["report.txt"]),
        (["out/**"], ["out/deep/y.csv", "out/deep/z.json", "out/x.csv"]),
        (["out/*"], ["out/x.csv"]),
        (["**/*.csv"], ["out/deep/y.csv", "out/x.csv"]),
        (["**.csv"], [".hidden.csv", "a.csv", "alias.csv", "out/deep/y.csv", "out/x.csv"]),
        (["*.{txt,json}", "out/**/*.json"], ["b.txt", "out/deep/z.json", "report.txt"]),
        (["?.csv", "[ab].*"], ["a.csv", "b.txt"]),
        (["[!a].*"], ["b.txt"]),
        (["*.csv", "a.csv", "a.*"], [".hidden.csv", "a.csv", "alias.csv"]),
        (["linked_dir/**", "linked_dir/*", "../outside/*", "/etc/*"], []),
        (["nothing*"], []),
    ],
)
def test_files_matching(workdir: Path, patterns: list[str], expected: list[str]) -> None:
    assert files_matching(workdir, patterns) == paths(*expected)


def test_files_matching_never_returns_escaping_symlinks(workdir: Path) -> None:
    found = files_matching(workdir, ["**", "*"])
    assert PurePosixPath("escape.csv") not in found
    assert all(not str(path).startswith("linked_dir") for path in found)
    assert PurePosixPath("alias.csv") in found
    assert PurePosixPath("folder.csv") not in found


def test_files_matching_bad_pattern_and_missing_folder(workdir: Path, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"outputFiles pattern '\[abc' is invalid"):
        files_matching(workdir, ["[abc"])
    with pytest.raises(StorageError, match="never closed"):
        files_matching(workdir, ["{a,b"])
    assert files_matching(tmp_path / "absent", ["*"]) == []
